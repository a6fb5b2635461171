"""FARMER ablation on Fashion-MNIST at the baseline's parameter count and epoch budget.

    python scripts/farmer_ablation.py --variants d c b e --epochs 10 --out runs/farmer_ablation
    python scripts/farmer_ablation.py --variants a b c d e --noise gaussian --quality 10000 --out runs/ablation_gauss
    python scripts/farmer_ablation.py --variants a b c d e --noise gaussian --patch 2 --d-I 2 --out runs/ablation_p2
    python scripts/farmer_ablation.py --variants d c e --noise gaussian --d-I 8 --set K_I=128 --out runs/ablation_k128

Variants (all from preset fmnist-cmp, ≈ 3.2 M parameters like tarflow-fmnist):
  b: flow + AR-GMM without split (d_I = d)      c: split, N(0, I) redundant prior
  d: FARMER (split, shared conditional GMM)      e: d + learned channel mixing
  a: the Gaussian-prior flow baseline (tarflow-fmnist)
Each run: class-conditional, batch 256, lr 2e-3, trained on uniform dequantization (default) or FARMER's annealed
Gaussian noise (--noise gaussian); test/train bits/dim (conditional, always under uniform dequantization),
training img/s, and with --quality n the sample quality of n class-conditional samples (classifier-FID, KID,
precision/recall, accuracy; 10_metrics). results.json is rewritten after every run, so a cut-off call keeps what finished.
"""
import argparse, json
import torch
from farmer_nb.model import build_model, get_config
from farmer_nb.train import fit
from farmer_nb.metrics import evaluate_bpd, class_samples, sample_quality
from farmer_nb.viz import save_image_grid
from farmer_nb.cli import _overrides
from runkit import add_common_args, setup

VARIANTS = {
    'a': ('Gaussian-prior flow', 'tarflow-fmnist', {}),
    'b': ('flow + AR-GMM, no split', 'fmnist-cmp', dict(d_I=16)),
    'c': ('split, N(0, I) redundant', 'fmnist-cmp', dict(redundant='normal')),
    'd': ('FARMER (shared conditional GMM)', 'fmnist-cmp', {}),
    'e': ('FARMER + learned channel mixing', 'fmnist-cmp', dict(mixing=True)),
}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--variants', nargs='+', default=list('dcbe'), choices=sorted(VARIANTS))
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--noise', default='uniform', choices=['uniform', 'gaussian'], help='training noise')
    ap.add_argument('--quality', type=int, default=0, help='also score this many samples (a multiple of 10)')
    ap.add_argument('--patch', type=int, default=4, help='patch size of every variant (4: 49 tokens of 16 values; 2: 196 of 4)')
    ap.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE', help='config overrides of the FARMER variants b-e, e.g. K_I=64')
    ap.add_argument('--d-I', type=int, default=None, help="informative channels of the split variants c, d, e (default: the preset's 4)")
    add_common_args(ap, 'runs/farmer_ablation')
    args = ap.parse_args()
    device, out, (xtr, ytr, xte, yte), env = setup(args)
    results = dict(env=env, args=vars(args), runs=[])
    for v in args.variants:
        name, preset, kw = VARIANTS[v]
        torch.manual_seed(args.seed)
        kw = {**kw, 'patch': args.patch, **({} if v == 'a' else _overrides(preset, args.set))}
        if v == 'b': kw['d_I'] = get_config(preset, patch=args.patch).d    # no split: every channel is informative
        elif v != 'a' and args.d_I is not None: kw['d_I'] = args.d_I
        cfg = get_config(preset, **kw)
        model = build_model(cfg).to(device)
        params = sum(p.numel() for p in model.parameters())
        print(f"== ({v}) {name}: {params / 1e6:.2f}M parameters", flush=True)
        tr = fit(model, xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 max_steps=args.max_steps, log_every=50, noise=args.noise)
        te, trn = evaluate_bpd(model, xte, yte, seed=1), evaluate_bpd(model, xtr, ytr, seed=2)
        run = dict(variant=v, name=name, preset=preset, overrides=kw, params=params, steps=tr['steps'], skipped=tr['skipped'],
                   train_seconds=tr['seconds'], train_img_per_s=tr['img_per_s'], test_bpd=te['bpd'], test_bpd_se=te['se'],
                   train_bpd=trn['bpd'], bpd_kind='conditional, uniform dequantization, +ln128', noise=args.noise, log=tr['log'])
        if args.quality:
            fake, labels = class_samples(model.eval(), args.quality, 1000, args.seed)
            run['quality'] = sample_quality(fake, xte[:args.quality], labels)
        print({k: x for k, x in run.items() if k != 'log'}, flush=True)
        labels = torch.arange(10, device=device).repeat_interleave(10) % cfg.num_classes
        save_image_grid(model.sample(labels, generator=torch.Generator(device=device).manual_seed(0)), out/f'samples_{v}.png', nrow=10)
        results['runs'].append(run)
        (out/'results.json').write_text(json.dumps(results, indent=1))
    for r in results['runs']:
        print(f"({r['variant']}) {r['name']:34s} {r['params']/1e6:.2f}M  test {r['test_bpd']:.3f} ± {r['test_bpd_se']:.3f}  "
              f"train {r['train_bpd']:.3f}  {r['train_img_per_s']:,.0f} img/s")

if __name__ == '__main__':
    main()
