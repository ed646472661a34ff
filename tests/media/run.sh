#!/usr/bin/env bash
# The browser suite: a real `roomd serve` with its embedded Janus, and headless Chromium with
# fake camera and microphone, carrying real audio and video, driven by tests/media/drive.py
# (selenium) with Access Tokens minted by twilio-python.
#
# Janus skips loopback interfaces when it gathers ICE candidates, so everything runs in a network
# namespace of its own whose veth carries 127.0.1.1 (ROOMD_MEDIA_IP): only loopback addresses,
# nothing leaves the machine. That needs root; the suite says so and is skipped (exit 0) where
# root, `ip`, janus, chromium or chromedriver is missing. CI has them all (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "SKIPPED: the browser suite needs $1"; exit 0; }
[ "$(id -u)" = 0 ] || skip "root (for a network namespace)"
command -v ip >/dev/null || skip "ip (iproute2)"
command -v janus >/dev/null || skip "janus (apt-get install janus)"
command -v chromium >/dev/null || skip "chromium (apt-get install chromium)"
command -v chromedriver >/dev/null || skip "chromedriver (apt-get install chromium-driver)"
for js in janus-gateway/janus.js webrtc-adapter/adapter.js; do
  [ -f "/usr/share/javascript/$js" ] || skip "/usr/share/javascript/$js (apt-get install libjs-janus-gateway libjs-webrtc-adapter)"
done

. tests/sdk/setup.sh
SELENIUM_VERSION="4.27.1"
"$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null ||
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"

cargo build --quiet --release --bin roomd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
roomd="$target_dir/release/roomd"

work="$(mktemp -d)"
chmod 755 "$work"
ns="roomd-media-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx ip link add rdveth0 type veth peer name rdveth1
nsx ip addr add 127.0.1.1/32 dev rdveth0
nsx ip link set rdveth1 up
nsx ip link set rdveth0 up

# The page, on its own origin, with Debian's janus.js and adapter.js beside it.
mkdir -p "$work/www/js"
cp examples/media/index.html examples/media/room.js "$work/www/"
ln -s /usr/share/javascript/janus-gateway "$work/www/js/janus-gateway"
ln -s /usr/share/javascript/webrtc-adapter "$work/www/js/webrtc-adapter"
page_origin="http://127.0.0.1:8000"
ip netns exec "$ns" "$venv/bin/python" -m http.server 8000 --bind 127.0.0.1 --directory "$work/www" >"$work/http.log" 2>&1 &
pids+=($!)

sid="AC$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
base="http://127.0.0.1:8080"
ip netns exec "$ns" env ROOMD_DATA_DIR="$work/data" ROOMD_BIND=127.0.0.1:8080 ROOMD_METRICS_BIND=main \
  ROOMD_BOOTSTRAP_ACCOUNT="$sid:$token" ROOMD_MEDIA=janus ROOMD_MEDIA_IP=127.0.1.1 \
  ROOMD_CORS_ORIGINS="$page_origin" ROOMD_MEDIA_CONNECT_TIMEOUT=30 RUST_LOG=info \
  "$roomd" serve >"$work/roomd.log" 2>&1 &
pids+=($!)
roomd_pid=$!
for _ in $(seq 1 600); do
  if nsx "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$roomd_pid" 2>/dev/null || { echo "roomd exited early:"; tail -50 "$work/roomd.log"; exit 1; }
  sleep 0.1
done

key_json="$(ROOMD_DATA_DIR="$work/data" RUST_LOG=warn "$roomd" keys create --account "$sid" --friendly-name browser)"
key_sid="$(printf '%s' "$key_json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sid"])')"
key_secret="$(printf '%s' "$key_json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"

status=0
timeout 420 ip netns exec "$ns" "$venv/bin/python" tests/media/drive.py \
  --roomd "$base" --page "$page_origin/index.html" --account "$sid" --token "$token" \
  --key "$key_sid" --secret "$key_secret" --work "$work" || status=$?
if [ "$status" = 0 ]; then
  # The recordings above were converted from the files Janus said it wrote (handle_info), not
  # from files found by their names.
  if grep -q "stream files learnt from the node" "$work/roomd.log"; then
    echo "ok: roomd learnt the recorded streams' files from Janus"
  else
    echo "FAILED: roomd never learnt a recorded stream's file from Janus"; status=1
  fi
fi
if [ "$status" != 0 ]; then
  echo "-- roomd log (last 60 lines, Janus's own lines left out)"
  grep -v janus_log "$work/roomd.log" | tail -60 | cut -c1-400
fi
exit "$status"
