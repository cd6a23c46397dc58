#!/usr/bin/env bash
# Run the test suite. The end-to-end tests start their own Xvfb; everything else needs no display.
set -euo pipefail
cd "$(dirname "$0")/.."
export KIVY_NO_ARGS=1 KIVY_NO_FILELOG=1 KIVY_LOG_MODE=PYTHON
export KIVY_HOME="${KIVY_HOME:-$PWD/var/kivy-home}"
mkdir -p "$KIVY_HOME" test-output
exec .venv/bin/python -m pytest "$@"
