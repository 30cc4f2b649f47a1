#!/usr/bin/env bash
# Installs everything this toolkit needs on a fresh Debian/Ubuntu machine:
# the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist), Chromium for the
# report's browser test, and the Python packages for all three Keras backends.
# --gpu: the backends' CUDA builds instead (requirements-gpu.txt, then torch's
# CUDA wheel from PyTorch's index; TORCH_CUDA picks its CUDA build, default cu128).
set -euo pipefail
cd "$(dirname "$0")"

GPU=0
case "${1:-}" in
  "") ;;
  --gpu) GPU=1 ;;
  *) echo "setup.sh: error: unknown option ${1}; valid: --gpu" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup.sh: error: apt-get needs root; run as root or install sudo" >&2; exit 2
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist chromium >/dev/null
if [ "$GPU" = 1 ]; then
  python3 -m pip install -q --disable-pip-version-check \
    -r requirements.txt -r requirements-gpu.txt
  TORCH_CUDA="${TORCH_CUDA:-cu128}"
  python3 -m pip install -q --disable-pip-version-check "torch==2.13.0+${TORCH_CUDA}" \
    --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"
  python3 main.py doctor
else
  python3 -m pip install -q --disable-pip-version-check \
    -r requirements.txt -r requirements-backends.txt
fi
echo "setup.sh: done"
