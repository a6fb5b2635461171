#!/usr/bin/env bash
# Data parallelism on two GPUs of one host: equivalence, scaling, and resume of a two-GPU checkpoint.
#
#   bash scripts/ddp_fmnist.sh [OUT] [STEPS]        (needs 2 GPUs; about 4 minutes on two H200s)
#
# 1. fmnist-base, global batch 256, peak lr LR (default 3e-4): STEPS steps on 2 GPUs (128 images each), a
#    checkpoint, then 20 more steps resumed on 2 GPUs; the same STEPS+20 steps straight on 1 GPU.
# 2. The step-STEPS checkpoint written by the two-GPU run, resumed for 20 steps on one GPU and for 2 steps on
#    the CPU (CPU_RESUME=0 skips the CPU part, to run it elsewhere).
# 3. Training-step throughput on 1 and 2 GPUs at a fixed batch per GPU (farmer bench train), for fmnist-base
#    (256 per GPU, fp32) and the paper-shaped flow imagenet256-p16-flow8 (64 per GPU, bf16); BENCH= skips it.
# Then: python scripts/ddp_report.py OUT --stop STEPS
set -euo pipefail
OUT=${1:-runs/ddp}; STEPS=${2:-300}
ONE="python -m farmer_nb.cli"
TWO="torchrun --standalone --nproc-per-node=2 -m farmer_nb.cli"
PRESET=${PRESET:-fmnist-base}; BATCH=${BATCH:-256}; LR=${LR:-3e-4}     # (smaller ones for a smoke test on a CPU)
RUN=(train --preset "$PRESET" --epochs 10 --batch-size "$BATCH" --lr "$LR" --noise uniform --log-every 10 --checkpoint-every 100000)
mkdir -p "$OUT/resume_gpu1" "$OUT/resume_cpu"

$TWO "${RUN[@]}" --stop-at-step "$STEPS" --out "$OUT/gpu2"
for d in resume_gpu1 resume_cpu; do cp "$OUT/gpu2/checkpoint.safetensors" "$OUT/gpu2/log.jsonl" "$OUT/$d/"; done
$TWO "${RUN[@]}" --resume --stop-at-step $((STEPS + 20)) --out "$OUT/gpu2"
CUDA_VISIBLE_DEVICES=0 $ONE "${RUN[@]}" --stop-at-step $((STEPS + 20)) --out "$OUT/gpu1"
CUDA_VISIBLE_DEVICES=0 $ONE "${RUN[@]}" --resume --stop-at-step $((STEPS + 20)) --out "$OUT/resume_gpu1"
if [ "${CPU_RESUME:-1}" = 1 ]; then
  $ONE "${RUN[@]}" --device cpu --resume --stop-at-step $((STEPS + 2)) --log-every 1 --out "$OUT/resume_cpu"
fi

for spec in ${BENCH-fmnist-base:256:fp32 imagenet256-p16-flow8:64:bf16}; do
  IFS=: read -r preset batch prec <<< "$spec"
  CUDA_VISIBLE_DEVICES=0 $ONE bench train --preset "$preset" --batches "$batch" --precision "$prec" --reps 10 --out "$OUT/bench_${preset}_1gpu.json"
  $TWO bench train --preset "$preset" --batches "$batch" --precision "$prec" --reps 10 --out "$OUT/bench_${preset}_2gpu.json"
done
