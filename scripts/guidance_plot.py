"""One figure from several `guidance_sweep.py` results: classifier-FID and conditional accuracy against w.

    python scripts/guidance_plot.py results/guidance_fmnist/pretrained_tv1/results.json \
        results/guidance_fmnist/pretrained_tv1_cpu/results.json results/guidance_fmnist/pretrained_s20/results.json \
        --out results/guidance_fmnist/sweep_tv1.png

Each curve is one rule and candidate count (resampling: s_c = s_u = s); the unguided FID is a dashed line and
the real-vs-real floor a grey one.
"""
import argparse, json
from pathlib import Path
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('results', nargs='+'); ap.add_argument('--out', required=True); ap.add_argument('--title', default='')
    args = ap.parse_args()
    curves, none, floor = {}, None, None
    for f in args.results:
        r = json.loads(Path(f).read_text()); floor = r['floor']
        for q in r['runs']:
            if q['rule'] == 'none': none = q; continue
            key = q['rule'] if q['rule'] == 'naive' else f"resampling, s = {r['args']['s']}"
            curves.setdefault(key, {})[q['w']] = q                                    # the same w twice: the later file wins
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.3))
    for ax, key, label in zip(axs, ['fid', 'cond_accuracy'], ['classifier-FID (10,000 samples)', 'conditional accuracy']):
        for name, pts in sorted(curves.items()):
            ws = sorted(pts); ax.plot(ws, [pts[w][key] for w in ws], marker='o', label=name)
        if none: ax.axhline(none[key], ls='--', c='k', lw=1, label='no guidance')
        ax.set(xlabel='guidance weight w', ylabel=label)
    axs[0].axhline(floor['fid'], c='grey', lw=0.8, label='real vs real'); axs[1].axhline(0.95, c='grey', lw=0.8, ls=':', label='95 %')
    axs[0].legend(fontsize=7); axs[1].legend(fontsize=7); axs[0].set_title(args.title, fontsize=9)
    fig.tight_layout(); fig.savefig(args.out, dpi=110); print(f"wrote {args.out}")

if __name__ == '__main__':
    main()
