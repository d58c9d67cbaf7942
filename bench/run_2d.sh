#!/usr/bin/env bash
# The 2-D benchmark against TorchCFM: bench/run_2d.sh [bench_2d.py options]
# torchcfm goes into bench/.venv only, never into the project's own environment.
set -e
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  if [ -d .venv ]; then  # reuse the project's venv (torch, flowers_fm) through a .pth file
    .venv/bin/python -c "import site; print('import site; site.addsitedir(%r)' % site.getsitepackages()[0])" > "$(bench/.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')/project.pth"
  else
    bench/.venv/bin/pip install -e .
  fi
  bench/.venv/bin/pip install --no-deps torchcfm==1.0.7
fi
exec bench/.venv/bin/python bench/bench_2d.py "$@"
