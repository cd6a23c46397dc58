#!/usr/bin/env bash
# Idempotent setup of a fresh Debian 12 machine (root) for the kiosk: apt packages, then a venv with the project.
# Safe to run again: it installs only what is missing. Used by `make demo` and `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth x11-utils xdotool imagemagick            # a real X display for the Kivy window, clicks, screenshots
  fonts-noto-cjk                                      # the CJK font the shell and the receipt emulator render with
  libegl1 libgl1 libgl1-mesa-dri libgles2 libmtdev1   # Mesa GL for Kivy's SDL2 window
  mosquitto mosquitto-clients                         # MQTT broker for the fleet agent/controller
  socat poppler-utils xsel                            # serial plumbing; PDF tools; clipboard probe of Kivy
  libnss3-tools                                       # certutil: pdfsig trusts the platform's seal CA in tests
  pcscd vsmartcard-vpcd pcsc-tools                    # PC/SC daemon and the virtual reader our card process uses
  libpcsclite-dev swig gcc                            # to build pyscard
  cups cups-client printer-driver-cups-pdf ghostscript  # licence printing: a private cupsd with a PDF queue
  libcups2-dev                                        # to build pycups
  postgresql                                          # the platform (and fleet) also run on PostgreSQL, tested
  chromium chromium-driver                            # the fleet dashboard is tested in headless Chromium
  espeak-ng alsa-utils                                # spoken prompts for citizens (espeak-ng → aplay)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last successful install.
stamp=.venv/.govkiosk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  # setuptools<82: face_recognition_models needs pkg_resources (shared/setup-notes.md)
  .venv/bin/pip install -q --disable-pip-version-check "setuptools<82" wheel
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi

# Face recognition cannot be a normal dependency (shared/setup-notes.md): plain `pip install face_recognition`
# compiles dlib for > 15 min. dlib-bin is the prebuilt wheel; face_recognition goes in without its deps. The two photo
# packages are only for their bundled public-domain test photos (tests/data/README.md), so no deps either.
if ! .venv/bin/pip show -q face_recognition >/dev/null 2>&1 || ! .venv/bin/pip show -q scikit-image >/dev/null 2>&1
then
  echo "setup: installing face recognition (dlib-bin, models) and the packaged test photos"
  .venv/bin/pip install -q --disable-pip-version-check "setuptools<82" dlib-bin==20.0.1.post1 \
    face_recognition_models==0.3.0
  .venv/bin/pip install -q --disable-pip-version-check --no-deps face_recognition==1.3.0 scikit-image==0.26.0 \
    matplotlib==3.11.2
fi

# Further real face photos for the face-threshold evaluation (tests/kiosk/face/test_face_evaluation.py; sources and
# licences in tests/data/README.md): the test images in face_recognition 1.3.0's source package on PyPI, and three
# pictures from Debian's opencv-doc. Only those image files are kept, in .venv/share/face-eval (nothing installed).
FACE_EVAL=.venv/share/face-eval
if [ ! -f "$FACE_EVAL/.complete" ]; then
  echo "setup: fetching the face evaluation photos (face_recognition 1.3.0 sdist, Debian opencv-doc)"
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: face_recognition==1.3.0 -d "$tmp"
  tar xzf "$tmp"/face_recognition-1.3.0.tar.gz -C "$tmp" face_recognition-1.3.0/tests/test_images
  mkdir -p "$FACE_EVAL/face_recognition" "$FACE_EVAL/opencv-doc"
  for f in obama.jpg obama2.jpg obama3.jpg biden.jpg; do
    cp "$tmp/face_recognition-1.3.0/tests/test_images/$f" "$FACE_EVAL/face_recognition/"
  done
  (cd "$tmp" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc; }; })
  html=./usr/share/doc/opencv-doc/opencv4/html
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar x -C "$tmp" "$html/lbp_yale.jpg" "$html/230501201_1.jpg" \
    "$html/227943776_1.jpg"
  cp "$tmp/$html"/{lbp_yale.jpg,230501201_1.jpg,227943776_1.jpg} "$FACE_EVAL/opencv-doc/"
  rm -rf "$tmp"
  touch "$FACE_EVAL/.complete"
fi
