"""Train and measure the Gaussian-prior flow baseline on Fashion-MNIST (the baseline table of tutorials/results/results_model.ipynb).

    python scripts/baseline_fmnist.py --epochs 10 40 --out runs/baseline_fmnist
    python scripts/baseline_fmnist.py --epochs 10 --set clip=0 --fit grad_clip=inf --bench-batches

Trains one model per entry of --epochs (each with its own cosine schedule), then for each: test and train
bits/dim (conditional, uniform dequantization), training img/s, the flow round-trip error on test images,
sampling img/s at each --bench-batches size (sequential inverse, eager and CUDA graph), and a sample grid.
Everything lands in --out as results.json and PNG files.
"""
import argparse, json
import numpy as np
import torch
import math
from farmer_nb.data import dequantize, patchify, nll_to_bpd
from farmer_nb.model import GaussianFlow, get_config, save_model, standard_normal_logprob
from farmer_nb.flow import GraphedInverse, permute_tokens, _shift_right
from farmer_nb.train import fit
from farmer_nb.metrics import evaluate_bpd, median_time
from farmer_nb.viz import save_image_grid, plot_curve
from runkit import add_common_args, setup

def bench_sampling(model, batch_sizes, device, reps=5):
    "img/s of model.sample (sequential inverse) per batch size, eager and (on CUDA) CUDA-graph replay."
    rows = []
    for B in batch_sizes:
        labels = torch.arange(B, device=device) % model.cfg.num_classes
        row = dict(batch=B, eager_s=median_time(lambda: model.sample(labels), device, reps=reps))
        if device.type == 'cuda':
            z = torch.randn(B, model.cfg.N, model.cfg.d, device=device)
            g = GraphedInverse(model.flow, z, labels)
            row['graph_max_abs_diff'] = (g(z, labels) - model.flow.inverse(z, labels)).abs().max().item()
            row['graph_s'] = median_time(lambda: model.sample(labels, inverse=g), device, reps=reps)
        for k in ('eager', 'graph'):
            if f'{k}_s' in row: row[f'{k}_img_per_s'] = B / row[f'{k}_s']
        print('sampling', row, flush=True)
        rows.append(row)
    return rows

def parse_value(v):
    "'true'/'false' → bool, 'inf' and numbers → float or int, anything else stays a string."
    if v.lower() in ('true', 'false'): return v.lower() == 'true'
    for t in (int, float):
        try: return t(v)
        except ValueError: pass
    return v

@torch.no_grad()
def dim_nll(model, X, c):
    "Each dimension's share of the NLL in nats, (B, N, d): 0.5·z² + 0.5·ln 2π + Σ_t a_t (its log-scales)."
    share = torch.zeros_like(X, dtype=torch.float32)                      # (B, N, d), spatial order
    for blk in model.flow.blocks:
        xp = permute_tokens(X, blk.reverse)                               # block order
        lab = None if blk.class_emb is None else c
        a, mu = map(_shift_right, blk.params(blk.transformer(blk.embed(xp, 0, lab))))
        share += permute_tokens(a, blk.reverse)                           # −log σ = a
        X = permute_tokens((xp.float() - mu) * torch.exp(-a), blk.reverse)
    return share + 0.5 * X.pow(2) + 0.5 * math.log(2 * math.pi)

