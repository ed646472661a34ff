#!/usr/bin/env bash
# The console's browser suite: a real `roomd serve` (its embedded PostgreSQL, no media plane) and
# headless Chromium driven by tests/console/drive.py (selenium), with the API driven beside it.
# It writes the README's screenshots (docs/console/*.png) as it goes, so they show what the
# console shows. Skipped (exit 0) where chromium or chromedriver is missing; CI has both.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "SKIPPED: the console's browser suite needs $1"; exit 0; }
command -v chromium >/dev/null || skip "chromium (apt-get install chromium)"
command -v chromedriver >/dev/null || skip "chromedriver (apt-get install chromium-driver)"

. tests/sdk/setup.sh
SELENIUM_VERSION="4.27.1"
"$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null ||
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"

cargo build --quiet --release --bin roomd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
roomd="$target_dir/release/roomd"

work="$(mktemp -d)"
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
sid="AC$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
env ROOMD_DATA_DIR="$work/data" ROOMD_BIND="127.0.0.1:$port" ROOMD_METRICS_BIND=main ROOMD_MEDIA=off \
  ROOMD_BOOTSTRAP_ACCOUNT="$sid:$token" ROOMD_CALLBACK_DENY=none RUST_LOG=info \
  "$roomd" serve >"$work/roomd.log" 2>&1 &
pids+=($!)
roomd_pid=$!
for _ in $(seq 1 600); do
  if python3 -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$roomd_pid" 2>/dev/null || { echo "roomd exited early:"; tail -50 "$work/roomd.log"; exit 1; }
  sleep 0.1
done

account() {
  ROOMD_DATA_DIR="$work/data" RUST_LOG=warn "$roomd" accounts create --friendly-name "$@"
}
other_json="$(account "Another team")"
clock_json="$(account "CI suite" --test-clock)"

status=0
timeout 300 "$venv/bin/python" tests/console/drive.py \
  --roomd "$base" --account "$sid" --token "$token" \
  --other "$other_json" --clocked "$clock_json" --shots docs/console || status=$?
if [ "$status" != 0 ]; then
  echo "-- roomd log (last 40 lines)"
  tail -40 "$work/roomd.log" | cut -c1-400
fi
exit "$status"
