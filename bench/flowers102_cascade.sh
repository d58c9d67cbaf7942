#!/usr/bin/env bash
# Oxford Flowers 102, all 8,189 images, at 64 and 128 px on one GPU: the cascade 32 -> 64 -> 128 of nbs/09_multiscale,
# then FID at 64 px (base and first stage) and at 128 px (the whole chain). Downloads the data set (about 330 MB) on the
# first run; every step resumes, so the script can be run again after an interruption. Cost and protocol: 09_multiscale.
#   bench/flowers102_cascade.sh [RUNS_FOLDER]        (BASE_STEPS, STAGE_STEPS and N_FID override the defaults)
set -euo pipefail
out=${1:-runs/flowers102}
common="--data flowers102 --split all --flip --precision bf16 --channels_last --batch_size 128 --lr 2e-4 --warmup 1000 --save_every 5000 --sample_every 5000 --resume"
train_flowers $common --res 32 --model unet32 --steps "${BASE_STEPS:-100000}" --run_dir "$out/base32"
train_flowers $common --res 64 --cond_res 32 --model unet64 --steps "${STAGE_STEPS:-50000}" --run_dir "$out/up64"
train_flowers $common --res 128 --cond_res 64 --model unet128 --steps "${STAGE_STEPS:-50000}" --run_dir "$out/up128"
# FID: N_FID samples (Euler, 100 steps per model) against all 8,189 images at the top resolution, clean-fid's clean protocol
eval_flowers --run_dir "$out/base32" --stages "$out/up64" --n "${N_FID:-10000}" --steps 100
eval_flowers --run_dir "$out/base32" --stages "$out/up64,$out/up128" --n "${N_FID:-10000}" --steps 100
