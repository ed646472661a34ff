#!/usr/bin/env bash
# Runs the README's quick start as a new user would: its run command (taken from README.md, not a
# copy) with no DATABASE_URL and no roomd settings, then its first-account, curl, twilio-python and
# twilio-node blocks against that server, then SIGTERM. Fails when any of them stops working, when
# the server does not exit 0, or when it leaves a PostgreSQL or a Janus running.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
block() { python3 tests/readme/blocks.py "$@"; }
passed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }

run_cmd="$(block quickstart 1)"
case "$run_cmd" in *" serve"*) ;; *) echo "FAIL: the quick start's first line is not a serve command: $run_cmd"; exit 1 ;; esac

. tests/sdk/setup.sh

# A new user's shell: no database, no roomd settings, no Twilio region or edge.
unset DATABASE_URL TWILIO_REGION TWILIO_EDGE RUST_LOG
for v in $(compgen -e); do case "$v" in ROOMD_*) unset "$v" ;; esac; done

data_dir="$root/roomd-data"
if [ -e "$data_dir" ]; then
  echo "FAIL: $data_dir exists; the quick start check runs in a fresh clone (remove it to run it here)"
  exit 1
fi
# As root the embedded PostgreSQL runs as the postgres user, which must be able to enter the
# clone (the README says so). A clone under a private directory gets a data directory elsewhere.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root" 2>/dev/null; then
  data_dir="$(mktemp -d)/roomd-data"
  chmod 755 "$(dirname "$data_dir")"
  export ROOMD_DATA_DIR="$data_dir"
  echo "note: the postgres user cannot enter $root; the data directory is $data_dir"
fi

# The README's address, unless something else already listens there.
readme_addr="127.0.0.1:8080"
addr="$readme_addr"
if ! python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 8080))" 2>/dev/null; then
  addr="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  export ROOMD_BIND="$addr"
  echo "note: $readme_addr is taken; serving on $addr and pointing the snippets there"
fi
base="http://$addr"
if ! python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 9464))" 2>/dev/null; then
  export ROOMD_METRICS_BIND=127.0.0.1:0
  echo "note: 127.0.0.1:9464 (the metrics listener) is taken; metrics go to a free port"
fi
snippet() { block "$1" | sed "s#http://$readme_addr#$base#g"; }

log="$(mktemp)"
work="$(mktemp -d)"
echo "\$ $run_cmd"
bash -c "$run_cmd" >"$log" 2>&1 &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir" "$work" "$log"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- the server's output (last 40 lines):"
  tail -n 40 "$log"
  exit 1
}

# The first run builds in release mode: allow it time.
for _ in $(seq 1 1800); do
  curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "the run command exited before /healthz answered"
  sleep 0.5
done
curl -fsS -o /dev/null "$base/healthz" || fail "/healthz did not answer within 15 minutes"
ok "the run command serves $base/healthz"

echo "\$ $(block first-account 1)"
eval "$(snippet first-account)"
[[ "${TWILIO_ACCOUNT_SID:-}" =~ ^AC[0-9a-f]{32}$ ]] || fail "the first-account block set no TWILIO_ACCOUNT_SID"
[ -n "${TWILIO_AUTH_TOKEN:-}" ] || fail "the first-account block set no TWILIO_AUTH_TOKEN"
ok "the first-account block created $TWILIO_ACCOUNT_SID"

