#!/usr/bin/env bash
# Run-to-run determinism on a GPU: the same fmnist-small run (seed 0, STEPS steps) twice with --deterministic
# and twice without; prints the largest difference between the two loss curves of each pair.
#
#   bash scripts/determinism_gpu.sh [OUT] [STEPS]
set -euo pipefail
OUT=${1:-runs/determinism}; STEPS=${2:-500}
mkdir -p "$OUT"
for mode in default deterministic; do
  for k in 1 2; do
    python -m farmer_nb.cli train --preset fmnist-small --steps "$STEPS" --log-every 10 --sample-every 0 --test-n 1000 \
      $([ $mode = deterministic ] && echo --deterministic) --out "$OUT/$mode$k" > "$OUT.$mode$k.log" 2>&1 || echo "$mode$k failed: see $OUT.$mode$k.log"
  done
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1]); res = {}
for mode in ('default', 'deterministic'):
    logs = [[json.loads(l) for l in (out/f'{mode}{k}'/'log.jsonl').read_text().splitlines()] for k in (1, 2) if (out/f'{mode}{k}'/'log.jsonl').exists()]
    if len(logs) == 2:
        d = max(abs(a['loss'] - b['loss']) for a, b in zip(*logs))
        res[mode] = dict(rows=len(logs[0]), max_abs_loss_diff=d, identical=d == 0.0)
print(json.dumps(res, indent=1)); (out/'summary.json').write_text(json.dumps(res, indent=1))
PY
