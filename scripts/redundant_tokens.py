"""Does a token's redundant vector depend on the token? A post-hoc refit of FARMER's shared redundant mixture.

    python scripts/redundant_tokens.py --model farmer_nb/assets/emoji64_p8.safetensors \
        --out results/emoji64/p8_token_weights

FARMER draws the N redundant vectors z^R_1..z^R_N i.i.d. from one mixture G_{N+1} predicted after the last
informative token (arXiv 2510.23588, Sec. 3.3): which of its K_R components token i uses cannot depend on i or
on what token i shows. This script keeps a trained model's components (means and scales) and refits only the
mixture **weights**, per token:

  shared     log π_k                       the trained model (FARMER)
  position   log π_k + b_ik                N × K_R numbers
  content    log π_k + b_ik + (z^I_i W)_k  and d_I × K_R more: token i's own informative channels

Every variant is an exact density (z^I is modelled before z^R and the weights are normalised per token), so the
test bits/dim are exact and differ only in the redundant term. The refit runs on `--train` training images
(Adam, full batch, on cached per-component log-densities). Then `--samples` images are drawn with one draw of
Z^I each and the redundant vectors of each variant (same uniforms and normals), and scored with the Emoji64
feature network (FID, KID, precision/recall, conditional accuracy, stripe score). Writes results.json,
samples.png (rows: shared, position, content for the same Z^I) and bits.png (bits gained per token position).
"""
import argparse, json, math, sys, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from farmer_nb.data import Emoji64, dequantize, nll_to_bpd, quantize, unpatchify
from farmer_nb.gmm import GMM, inverse_cdf
from farmer_nb.metrics import load_feature_net
from farmer_nb.model import load_model

