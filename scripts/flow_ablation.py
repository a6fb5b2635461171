"""Which of the flow's stabilisers cost likelihood? Switch each to the plain TarFlow choice alone, then together.

    python scripts/flow_ablation.py run --variants all --seeds 0 --epochs 10 --out runs/flow_ablation
    python scripts/flow_ablation.py report runs/flow_ablation
    python scripts/flow_ablation.py tails runs/flow_ablation      # which test images carry the mean
    python scripts/flow_ablation.py trace runs/flow_ablation/reference+clip_s0/model_10ep.safetensors --images 9596
    python scripts/flow_ablation.py probe runs/flow_ablation/reference+clip_s0/model_10ep.safetensors --images 9596

`tails` reads each run's per-image test bits (per_image_<E>ep.npz) and prints how heavy the tail is: the median
and mean bits/dim, how much of the mean the worst 10 images carry, and for the worst five their index, class
and the share of their bits spent on zero-valued pixels; with `--figure` it draws the worst images of each run.
`trace` follows test images through a saved flow, block by block: the largest |z| entering each block, the
largest value of its transformer's output h, the range of the log-scale a and the largest |mu| (for the
images named and, as the typical range, the 99.9th percentile over the first 2,000 test images).
`probe` sets the soft clip of what each block's transformer reads (`in_clip`) on a model trained without it,
at each `--in-clip` value, and reports the bits/dim of the first 2,000 test images and of each image named: a
probe of the mechanism, not a trained model (the weights never saw the clip).
`run` starts one `baseline_fmnist.py` process per (variant, seed), all at once (they share the GPU; each
writes OUT/<variant>_s<seed>/results.json and a log), `--parallel` at a time. `report` prints the table of
test and train bits/dim (mean ± sd over seeds), the bits of zero-valued pixels vs the rest, and writes
OUT/summary.json. The five differences, ours → plain TarFlow:

    clip        soft clip 4·tanh(a/4) of the log-scale      → none              (config clip=0)
    norm        LayerNorm before the output projection       → none              (config final_norm=false)
    gradclip    gradient norm clipped at 1                   → not clipped       (fit grad_clip=inf)
    classinit   class embeddings initialised N(0, 1)         → N(0, 0.01²)       (config class_std=0.01)
    embdecay    weight decay on positional/class embeddings → none              (fit embed_decay=false)
"""
import argparse, json, os, statistics, subprocess, sys, time
import numpy as np
import torch
from pathlib import Path

CHANGES = dict(clip=(['clip=0'], []), norm=(['final_norm=false'], []), gradclip=([], ['grad_clip=inf']),
               classinit=(['class_std=0.01'], []), embdecay=([], ['embed_decay=false']))
VARIANTS = {                                     # name: the changes it makes to the defaults
    'defaults': [], **{f'no-{k}' if k in ('clip', 'norm', 'gradclip', 'embdecay') else k: [k] for k in CHANGES},
    'reference': list(CHANGES),
    'reference+clip': ['norm', 'gradclip', 'classinit', 'embdecay'],
    'reference+gradclip': ['clip', 'norm', 'classinit', 'embdecay'],
    'reference+clip+gradclip': ['norm', 'classinit', 'embdecay'],
    'classinit+embdecay': ['classinit', 'embdecay'],
    'norm+classinit': ['norm', 'classinit'],
}

def command(variant, seed, args, out):
    "The baseline_fmnist.py command line of one run."
    sets = [s for k in VARIANTS[variant] for s in CHANGES[k][0]] + args.set
    fits = [f for k in VARIANTS[variant] for f in CHANGES[k][1]] + args.fit
    cmd = [sys.executable, str(Path(__file__).parent / 'baseline_fmnist.py'), '--epochs', str(args.epochs),
           '--lr', str(args.lr), '--seed', str(seed), '--bench-batches', '--out', str(out)]
    if sets: cmd += ['--set', *sets]
    if fits: cmd += ['--fit', *fits]
    if args.subset: cmd += ['--subset', str(args.subset)]
    if args.max_steps: cmd += ['--max-steps', str(args.max_steps)]
    return cmd

def run(args):
    names = list(VARIANTS) if args.variants == ['all'] else args.variants
    unknown = set(names) - set(VARIANTS)
    if unknown: sys.exit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    jobs = [(v, s, Path(args.out) / f'{v}_s{s}') for v in names for s in args.seeds]
    pending, running, t0 = list(jobs), [], time.time()
    while pending or running:
        while pending and len(running) < args.parallel:
            v, s, out = pending.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / 'log.txt', 'w')
            running.append((out, subprocess.Popen(command(v, s, args, out), stdout=log, stderr=subprocess.STDOUT,
                                                  env={**os.environ, 'PYTHONUNBUFFERED': '1'})))
        time.sleep(2)
        for out, p in [r for r in running if r[1].poll() is not None]:
            running.remove((out, p))
            print(f"{time.time() - t0:6.0f} s  {out.name}: exit {p.returncode}", flush=True)

