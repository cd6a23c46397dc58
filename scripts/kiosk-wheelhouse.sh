#!/usr/bin/env bash
# Build a folder of wheels for an offline kiosk install: `scripts/kiosk-wheelhouse.sh DIR` (on any Debian 12 / Python
# 3.11 machine with the build packages of scripts/setup.sh and a network), then on the kiosk:
#   pip install --no-index --find-links DIR "govkiosk[kiosk]"
#   pip install --no-index --find-links DIR --no-deps face_recognition==1.3.0
# DIR holds the govkiosk wheel, every dependency of the `kiosk` extra (pyscard and pycups built here) and
# face_recognition (installed without its deps: its `dlib` would compile for > 15 min; dlib-bin is the prebuilt one).
# docs/install-kiosk.md; the install test (tests/test_install_kiosk.py) uses it the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/kiosk-wheelhouse.sh DIR}
PY=${PYTHON:-python3}
mkdir -p "$out"
"$PY" -m pip wheel -q --disable-pip-version-check --wheel-dir "$out" ".[kiosk]"
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: --dest "$out" face_recognition==1.3.0
echo "$out: $(ls "$out" | wc -l) wheels"