@torch.no_grad()
def cache(model, images, labels, batch=50, seed=0):
    """Per image: log π (n, K), per-component log-densities of each token's redundant vector L (n, N, K), z^I
    (n, N, d_I), and the rest of its log-density (n,) (informative term + log-det), under uniform dequantization."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    out = {k: [] for k in ('log_pi', 'L', 'z_I', 'rest')}
    for i in range(0, len(images), batch):
        y = dequantize(images[i:i + batch].to(model.device), 'uniform', generator=g)
        X, c = model._inputs(y, labels[i:i + batch].to(model.device), 0.0, True)
        z_I, z_R, logdet = model.latent(X)                           # (B, N, d_I), (B, N, d_R), (B,)
        g_I, g_R = model.prior(z_I, c)
        u = (z_R[:, :, None] - g_R.mu[:, None]) * torch.exp(-g_R.log_sigma[:, None])   # (B, N, K, d_R)
        L = -0.5 * u.pow(2).sum(-1) - g_R.log_sigma.sum(-1)[:, None] - 0.5 * z_R.shape[-1] * math.log(2 * math.pi)
        out['log_pi'].append(F.log_softmax(g_R.logits.float(), -1))
        out['L'].append(L)
        out['z_I'].append(z_I.float())
        out['rest'].append(g_I.log_prob(z_I).sum(1) + logdet)
    return {k: torch.cat(v) for k, v in out.items()}


class TokenWeights(torch.nn.Module):
    "Per-token mixture weights log π_k + b_ik (+ (z^I_i W)_k): zero-initialised, so it starts as the shared mixture."
    def __init__(self, N, K, d_I, content):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(N, K))
        self.W = torch.nn.Parameter(torch.zeros(d_I, K)) if content else None
    def forward(self, log_pi, z_I):
        "log π (n, K), z^I (n, N, d_I) → per-token log-weights (n, N, K), normalised."
        logits = log_pi[:, None] + self.b
        if self.W is not None: logits = logits + z_I @ self.W
        return F.log_softmax(logits, -1)


def redundant_log_prob(c, weights=None):
    "log p(Z^R | Z^I) per image (n,) from a cache, with per-token weights (None: the shared mixture)."
    log_w = c['log_pi'][:, None] if weights is None else weights(c['log_pi'], c['z_I'])
    return torch.logsumexp(log_w + c['L'], -1).sum(1)


def fit(c, content, steps=400, lr=0.05):
    "Refit per-token weights on a cache by maximum likelihood (full batch Adam)."
    n, N, K = c['L'].shape
    w = TokenWeights(N, K, c['z_I'].shape[-1], content).to(c['L'].device)
    opt = torch.optim.Adam(w.parameters(), lr=lr)
    for _ in range(steps):
        loss = -redundant_log_prob(c, w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.requires_grad_(False)


def bpd(model, c, weights=None):
    "Bits/dim per image (n,) of a cache under a variant."
    return nll_to_bpd(-(c['rest'] + redundant_log_prob(c, weights)) / model.cfg.D)


@torch.no_grad()
def draw(model, labels, variants, batch=50, seed=0):
    """uint8 samples (n, C, H, W) per variant: one Z^I per image from the prior, then each variant's redundant
    vectors from the same uniforms and normals."""
    out = {v: [] for v in variants}
    for i in range(0, len(labels), batch):
        g = torch.Generator(device=model.device).manual_seed(seed + i)
        c = labels[i:i + batch].to(model.device)
        z_I, _ = model.prior.sample(c, generator=g)                                # (B, N, d_I)
        g_R = model.prior(z_I, c)[1]                                                # one shared mixture (B,)
        B, N = z_I.shape[:2]
        u = torch.rand(B, N, generator=g, device=model.device)                      # (B, N)
        eps = torch.randn(B, N, g_R.d, generator=g, device=model.device)            # (B, N, d_R)
        log_pi = F.log_softmax(g_R.logits.float(), -1)
        per_token = GMM(g_R.logits[:, None], g_R.mu[:, None], g_R.log_sigma[:, None])             # batch (B, 1)
        for name, w in variants.items():
            log_w = log_pi[:, None].expand(B, N, -1) if w is None else w(log_pi, z_I.float())   # (B, N, K)
            z_R = per_token.draw_at(inverse_cdf(log_w.exp(), u), eps)               # (B, N, d_R)
            y = unpatchify(model.flow.inverse(model.unlatent(z_I, z_R), c), model.cfg.patch, model.cfg.image_shape)
            out[name].append(quantize(y.nan_to_num(0.0)).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def bits_figure(model, c, weights, path):
    "Bits/dim gained per token position by each refit (test split), as images of the token grid."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    side, N, d = model.cfg.image_shape[1] // model.cfg.patch, model.cfg.N, model.cfg.d
    order = torch.arange(N).flip(0) if model.final_reverse else torch.arange(N)     # AR order → raster
    base = torch.logsumexp(c['log_pi'][:, None] + c['L'], -1)                       # (n, N)
    fig, axes = plt.subplots(1, len(weights), figsize=(3.2 * len(weights), 3))
    for ax, (name, w) in zip(np.atleast_1d(axes), weights.items()):
        gain = (torch.logsumexp(w(c['log_pi'], c['z_I']) + c['L'], -1) - base).mean(0)   # nats per token (N,)
        gain = gain / (d * math.log(2))                                             # bits per channel of that token
        im = ax.imshow(gain[order].reshape(side, side).cpu().numpy(), cmap="viridis")
        ax.set_title(name)
        ax.set_xticks([]); ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle('bits/dim gained per token position (test split)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='a saved Emoji64 FARMER (safetensors)')
    ap.add_argument('--train', type=int, default=3000, help='training images for the refit')
    ap.add_argument('--samples', type=int, default=750, help='samples per variant (the test labels, repeated)')
    ap.add_argument('--steps', type=int, default=400, help='Adam steps of each refit')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--out', default='runs/redundant_tokens')
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from emoji_compare import env, quality, save_png
    torch.manual_seed(0)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    model = load_model(args.model, dev).float().eval()
    if model.prior.head_R is None: sys.exit('--model: this model has no redundant mixture to refit')
    if model.prior.per_token: sys.exit("--model: its redundant mixtures are per token already (redundant='gmm-token')")
    train, test = Emoji64('train'), Emoji64('test')
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.train]
    t0 = time.perf_counter()
    c_tr, c_te = cache(model, train.images[idx], train.labels[idx]), cache(model, test.images, test.labels, seed=1)
    print(f'cached {len(idx)} + {len(test)} images in {time.perf_counter() - t0:.0f} s', flush=True)
    weights = {'shared': None, 'position': fit(c_tr, False, args.steps), 'content': fit(c_tr, True, args.steps)}
    res = dict(env=env(dev), args=vars(args), rows=[])
    for name, w in weights.items():
        te, tr = bpd(model, c_te, w), bpd(model, c_tr, w)
        res['rows'].append(dict(variant=name, test_bpd=te.mean().item(), test_se=(te.std() / len(te) ** 0.5).item(),
                                train_bpd=tr.mean().item()))
        print(json.dumps(res['rows'][-1]), flush=True)
    base = bpd(model, c_te)
    for row, w in zip(res['rows'], weights.values()):           # paired: the same images and dequantization
        diff = bpd(model, c_te, w) - base
        row['test_gain'], row['test_gain_se'] = -diff.mean().item(), (diff.std() / len(diff) ** 0.5).item()
    bits_figure(model, c_te, {k: v for k, v in weights.items() if v is not None}, out/'bits.png')
    (out/'results.json').write_text(json.dumps(res, indent=1))
    if args.samples:
        net = load_feature_net('emoji64', dev)
        labels = test.labels.repeat(math.ceil(args.samples / len(test)))[:args.samples]
        t0 = time.perf_counter()
        fakes = draw(model, labels, weights)
        print(f'{args.samples} samples × {len(weights)} in {time.perf_counter() - t0:.0f} s', flush=True)
        for row, name in zip(res['rows'], weights):
            q = quality(fakes[name], labels, test, net, model.cfg.patch)
            row.update({k: v for k, v in q.items() if not isinstance(v, (list, dict))})
            print(json.dumps(row), flush=True)
        grid = torch.stack([fakes[v][:12] for v in weights], 0).flatten(0, 1)   # rows: variants, same Z^I
        save_png(grid, out/'samples.png', nrow=12, scale=1)
    (out/'results.json').write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