@torch.no_grad()
def zero_pixel_bpd(model, images, labels, device, batch=1000, seed=1):
    """Bits/dim of the pixels that are 0 in the uint8 image vs the rest (same dequantization as the test bits/dim),
    and per image: its bits/dim and the bits summed over its zero and its other pixels (`per_image`, numpy)."""
    g = torch.Generator(device=device).manual_seed(seed)
    sums, counts, gap = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 0.0
    per = dict(bpd=[], zero_bits=[], other_bits=[], zero_count=[])
    for i in range(0, len(images), batch):
        x, c = images[i:i + batch].to(device), labels[i:i + batch].to(device)
        X = patchify(dequantize(x, 'uniform', generator=g), model.cfg.patch)          # (B, N, d)
        bits = nll_to_bpd(dim_nll(model, X, c)).double().cpu()                         # (B, N, d)
        zero = patchify(x.float(), model.cfg.patch).eq(0).cpu()                          # (B, N, d)
        Z, logdet = model.flow(X, c)
        total = nll_to_bpd(-(standard_normal_logprob(Z) + logdet) / model.cfg.D).double().cpu()  # (B,)
        gap = max(gap, (bits.mean((1, 2)) - total).abs().max().item())
        for k, m in enumerate((zero, ~zero)):
            sums[k] += bits[m].sum(); counts[k] += m.sum()
        per['bpd'].append(total); per['zero_count'].append(zero.sum((1, 2)))
        per['zero_bits'].append((bits * zero).sum((1, 2))); per['other_bits'].append((bits * ~zero).sum((1, 2)))
    return dict(zero_bpd=(sums[0] / counts[0]).item(), nonzero_bpd=(sums[1] / counts[1]).item(),
                zero_frac=(counts[0] / counts.sum()).item(), decomposition_max_err=gap,
                per_image={k: torch.cat(v).numpy() for k, v in per.items()})

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, nargs='+', default=[10, 40], help='one training run per value')
    ap.add_argument('--preset', default='tarflow-fmnist')
    ap.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE', help='config overrides, e.g. n_blocks=8 depth=2')
    ap.add_argument('--fit', nargs='*', default=[], metavar='ARG=VALUE',
                    help="fit() overrides, e.g. grad_clip=inf embed_decay=false weight_decay=1e-4")
    ap.add_argument('--bench-batches', type=int, nargs='*', default=[1, 1024],
                    help='sampling benchmark batch sizes (none: skip the benchmark)')
    add_common_args(ap, 'runs/baseline_fmnist')
    args = ap.parse_args()
    device, out, (xtr, ytr, xte, yte), env = setup(args)
    results = dict(env=env, args=vars(args), runs=[])

    for epochs in args.epochs:
        torch.manual_seed(args.seed)
        cfg = get_config(args.preset, **{k: parse_value(v) for k, v in (a.split('=', 1) for a in args.set)})
        model = GaussianFlow(cfg).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"== {epochs} epochs, {n_params / 1e6:.2f}M parameters, config {cfg}", flush=True)
        fit_kw = {k: parse_value(v) for k, v in (a.split('=', 1) for a in args.fit)}
        tr = fit(model, xtr, ytr, epochs=epochs, batch_size=args.batch_size, lr=args.lr, noise='uniform',
                 seed=args.seed, max_steps=args.max_steps, log_every=50, **fit_kw)
        test_r = evaluate_bpd(model, xte, yte, seed=1)
        train_r = evaluate_bpd(model, xtr, ytr, seed=2)
        null_r = evaluate_bpd(model, xte, None, seed=1)
        pixels = zero_pixel_bpd(model, xte, yte, device)
        np.savez_compressed(out/f'per_image_{epochs}ep.npz', labels=yte.numpy(), **pixels.pop('per_image'))
        with torch.no_grad():                                            # flow round trip on real test images
            X = patchify(dequantize(xte[:1000].to(device), 'uniform'), cfg.patch)
            Z, _ = model.flow(X, yte[:1000].to(device))
            rt = ((model.flow.inverse(Z, yte[:1000].to(device)) - X).abs().max() / X.abs().max()).item()
        run = dict(epochs=epochs, params=n_params, steps=tr['steps'], skipped=tr['skipped'], train_seconds=tr['seconds'],
                   train_img_per_s=tr['img_per_s'], test_bpd=test_r['bpd'], test_bpd_se=test_r['se'],
                   train_bpd=train_r['bpd'], train_bpd_se=train_r['se'], test_bpd_null_label=null_r['bpd'],
                   bpd_kind='conditional -log2 p(x|c)/D; uniform dequantization, +ln128', round_trip_rel_err=rt,
                   final_train_objective_bpd=tr['log'][-1]['bpd'], fit=fit_kw, config=vars(cfg),
                   nonfinite_params=sum((~torch.isfinite(p)).sum().item() for p in model.parameters()),
                   **pixels, log=tr['log'])
        print({k: v for k, v in run.items() if k != 'log'}, flush=True)
        labels = torch.arange(10, device=device).repeat_interleave(10)
        save_image_grid(model.sample(labels, generator=torch.Generator(device=device).manual_seed(0)),
                        out/f'samples_{epochs}ep.png', nrow=10)
        run['sample_redrawn'] = model.last_redrawn
        run['sampling'] = bench_sampling(model, args.bench_batches, device)
        results['runs'].append(run)
        save_model(model, out/f'model_{epochs}ep.safetensors', epochs=epochs, test_bpd=test_r['bpd'])
        (out/'results.json').write_text(json.dumps(results, indent=1))

    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for run in results['runs']:
        plot_curve(run['log'], 'bpd', ax=ax, label=f"{run['epochs']} epochs (train objective)")
        ax.scatter([run['epochs']], [run['test_bpd']], marker='*', s=80, zorder=3)
    ax.set(ylabel='bits/dim', title='Gaussian-prior flow on Fashion-MNIST (★ = test)', ylim=(None, 4.5)); ax.legend()
    fig.tight_layout(); fig.savefig(out/'curve.png', dpi=120)
    print(json.dumps([{k: v for k, v in r.items() if k != 'log'} for r in results['runs']], indent=1))

if __name__ == '__main__':
    main()