# curl as the README shows it, made to fail on an HTTP error instead of printing it.
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
out="$(eval "$(snippet curl)")" || fail "a curl call failed: $out"
echo "$out"
[ "$(grep -c '"sid":"RM' <<<"$out")" -ge 3 ] || fail "the curl calls did not return the room"
ok "the curl block"
unset -f curl

snippet python >"$work/first_call.py"
out="$("$venv/bin/python" "$work/first_call.py" 2>&1)" || fail "the twilio-python snippet failed: $out"
echo "$out"
grep -q '^RM[0-9a-f]\{32\}' <<<"$out" || fail "the twilio-python snippet printed no room SID"
ok "the twilio-python snippet"

if [ -n "$node_modules" ]; then
  snippet node >"$work/first_call.js"
  out="$(NODE_PATH="$node_modules" node "$work/first_call.js" 2>&1)" || fail "the twilio-node snippet failed: $out"
  echo "$out"
  grep -q '^RM[0-9a-f]\{32\} DailyStandup' <<<"$out" || fail "the twilio-node snippet listed no room"
  ok "the twilio-node snippet"
fi

# Joining rooms: a key from the CLI, a token from twilio-python, the curl calls, the python block,
# and a token from twilio-node.
echo "\$ $(block join-key 1)"
eval "$(snippet join-key)"
[[ "${TWILIO_API_KEY:-}" =~ ^SK[0-9a-f]{32}$ ]] || fail "the join-key block set no TWILIO_API_KEY"
[ -n "${TWILIO_API_SECRET:-}" ] || fail "the join-key block set no TWILIO_API_SECRET"
ok "the join-key block created $TWILIO_API_KEY"
snippet join-token-python >"$work/mint_token.py"
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
join_curl="$(snippet join-curl)"
out="$(cd "$work" && PATH="$root/$venv/bin:$PATH" && eval "$join_curl")" || fail "a join curl call failed: $out"
unset -f curl
echo "$out"
[ "$(grep -c '"identity":"alice"' <<<"$out")" -ge 2 ] || fail "alice did not join and leave"
[ "$(grep -c '"status":"disconnected"' <<<"$out")" -eq 2 ] || fail "alice and bob did not both leave"
grep -q '"participants":\[{' <<<"$out" || fail "the participant list was empty"
ok "the join-curl block (token from the join-token-python block)"
# With Janus installed (CI installs it), the quick start's server runs its embedded Janus and a
# join hands out the participant's media.
if command -v janus >/dev/null 2>&1; then
  grep -q '"media":{"url":"ws://127.0.0.1:[0-9]*/","token":"PA' <<<"$out" || fail "janus is installed but the joins answered no media"
  ok "the joins answered their media (the embedded Janus runs)"
fi
snippet join-python >"$work/join.py"
out="$("$venv/bin/python" "$work/join.py" 2>&1)" || fail "the join-python snippet failed: $out"
echo "$out"
grep -q '^PA[0-9a-f]\{32\} bob disconnected [0-9]' <<<"$out" || fail "the join-python snippet listed no bob"
grep -q '^completed$' <<<"$out" || fail "the join-python snippet did not complete the room"
ok "the join-python snippet"
if [ -n "$node_modules" ]; then
  snippet join-token-node >"$work/mint_token.js"
  node_token="$(NODE_PATH="$node_modules" node "$work/mint_token.js")" || fail "the join-token-node snippet failed"
  out="$(command curl --silent --show-error --fail-with-body -H "Authorization: Bearer $node_token" \
    -X POST "$base/v1/Rooms/DailyStandup/Participants")" || fail "joining with the twilio-node token failed: $out"
  grep -q '"identity":"carol"' <<<"$out" || fail "the twilio-node token did not join carol: $out"
  ok "the join-token-node snippet's token joins"
fi

# Publishing tracks: the curl block, then what ben receives and what the room records.
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
out="$(eval "$(snippet tracks-curl)")" || fail "a tracks curl call failed: $out"
unset -f curl
echo "$out"
[ "$(grep -c '"kind":"audio"' <<<"$out")" -ge 2 ] || fail "ann's microphone was not published and received"
grep -q '"subscribed_tracks":\[{' <<<"$out" || fail "ben received no track"
grep -q '"rules":\[{"kind":"audio","type":"include"}\]' <<<"$out" || fail "the recording rules were not replaced"
received="$(command curl --silent --fail -u "$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN" "$base/v1/Rooms/Studio/Participants/ben/SubscribedTracks")" || fail "reading ben's tracks failed"
grep -q '"name":"camera"' <<<"$received" && fail "ben still receives the video his rules exclude: $received"
ok "the tracks-curl block"

snippet callbacks-python >"$work/callbacks.py"
out="$(timeout 60 "$venv/bin/python" "$work/callbacks.py" 2>&1)" || fail "the callbacks-python snippet failed: $out"
echo "$out"
grep -q '^0 room-created valid$' <<<"$out" || fail "the receiver got no valid room-created"
grep -q '^1 room-ended valid$' <<<"$out" || fail "the receiver got no valid room-ended"
ROOM_SID="$(sed -n 's/^room \(RM[0-9a-f]\{32\}\)$/\1/p' <<<"$out")"
ok "the callbacks-python snippet: both events valid for RequestValidator"
curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }
# (The receiver answers before roomd records the delivery: give it a moment.)
for _ in $(seq 1 50); do
  out="$(eval "$(snippet callbacks-log)")" || fail "the callbacks-log call failed: $out"
  [ "$(grep -o '"status":"delivered"' <<<"$out" | wc -l)" -eq 2 ] && break
  sleep 0.1
done
unset -f curl
echo "$out"
[ "$(grep -o '"status":"delivered"' <<<"$out" | wc -l)" -eq 2 ] || fail "the delivery log does not show both events delivered"
ok "the callbacks-log block"

# Test clocks: an account on one (replacing the first in this shell), then the pytest example.
echo "\$ $(block test-clock-account 1)"
eval "$(snippet test-clock-account)"
[[ "${TWILIO_ACCOUNT_SID:-}" =~ ^AC[0-9a-f]{32}$ ]] || fail "the test-clock-account block set no TWILIO_ACCOUNT_SID"
ok "the test-clock-account block created $TWILIO_ACCOUNT_SID"
snippet test-clock-pytest >"$work/test_timeouts.py"
test_clock_run="$(snippet test-clock-run)"
out="$(cd "$work" && PATH="$root/$venv/bin:$PATH" && timeout 120 bash -c "$test_clock_run" 2>&1)" || fail "the test-clock pytest example failed: $out"
echo "$out"
grep -q '^1 passed' <<<"$out" || fail "the test-clock pytest example did not pass its one test: $out"
ok "the test-clock pytest example"

kill -TERM "$pid"
status=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the server did not exit within 30 s of SIGTERM"
wait "$pid" || status=$?
[ "$status" = 0 ] || fail "the server exited $status after SIGTERM"
for cmdline in /proc/[0-9]*/cmdline; do
  if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q -- "$data_dir/pgdata"; then
    fail "a PostgreSQL is still running on $data_dir: $(tr '\0' ' ' <"$cmdline")"
  fi
  if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q -- "$data_dir/janus"; then
    fail "a Janus is still running on $data_dir: $(tr '\0' ' ' <"$cmdline")"
  fi
done
ok "SIGTERM: the server exited 0 and left no PostgreSQL and no Janus running"
echo "readme: $passed passed, 0 failed"
