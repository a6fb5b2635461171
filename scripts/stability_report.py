"""Summarise `scripts/stability_fmnist.sh`: per run, steps, skipped (non-finite) steps, non-finite weights,
the last logged loss and the test bits/dim.

    python scripts/stability_report.py runs/stability [--out results/stability_fmnist.json]
"""
import argparse, json, math
from pathlib import Path
import torch
from farmer_nb.model import load_model, read_tensors

def summary(run):
    "One row for a run folder."
    log = [json.loads(l) for l in (run/'log.jsonl').read_text().splitlines()] if (run/'log.jsonl').exists() else []
    row = dict(run=run.name, steps=log[-1]['step'] if log else 0, skipped=log[-1]['skipped'] if log else None,
               last_loss=log[-1]['loss'] if log else None, nan_losses=sum(not math.isfinite(r['loss']) for r in log))
    if (run/'checkpoint.safetensors').exists():                     # the training state: exact step and skip counts
        loop = json.loads(read_tensors(run/'checkpoint.safetensors', ('farmer_nb.train/1',))[1]['loop'])
        row.update(steps=loop['step'], skipped=loop['skipped'])
    ckpt = run/'model.safetensors' if (run/'model.safetensors').exists() else run/'checkpoint.safetensors'
    if ckpt.exists():
        model = load_model(ckpt)
        row['nonfinite_weights'] = sum(int((~torch.isfinite(p)).sum()) for p in model.state_dict().values() if p.is_floating_point())
    if (run/'results.json').exists():
        r = json.loads((run/'results.json').read_text()); row.update(test_bpd=r['test_bpd'], finished=True)
    return row

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('folder'); ap.add_argument('--out', default=None)
    args = ap.parse_args()
    rows = [summary(d) for d in sorted(Path(args.folder).iterdir()) if d.is_dir()]
    for r in rows: print(r)
    # without the model files (results copied off the training machine), a finite test bits/dim of the saved model
    # stands in for the weight check: one non-finite weight makes every likelihood non-finite
    ok = all(r['skipped'] == 0 and r['nan_losses'] == 0 and r.get('nonfinite_weights', 0) == 0
             and math.isfinite(r.get('test_bpd', math.nan)) for r in rows)
    print('no non-finite loss or weight in any run' if ok else 'SOME RUN HAD NON-FINITE LOSSES OR WEIGHTS')
    if args.out: Path(args.out).write_text(json.dumps(dict(rows=rows, all_finite=ok), indent=1))

if __name__ == '__main__':
    main()
