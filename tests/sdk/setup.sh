# Sourced by tests/sdk/run.sh and tests/readme/run.sh: the official helper libraries, pinned.
# Sets $venv (a virtualenv with twilio-python and pytest) and $node_modules (twilio-node, from the committed
# package-lock.json; empty when npm is missing, and the node checks are then skipped).
# pytest runs the README's test-clock example.
TWILIO_PYTHON_VERSION="9.11.0"
PYTEST_VERSION="8.3.5"
venv="target/sdk-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import twilio, pytest, sys; sys.exit(twilio.__version__ != '$TWILIO_PYTHON_VERSION' or pytest.__version__ != '$PYTEST_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "twilio==$TWILIO_PYTHON_VERSION" "pytest==$PYTEST_VERSION"
fi

node_modules=""
if command -v npm >/dev/null 2>&1; then
  (cd tests/sdk/node && npm ci --no-audit --no-fund --silent)
  node_modules="$PWD/tests/sdk/node/node_modules"
else
  echo "npm not found: skipping the twilio-node checks" >&2
fi
