#!/usr/bin/env bash
# Runs a benchmark in bench/.venv, the only environment that holds the peer library torchcfm:
#   bench/run.sh bench_2d.py [options]       2-D flow matching against TorchCFM
#   bench/run.sh bench_models.py [options]   UNet / DiT training speed against TorchCFM's UNet
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
script="$1"; shift
exec bench/.venv/bin/python "bench/$script" "$@"
