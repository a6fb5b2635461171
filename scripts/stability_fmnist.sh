#!/usr/bin/env bash
# Numerical stability: fmnist-small for 40 epochs at peak lr 2e-3 and 4e-3, three seeds each, every run
# checked for non-finite losses (skipped steps) and non-finite weights.
#
#   bash scripts/stability_fmnist.sh [OUT] [PER_GPU]       (PER_GPU runs share each GPU at once; default 3)
#
# Resumable: every run continues from its checkpoint, so the same command after an interruption (or with
# STOP=N to stop every run at step N, or STOP_AFTER=MINUTES) picks up where it was. PRESET picks the model
# (default fmnist-small), SET="field=value ..." changes its config (farmer train --set), e.g.
#   SET="final_norm=false in_clip=32" bash scripts/stability_fmnist.sh runs/stability_no_norm
# Summary: python scripts/stability_report.py OUT
set -uo pipefail
OUT=${1:-runs/stability}; PER_GPU=${2:-3}; EPOCHS=${EPOCHS:-40}; PRESET=${PRESET:-fmnist-small}
# the GPUs to use: those CUDA_VISIBLE_DEVICES names, else every one present
IFS=, read -ra GPU_IDS <<< "${CUDA_VISIBLE_DEVICES:-$(python -c "import torch; print(','.join(map(str, range(max(1, torch.cuda.device_count())))))")}"
GPUS=${#GPU_IDS[@]}
mkdir -p "$OUT"
i=0
for lr in 2e-3 4e-3; do
  for seed in 0 1 2; do
    run="$OUT/lr${lr}_seed${seed}"
    gpu=${GPU_IDS[$(( (i / PER_GPU) % GPUS ))]}; i=$((i + 1))
    ( CUDA_VISIBLE_DEVICES=$gpu python -m farmer_nb.cli train --preset "$PRESET" --epochs "$EPOCHS" --lr "$lr" --seed "$seed" \
        --resume ${SET:+--set $SET} ${STOP:+--stop-at-step $STOP} ${STOP_AFTER:+--stop-after $STOP_AFTER} --sample-every 0 --out "$run" >> "$run.log" 2>&1
      echo "$run: exit $?" ) &
  done
done
wait
