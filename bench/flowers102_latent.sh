#!/usr/bin/env bash
# Oxford Flowers 102, all 8,189 images, at 128 px through a latent space on one GPU (nbs/05da_latents): an autoencoder of
# the flowers (f=8, 16x16x4 latents), then a class-conditional flow of its latents, then FID of the decoded samples with
# the autoencoder's rFID floor beside it. Downloads the data set (about 330 MB) on the first run; every step resumes, so
# the script can be run again after an interruption. Cost estimate and protocol: 05da_latents.
#   bench/flowers102_latent.sh [RUNS_FOLDER]        (AE_STEPS, FLOW_STEPS and N_FID override the defaults)
set -euo pipefail
out=${1:-runs/flowers102_latent}
common="--data flowers102 --split all --flip --res 128 --save_every 5000 --sample_every 5000 --resume"
train_flowers $common --objective autoencoder --model ae_kl_f8 --batch_size 32 --lr 1e-3 --warmup 500 --ema 0.999 --steps "${AE_STEPS:-25000}" --run_dir "$out/ae"
train_flowers $common --latent "$out/ae" --model unet_latent --class_cond --batch_size 128 --lr 2e-4 --warmup 1000 --steps "${FLOW_STEPS:-40000}" --run_dir "$out/flow"
# FID: N_FID samples (Euler, 100 steps, decoded) against all 8,189 images at 128 px, clean-fid's clean protocol; the autoencoder's floor beside it
eval_flowers --run_dir "$out/flow" --n "${N_FID:-10000}" --steps 100
