#!/usr/bin/env bash
# Drives a real `roomd serve` (embedded PostgreSQL in a temporary directory) through the official
# helper libraries: tests/sdk/smoke.py (twilio-python, in a venv this script creates) and
# tests/sdk/node/smoke.js (twilio-node, installed from the committed package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/../.."

. tests/sdk/setup.sh

# The binary cargo builds, wherever CARGO_TARGET_DIR puts it.
cargo build --quiet --release --bin roomd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
roomd="$target_dir/release/roomd"

work="$(mktemp -d)"
# As root, roomd runs PostgreSQL as the postgres user, which must be able to enter this directory.
chmod 755 "$work"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sid="AC$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
base="http://127.0.0.1:$port"

ROOMD_DATA_DIR="$work/data" ROOMD_BIND="127.0.0.1:$port" ROOMD_METRICS_BIND=main ROOMD_BOOTSTRAP_ACCOUNT="$sid:$token" \
  RUST_LOG=warn "$roomd" serve >"$work/roomd.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "roomd exited early:"; cat "$work/roomd.log"; exit 1
  fi
  sleep 0.1
done

# An API key of that account, from the CLI (it reaches the running serve's PostgreSQL).
key_json="$(ROOMD_DATA_DIR="$work/data" RUST_LOG=warn "$roomd" keys create --account "$sid" --friendly-name smoke)"
key_sid="$(printf '%s' "$key_json" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["sid"])')"
key_secret="$(printf '%s' "$key_json" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"

# An account on a test clock, from the CLI, for the test-clock checks.
clock_json="$(ROOMD_DATA_DIR="$work/data" RUST_LOG=warn "$roomd" accounts create --friendly-name smoke-clock --test-clock)"
clock_sid="$(printf '%s' "$clock_json" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["sid"])')"
clock_token="$(printf '%s' "$clock_json" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["auth_token"])')"

status=0
echo "-- twilio-python"
timeout 300 "$venv/bin/python" tests/sdk/smoke.py "$base" "$sid" "$token" "$key_sid" "$key_secret" "$clock_sid" "$clock_token" || status=$?
if [ -n "$node_modules" ]; then
  echo "-- twilio-node"
  timeout 300 node tests/sdk/node/smoke.js "$base" "$sid" "$token" "$key_sid" "$key_secret" || status=$?
fi
for secret in "$token" "$key_secret" "$clock_token"; do
  if grep -q "$secret" "$work/roomd.log"; then
    echo "FAIL: a secret appears in roomd's log"; status=1
  fi
done
exit "$status"
