#!/usr/bin/env bash
# Run the test suite. The end-to-end tests start their own Xvfb; everything else needs no display.
set -euo pipefail
cd "$(dirname "$0")/.."
export KIVY_NO_ARGS=1 KIVY_NO_FILELOG=1 KIVY_LOG_MODE=PYTHON
export KIVY_HOME="${KIVY_HOME:-$PWD/var/kivy-home}"
mkdir -p "$KIVY_HOME" test-output
# Two pytest-xdist workers: the suite waits on servers, devices and windows far more than it computes, so two take
# about 60 % of the time on two cores. A module runs whole on one worker (its module-scoped kiosk starts once), the
# tests that need pcscd (one per machine) share one worker, the long e2e modules start first (tests/conftest.py).
# TEST_WORKERS=0 runs everything in one process.
workers="${TEST_WORKERS:-2}"
xdist=()
if [[ "$workers" != 0 ]]; then
  xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
fi
exec .venv/bin/python -m pytest "${xdist[@]}" "$@"
