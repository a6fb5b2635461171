"""Plot training curves from `log.jsonl` files (one per run) into a PNG.

    python scripts/curves.py results/fmnist_base_20min/log.jsonl --marks 3680 --out results/fmnist_base_20min/curve.png
    python scripts/curves.py results/stability_fmnist/*/log.jsonl --out results/stability_fmnist/curves.png

Left: the training loss (nats/dim of the noisy data, the quantity the optimizer sees); right: the gradient norm
before clipping. Each run is labelled by its folder name; --marks draws dashed lines at those steps (e.g. where
a run was stopped and resumed).
"""
import argparse, json
from pathlib import Path
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('logs', nargs='+'); ap.add_argument('--marks', type=int, nargs='*', default=[])
    ap.add_argument('--out', required=True); ap.add_argument('--title', default='')
    args = ap.parse_args()
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
    for f in args.logs:
        rows = [json.loads(l) for l in Path(f).read_text().splitlines()]
        steps = [r['step'] for r in rows]
        axs[0].plot(steps, [r['loss'] for r in rows], lw=1, label=Path(f).parent.name)
        axs[1].plot(steps, [r['grad_norm'] for r in rows], lw=0.8)
    for ax in axs:
        for m in args.marks: ax.axvline(m, ls='--', c='k', lw=0.8)
    lo = min(min(l.get_ydata()) for l in axs[0].lines)
    axs[0].set(xlabel='step', ylabel='training loss (nats/dim)', ylim=(lo - 0.1, lo + 2.0), title=args.title)
    axs[1].set(xlabel='step', ylabel='gradient norm (before clipping)', yscale='log')
    if len(args.logs) > 1: axs[0].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(args.out, dpi=110); print(f"wrote {args.out}")

if __name__ == '__main__':
    main()
