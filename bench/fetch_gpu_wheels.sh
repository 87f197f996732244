#!/usr/bin/env bash
# Wheels the GPU machine lacks (it has torch, transformers, peft, accelerate, opencv, numba, but no
# network): downloaded here into .whl/ (git-ignored through .git/info/exclude), carried with the run.
# Versions are the ones this project's CPU environment uses; torchao and pydantic-core for CPython 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
PY=${PYTHON:-/work/main/.venv/bin/python}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 segment-anything==1.0 torchao==0.18.0 pydantic==2.14.4 pydantic-core==2.50.5 \
  pydantic-settings==2.16.3 python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
  importlib-metadata==10.2.0 zipp==4.1.2 pymatting==1.1.16 cffi==2.1.1 pycparser==3.12
du -sh .whl