def summarise(out):
    "One row per variant: mean and sd over its seeds of the measured numbers."
    runs = {}
    for f in sorted(Path(out).glob('*_s*/results.json')):
        r = json.loads(f.read_text())['runs'][-1]
        runs.setdefault(f.parent.name.rsplit('_s', 1)[0], []).append(r)
    rows = []
    for v, rs in runs.items():
        row = dict(variant=v, changes=VARIANTS.get(v), seeds=len(rs), skipped=sum(r['skipped'] for r in rs),
                   nonfinite_params=sum(r.get('nonfinite_params', 0) for r in rs))
        for k in ('test_bpd', 'train_bpd', 'zero_bpd', 'nonzero_bpd', 'train_seconds'):
            xs = [r[k] for r in rs if k in r]
            row[k] = statistics.mean(xs) if xs else float('nan')
            row[k + '_sd'] = statistics.stdev(xs) if len(xs) > 1 else None
        rows.append(row)
    return sorted(rows, key=lambda r: r['test_bpd'])

def report(args):
    rows = summarise(args.out)
    fmt = lambda r, k: f"{r[k]:.3f}" + (f" ± {r[k + '_sd']:.3f}" if r[k + '_sd'] is not None else '')
    print('| variant | seeds | test bpd | train bpd | zero pixels | other pixels | skipped |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['variant']} | {r['seeds']} | {fmt(r, 'test_bpd')} | {fmt(r, 'train_bpd')} | "
              f"{r['zero_bpd']:.3f} | {r['nonzero_bpd']:.3f} | {r['skipped']} |")
    (Path(args.out) / 'summary.json').write_text(json.dumps(rows, indent=1))

def tail_stats(per, top=10):
    "How heavy the tail of one run's per-image test bits/dim is (`per`: the arrays of per_image_*.npz)."
    bpd = np.asarray(per['bpd'], dtype=np.float64)                        # (n,)
    order = np.argsort(bpd)[::-1]
    rest = np.delete(bpd, order[:top])
    zero_share = per['zero_bits'] / (per['zero_bits'] + per['other_bits'])
    worst = [dict(index=int(i), label=int(per['labels'][i]), bpd=float(bpd[i]), zero_share=float(zero_share[i]),
                  zero_pixels=int(per['zero_count'][i])) for i in order[:5]]
    return dict(n=len(bpd), mean=float(bpd.mean()), median=float(np.median(bpd)), p99=float(np.quantile(bpd, 0.99)),
                mean_without_top=float(rest.mean()), top=top, above_median_plus_1=int((bpd > np.median(bpd) + 1).sum()),
                worst=worst)

def tails(args):
    rows = {}
    for f in sorted(Path(args.out).glob('*/per_image_*ep.npz')):
        with np.load(f) as per: rows[f'{f.parent.name} ({f.stem.split("_")[-1]})'] = tail_stats(dict(per))
    if not rows: sys.exit(f"{args.out}: no */per_image_*ep.npz (runs of baseline_fmnist.py write them)")
    print('| run | mean | median | 99 % | mean without worst 10 | images > median + 1 | worst (index, class, bpd, zero share) |')
    print('|---|---|---|---|---|---|---|')
    for name, r in rows.items():
        w = '; '.join(f"{x['index']} ({x['label']}) {x['bpd']:.1f} {100 * x['zero_share']:.0f} %" for x in r['worst'][:3])
        print(f"| {name} | {r['mean']:.3f} | {r['median']:.3f} | {r['p99']:.3f} | {r['mean_without_top']:.3f} | "
              f"{r['above_median_plus_1']} | {w} |")
    (Path(args.out) / 'tails.json').write_text(json.dumps(rows, indent=1))
    if args.figure: tail_figure(rows, args.figure)

def tail_figure(rows, path, k=6):
    "The k worst test images of each run, titled with their bits/dim."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from farmer_nb.data import FashionMNIST
    test = FashionMNIST('test')
    fig, axs = plt.subplots(len(rows), k, figsize=(1.3 * k, 1.5 * len(rows)), squeeze=False)
    for ax_row, (name, r) in zip(axs, rows.items()):
        for ax, x in zip(ax_row, r['worst'] + [None] * k):
            ax.set_axis_off()
            if x is None: continue
            ax.imshow(test[x['index']][0][0], cmap='gray_r', vmin=0, vmax=255)
            ax.set_title(f"{x['bpd']:.1f}", fontsize=8)
        ax_row[0].text(-0.1, 0.5, name, transform=ax_row[0].transAxes, ha='right', va='center', fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=120)

