"""Guidance sweep: sample quality of a trained FARMER under no, naive and resampling guidance.

    python scripts/guidance_sweep.py --model runs/main/model.safetensors --n 10000 --out runs/guidance

For each rule and each w, draws n class-conditional samples (n/10 per class, the same seeds across w),
scores them with the frozen feature network of 10_metrics against the Fashion-MNIST test set (FID, KID,
precision/recall/density/coverage, conditional accuracy), prints the real-vs-real floor at the same n,
times sampling at batch 1 and --bench-batch with and without guidance, and writes results.json,
sweep.png (FID and accuracy against w) and one sample grid per rule at its best w.
"""
import argparse, json, time
from pathlib import Path
import torch
from farmer_nb.data import FashionMNIST
from farmer_nb.model import load_model
from farmer_nb.guidance import NoGuidance, NaiveGuidance, Resampling
from farmer_nb.metrics import sample_quality, load_feature_net, median_time, class_samples
from farmer_nb.viz import save_image_grid

def make_rule(name, w, args):
    if name == 'none': return NoGuidance(T_sigma=args.T_sigma)
    if name == 'naive': return NaiveGuidance(w, T_sigma=args.T_sigma)
    return Resampling(w, args.s, args.s_u or args.s, T_pi=1.0, T_sigma=args.T_sigma, T_pi_v=args.T_pi_v, T_sigma_v=args.T_sigma_v, T_s=args.T_s)

def img_per_s(model, rule, B, reps=3):
    labels = torch.arange(B, device=model.device) % model.cfg.num_classes
    return B / median_time(lambda: model.sample(labels, guidance=rule), model.device, reps=reps, warmup=1)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='a model or training checkpoint (safetensors)')
    ap.add_argument('--n', type=int, default=10000, help='samples per setting (a multiple of 10)')
    ap.add_argument('--w', type=float, nargs='+', default=[0, 0.5, 1, 1.5, 2, 3, 4])
    ap.add_argument('--rules', nargs='+', default=['none', 'naive', 'resampling'])
    ap.add_argument('--s', type=int, default=5, help='candidates per stream for resampling')
    ap.add_argument('--s-u', type=int, default=None, help='candidates from the unconditional stream (default: --s)')
    ap.add_argument('--gamma', type=float, default=1.0, help="redundant-std scale γ (paper's Fig. 7), for every rule")
    ap.add_argument('--T-sigma', type=float, default=1.0)
    ap.add_argument('--T-pi-v', type=float, default=0.2)
    ap.add_argument('--T-sigma-v', type=float, default=0.9)
    ap.add_argument('--T-s', type=float, default=1.1)
    ap.add_argument('--batch', type=int, default=1000, help='sampling batch size for the sweep')
    ap.add_argument('--bench-batch', type=int, default=1024)
    ap.add_argument('--data', default=None)
    ap.add_argument('--out', default='runs/guidance')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--no-speed', action='store_true', help='skip the sampling-speed rows (e.g. on a CPU)')
    args = ap.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device).eval()
    net = load_feature_net(device=device)
    test, train = FashionMNIST('test', args.data), FashionMNIST('train', args.data)
    real = test.images[:args.n]
    floor = sample_quality(train.images[:args.n], real, train.labels[:args.n], net=net)
    print('real-vs-real floor', {k: round(v, 4) for k, v in floor.items()}, flush=True)
    res = dict(args=vars(args), floor=floor, runs=[], speed=[])
    for name in args.rules:
        for w in ([0.0] if name == 'none' else args.w):
            t0 = time.perf_counter()
            fake, labels = class_samples(model, args.n, args.batch, args.seed, guidance=make_rule(name, w, args), gamma=args.gamma)
            q = sample_quality(fake, real, labels, net=net)
            q.update(rule=name, w=w, sample_seconds=time.perf_counter() - t0, redrawn=model.last_redrawn)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in q.items()}, flush=True)
            res['runs'].append(q)
            (out/'results.json').write_text(json.dumps(res, indent=1))
    for name in args.rules:
        best = min((r for r in res['runs'] if r['rule'] == name), key=lambda r: r['fid'])
        fake, _ = class_samples(model, 100, 100, args.seed, guidance=make_rule(name, best['w'], args), gamma=args.gamma)
        save_image_grid(fake, out/f"samples_{name}_w{best['w']:g}.png", nrow=10)
    for name, w in [] if args.no_speed else [('none', 0.0), ('resampling', 2.0)]:
        for B in (1, args.bench_batch):
            res['speed'].append(dict(rule=name, w=w, batch=B, img_per_s=img_per_s(model, make_rule(name, w, args), B)))
            print(res['speed'][-1], flush=True)
    (out/'results.json').write_text(json.dumps(res, indent=1))
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(8, 3))
    for name in args.rules:
        rs = [r for r in res['runs'] if r['rule'] == name]
        for ax, key in zip(axs, ['fid', 'cond_accuracy']):
            if name == 'none': ax.axhline(rs[0][key], ls='--', c='k', lw=1, label='no guidance')
            else: ax.plot([r['w'] for r in rs], [r[key] for r in rs], marker='o', label=name)
    axs[0].axhline(floor['fid'], c='grey', lw=0.8, label='real vs real')
    axs[0].set(xlabel='w', ylabel=f'FID (classifier features, n={args.n})'); axs[1].set(xlabel='w', ylabel='conditional accuracy')
    axs[0].legend(fontsize=7); fig.tight_layout(); fig.savefig(out/'sweep.png', dpi=120)

if __name__ == '__main__':
    main()
