#!/usr/bin/env bash
# Creates .venv and installs packshot.
#   scripts/setup.sh demo   the classic path only (no torch, no model or provider extras): `make demo`
#   scripts/setup.sh test   everything the tests use (the dev extra): `make test`, `make setup`
# For the test set-up, CPU machines get the CPU torch 2.13.0 wheel and never the CUDA packages;
# machines with an NVIDIA driver get PyPI's CUDA build of the same torch version and the gpu extra.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-test}
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip setuptools wheel
if [ "$TARGET" = demo ]; then
  echo "setup: the classic path (core dependencies only; extras: see README 'What the set-up installs')"
  pip install -q -c constraints/cpu.txt -e .
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found, installing CUDA torch 2.13.0 and the GPU extras"
  pip install -q -c constraints/gpu.txt "torch==2.13.0"
  pip install -q -c constraints/gpu.txt -e ".[dev,gpu]"  # the versions the GPU image is built with
else
  # TORCH_INDEX_URL lets a CPU machine elsewhere point at the CPU wheel index, e.g.
  # https://download.pytorch.org/whl/cpu ; here pip's find-links already holds the CPU wheel.
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
  else
    pip install -q "torch==2.13.0"
  fi
  pip install -q -c constraints/cpu.txt -e ".[dev]"
fi
.venv/bin/python -c "import torch; print('setup: torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
