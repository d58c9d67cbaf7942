#!/usr/bin/env bash
# Everything that needs a GPU, in one go (under 8 minutes on one GPU): the `#| cuda` cells of nbs/10a_gpu.ipynb (two-step
# runs with bf16, fp16 and its scaler, channels-last, torch.compile, a one-process NCCL group, FID features on the GPU),
# then the GPU benchmark of the models (images/s and the fraction of bf16 peak). Run from the repository root:
#   bench/gpu_check.sh            (installs the package with its dev extras first if flowers_fm is not importable)
set -uo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=disabled MPLBACKEND=Agg
python -c "import flowers_fm" 2>/dev/null || pip install -q -e ".[dev]"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "gpu_check: no GPU visible"; exit 1; }
status=0
echo "== cuda cells"
timeout 300 nbdev_test --flags cuda --path nbs/10a_gpu.ipynb --do_print || status=1
echo "== GPU benchmark"
timeout 240 python bench/bench_models.py --device cuda --models unet32 unet64 dit_b2 --res-list 32 64 \
  --modes bf16 bf16+channels_last bf16+compile+fused --batch 128 --steps 20 --warmup 5 --peak_tflops 989 \
  --out bench/results_models_gpu.jsonl || status=1
echo "gpu_check: $([ $status -eq 0 ] && echo ok || echo FAILED)"
exit $status
