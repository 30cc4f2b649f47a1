#!/usr/bin/env bash
# Installs everything this toolkit needs on a fresh Debian/Ubuntu machine:
# the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist), Chromium for the
# report's browser test, and the Python packages for all three Keras backends.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup.sh: error: apt-get needs root; run as root or install sudo" >&2; exit 2
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist chromium >/dev/null
python3 -m pip install -q --disable-pip-version-check \
  -r requirements.txt -r requirements-backends.txt
echo "setup.sh: done"