@torch.no_grad()
def block_trace(model, x, c, seed=1):
    "Per block, per image: max |z| in, max |h|, min and max a, max |mu| (dict of (n_blocks, B) arrays)."
    from farmer_nb.data import dequantize, patchify
    from farmer_nb.flow import permute_tokens, _shift_right
    g = torch.Generator().manual_seed(seed)
    X = patchify(dequantize(x, 'uniform', generator=g), model.cfg.patch)            # (B, N, d)
    out = {k: [] for k in ('z_in', 'h', 'a_min', 'a_max', 'mu')}
    for blk in model.flow.blocks:
        xp = permute_tokens(X, blk.reverse)
        h = blk.transformer(blk.embed(xp, 0, c))                                      # (B, N, width)
        a, mu = map(_shift_right, blk.params(h))
        for k, v in (('z_in', X.abs().amax((1, 2))), ('h', h.abs().amax((1, 2))), ('a_min', a.amin((1, 2))),
                     ('a_max', a.amax((1, 2))), ('mu', mu.abs().amax((1, 2)))):
            out[k].append(v.float().numpy())
        X = permute_tokens((xp.float() - mu) * torch.exp(-a), blk.reverse)
    out['z_out'] = [X.abs().amax((1, 2)).numpy()]
    return {k: np.stack(v) for k, v in out.items()}

def trace(args):
    from farmer_nb.data import FashionMNIST
    from farmer_nb.model import load_model
    model, test = load_model(args.model).float().eval(), FashionMNIST('test')
    named = block_trace(model, test.images[args.images], test.labels[args.images])
    typical = block_trace(model, test.images[:2000], test.labels[:2000])
    res = dict(model=str(args.model), images=args.images,
               named={k: v.tolist() for k, v in named.items()},
               typical_p999={k: np.quantile(v, 0.999, axis=1).tolist() for k, v in typical.items()})
    for t in range(len(model.flow.blocks)):
        row = lambda d: ', '.join(f"{k} {d[k][t] if np.ndim(d[k][t]) == 0 else d[k][t][0]:.1f}"
                                  for k in ('z_in', 'h', 'a_min', 'mu'))
        print(f"block {t}: image {args.images[0]}: {row(res['named'])}; typical (99.9 %): {row(res['typical_p999'])}")
    print(f"out: image {args.images[0]} max |z| {res['named']['z_out'][0][0]:.1f}; "
          f"typical (99.9 %) {res['typical_p999']['z_out'][0]:.1f}")
    if args.out: Path(args.out).write_text(json.dumps(res, indent=1))

def probe(args):
    from farmer_nb.data import FashionMNIST
    from farmer_nb.metrics import evaluate_bpd
    from farmer_nb.model import load_model
    model, test = load_model(args.model).float().eval(), FashionMNIST('test')
    rows = []
    for s in [0.0] + args.in_clip:
        for blk in model.flow.blocks: blk.in_clip = s
        bulk = evaluate_bpd(model, test.images[:2000], test.labels[:2000], seed=1, progress=False)['bpd']
        named = {i: evaluate_bpd(model, test.images[i:i + 1], test.labels[i:i + 1], seed=1, progress=False)['bpd']
                 for i in args.images}
        rows.append(dict(in_clip=s, first_2000_bpd=bulk, images=named))
        print(f"in_clip {s:g}: first 2,000 test images {bulk:.4f} bits/dim; "
              + ', '.join(f"image {i}: {v:,.1f}" for i, v in named.items()), flush=True)
    if args.out: Path(args.out).write_text(json.dumps(dict(model=str(args.model), rows=rows), indent=1))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run', help='train the variants side by side')
    r.add_argument('--variants', nargs='+', default=['all'], help=f"'all' or some of: {', '.join(VARIANTS)}")
    r.add_argument('--seeds', type=int, nargs='+', default=[0])
    r.add_argument('--epochs', type=int, default=10)
    r.add_argument('--lr', type=float, default=2e-3)
    r.add_argument('--parallel', type=int, default=16, help='runs at once')
    r.add_argument('--set', nargs='*', default=[], help='config overrides for every run')
    r.add_argument('--fit', nargs='*', default=[], help='fit() overrides for every run')
    r.add_argument('--subset', type=int, default=None, help='smoke tests: first n images')
    r.add_argument('--max-steps', type=int, default=None, help='smoke tests: stop after n steps')
    r.add_argument('--out', default='runs/flow_ablation')
    p = sub.add_parser('report', help='tabulate finished runs')
    p.add_argument('out')
    t = sub.add_parser('tails', help="the worst test images of each run, from its per-image bits")
    t.add_argument('out')
    t.add_argument('--figure', default=None, help='draw the worst images of each run to this PNG')
    tr = sub.add_parser('trace', help='follow test images through a saved flow, block by block')
    tr.add_argument('model')
    tr.add_argument('--images', type=int, nargs='+', default=[0], help='test-image indices')
    tr.add_argument('--out', default=None, help='write the JSON here')
    pr = sub.add_parser('probe', help="a model's bits/dim with the transformers' input soft-clipped afterwards")
    pr.add_argument('model')
    pr.add_argument('--images', type=int, nargs='+', default=[0], help='test-image indices')
    pr.add_argument('--in-clip', type=float, nargs='+', default=[64.0, 32.0], help='values of s to try')
    pr.add_argument('--out', default=None, help='write the JSON here')
    args = ap.parse_args()
    dict(run=run, report=report, tails=tails, trace=trace, probe=probe)[args.cmd](args)

if __name__ == '__main__':
    main()
