"""Emoji64 runs at equal wall-clock: train one model for a fixed time, then score it; or score a saved model
under guidance and redundant-std scales; or draw what a saved FARMER's informative and redundant channels hold.

    python scripts/emoji_compare.py train --preset emoji64-p8 --minutes 8 --out runs/emoji/p8
    python scripts/emoji_compare.py train --preset emoji64-p8 --set d_I=192 K_I=64 basis=pixel coupling=0 \
        --minutes 8 --out runs/emoji/p8_nosplit
    python scripts/emoji_compare.py train --preset tarflow-emoji64-p8 --minutes 8 --out runs/emoji/p8_flow
    python scripts/emoji_compare.py guidance --model runs/emoji/p8/model.safetensors --w 0.5 1 2 3 \
        --gamma 0 0.5 1 1.5 --out runs/emoji/p8_guidance
    python scripts/emoji_compare.py latents --model runs/emoji/p16/model.safetensors --out runs/emoji/p16_latents
    python scripts/emoji_compare.py paired --models runs/emoji/p16/model.safetensors runs/emoji/p16_context/model.safetensors \
        --out runs/emoji/p16_paired.json

`train`: the learning rate and the training noise follow the **elapsed time** (linear warm-up over the first 3 %,
then cosine to 0; the noise σ cosine-annealed over the run), so runs that share a GPU, or machines of different
speed, all train for the same wall-clock and finish their schedules. Then: test bits/dim (conditional, uniform
dequantization, all 750 test images), train bits/dim on 750 training images, and sample quality of
`--repeats` × 750 samples conditioned on the test split's labels (so samples and test images have the same class
mix): classifier-FID, KID, precision/recall, conditional accuracy (the Emoji64 feature network of `10_metrics`)
and the stripe score. Writes results.json, model.safetensors (float16) and samples.png (8 per class).

`guidance`: the same scores for a saved FARMER under no, naive and resampling guidance at each w, and without
guidance at each redundant-std scale γ.

`paired`: test bits/dim of saved models on the same images and the same dequantization noise, and each model's
difference from the first with its standard error over images (much smaller than either model's own).

`train --steps N` replaces the time-based schedule by a step-based one, for comparisons at equal steps where the
clock would favour the cheaper step (a shared or slow machine).
"""
import argparse, json, math, platform, time
from pathlib import Path
import numpy as np
import torch
from farmer_nb.data import Emoji64, noise_sigma, dequantize, quantize, patchify, unpatchify
from farmer_nb.gmm import GMM
from farmer_nb.model import build_model, get_config, save_model, load_model
from farmer_nb.train import make_optimizer, prepare_batch, optimizer_step
from farmer_nb.metrics import evaluate_bpd, load_feature_net, sample_quality, stripe_score
from farmer_nb.guidance import NoGuidance, NaiveGuidance, Resampling
from farmer_nb.viz import image_grid
from farmer_nb.cli import _overrides

def env(device):
    "A record of where a number was measured."
    name = torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'
    return dict(device=name, torch=torch.__version__, python=platform.python_version())

def save_png(images, path, nrow=8, scale=2):
    "A uint8 image grid (B, C, H, W) as a PNG file, with Pillow."
    from PIL import Image
    g = image_grid(images, nrow).repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(path)

def hflip(x, generator):
    "Each image of a uint8 batch (B, C, H, W) mirrored left-right with probability 1/2."
    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5          # (B,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)

def train_for(model, x, labels, minutes, batch_size=128, lr=1e-3, noise='gaussian', seed=0, amp=True, log_every=200,
              flip=False, weight_decay=0.03, steps=None):
    """Train for `minutes` of wall-clock with a time-based schedule, or for `steps` steps with a step-based one
    (`flip`: mirror half the images of each batch); returns a dict with steps, skipped steps and the log."""
    if steps is not None and steps < 1: raise SystemExit(f'--steps: expected >= 1, got {steps}')
    dev = model.device
    opt = make_optimizer(model, lr, weight_decay)
    g = torch.Generator(device=dev).manual_seed(seed)
    torch.manual_seed(seed)
    budget, log, step, skipped = 60 * minutes, [], 0, torch.zeros((), device=dev)
    amp_dtype = torch.bfloat16 if amp and dev.type == 'cuda' else None
    model.train()
    t0 = time.perf_counter()
    progress = (lambda: step / steps) if steps else (lambda: (time.perf_counter() - t0) / budget)
    while (tau := progress()) < 1:
        for group in opt.param_groups:                                   # warm-up, then cosine, on elapsed time
            group['lr'] = lr * min(1.0, tau / 0.03) * 0.5 * (1 + math.cos(math.pi * tau))
        sigma = {'gaussian': noise_sigma(tau), 'uniform+gaussian': noise_sigma(tau, 0.1, 0.0), 'uniform': None}[noise]
        idx = torch.randint(len(x), (batch_size,), generator=g, device=dev)
        xb = hflip(x[idx], g) if flip else x[idx]                          # (B, C, H, W) uint8
        y, c = prepare_batch(model, xb, labels[idx], sigma, model.cfg.label_drop, g, noise)
        loss, grad_norm, applied = optimizer_step(model, opt, y, c, amp_dtype=amp_dtype)
        skipped += ~torch.as_tensor(applied, device=dev)
        step += 1
        if step % log_every == 0:
            log.append(dict(step=step, seconds=round(time.perf_counter() - t0, 1), tau=round(tau, 4),
                            loss=loss.item(), grad_norm=grad_norm.item(), sigma=sigma))
            print(json.dumps(log[-1]), flush=True)
    if dev.type == 'cuda': torch.cuda.synchronize()
    model.eval()
    return dict(steps=step, skipped=int(skipped.item()), seconds=time.perf_counter() - t0, log=log,
                img_per_s=step * batch_size / (time.perf_counter() - t0))

@torch.no_grad()
def draw(model, labels, seed=0, batch=750, **kw):
    "Samples (n, C, H, W) uint8 on the CPU for `labels` (n,), in batches, each batch seeded."
    out = []
    for i in range(0, len(labels), batch):
        g = torch.Generator(device=model.device).manual_seed(seed + i)
        out.append(model.sample(labels[i:i + batch].to(model.device), generator=g, **kw).cpu())
    return torch.cat(out)

def feature_net(dev):
    "The Emoji64 feature network of `10_metrics`, or None where this version of the library has none."
    try: return load_feature_net('emoji64', dev)
    except Exception as e:
        print(f"no Emoji64 feature network ({e}); samples are saved for `score`", flush=True)
        return None

def quality(fake, labels, test, net, patch):
    "Sample quality of uint8 samples `fake` conditioned on `labels` against the test split."
    q = sample_quality(fake, test.images, labels, net=net, patch=patch)
    q['stripe_profile'] = stripe_score(fake, test.images, patch)['profile'].tolist()   # (2, p − 1): rows, columns
    return q

def score(model, test, net, path, repeats=2, seed=0, **kw):
    "Draw repeats × len(test) samples conditioned on the test labels, save them (npz) to `path`, and score them if `net`."
    t0 = time.perf_counter()
    labels = test.labels.repeat(repeats)
    fake = draw(model, labels, seed, **kw)
    np.savez_compressed(path, images=fake.numpy(), labels=labels.numpy(), patch=model.cfg.patch)
    q = dict(sample_seconds=time.perf_counter() - t0, n_fake=len(fake))
    if net is not None: q.update(quality(fake, labels, test, net, model.cfg.patch))
    return q, fake

def class_grid(model, per_class=8, seed=1, **kw):
    "per_class samples of each class, one row per class."
    K = model.cfg.num_classes
    return draw(model, torch.arange(K).repeat_interleave(per_class), seed, **kw)

def cmd_train(args, dev):
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    train, test = Emoji64('train'), Emoji64('test')
    cfg = get_config(args.preset, **_overrides(args.preset, args.set))
    torch.manual_seed(args.seed)
    model = build_model(cfg).to(dev)
    res = dict(env=env(dev), args=vars(args), config=cfg.__dict__, params=sum(p.numel() for p in model.parameters()))
    print(f"{args.preset} {args.set}: {res['params'] / 1e6:.2f} M parameters", flush=True)
    res['train'] = train_for(model, train.images.to(dev), train.labels.to(dev), args.minutes, args.batch_size,
                             args.lr, args.noise, args.seed, flip=args.hflip,
                             weight_decay=args.weight_decay, steps=args.steps)
    save_model(model, out/'model.safetensors', dtype=torch.float16)       # first: a failed score never costs the weights
    write = lambda: (out/'results.json').write_text(json.dumps(res, indent=1, default=str))
    write()
    te = evaluate_bpd(model, test.images, test.labels, seed=1, progress=False)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:len(test)]
    tr = evaluate_bpd(model, train.images[idx], train.labels[idx], seed=2, progress=False)
    res.update(test_bpd=te['bpd'], test_bpd_se=te['se'], train_bpd=tr['bpd'], train_bpd_se=tr['se'])
    print(f"test bits/dim {te['bpd']:.4f} ± {te['se']:.4f}, train {tr['bpd']:.4f}", flush=True)
    write()
    net = feature_net(dev)
    res['quality'], fake = score(model, test, net, out/'samples.npz', args.repeats, args.seed)
    print(json.dumps(res['quality']), flush=True)
    write()
    save_png(class_grid(model), out/'samples.png', scale=1)
    return res

def setting_name(rule, w, gamma, T_sigma=1.0):
    "The file-name part of one guidance setting: rule, w, γ and (where not 1) T_σ."
    return f'{rule}_w{w:g}_g{gamma:g}' + (f'_t{T_sigma:g}' if T_sigma != 1.0 else '')

def cmd_guidance(args, dev):
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    test = Emoji64('test')
    model = load_model(args.model, dev).float().eval()
    net = feature_net(dev)
    res = dict(env=env(dev), args=vars(args), rows=[])
    write = lambda: (out/'results.json').write_text(json.dumps(res, indent=1, default=str))
    settings = [('none', 0.0, g, 1.0) for g in args.gamma]
    settings += [('none', 0.0, 1.0, t) for t in args.T_sigma]
    settings += [(rule, w, 1.0, 1.0) for rule in args.rules for w in args.w]
    for rule, w, gamma, T_sigma in settings:
        if rule == 'none': r = NoGuidance()
        elif rule == 'naive': r = NaiveGuidance(w)
        else: r = Resampling(w, args.s, args.s, T_pi_v=args.T_pi_v, T_sigma_v=args.T_sigma_v, T_s=args.T_s)
        name = setting_name(rule, w, gamma, T_sigma)
        kw = dict(gamma=gamma, **(dict(T_sigma=T_sigma) if T_sigma != 1.0 else dict(guidance=r)))
        q, fake = score(model, test, net, out/f'samples_{name}.npz', args.repeats, args.seed, batch=args.batch, **kw)
        res['rows'].append(dict(rule=rule, w=w, gamma=gamma, T_sigma=T_sigma, **q))
        print(json.dumps(res['rows'][-1]), flush=True)
        write()
        save_png(class_grid(model, **kw), out/f'samples_{name}.png', scale=1)
    return res

@torch.no_grad()
def latent_panels(model, x, c, redraws=3, seed=0):
    """Rows of uint8 images for test images x (B, C, H, W), labels c: the images, decoded from their own (Z^I, Z^R),
    Z^I with each token's redundant channels at its component's mean (γ = 0), and Z^I with `redraws` fresh draws of
    the redundant channels from the redundant mixture (shared, or one per token)."""
    X = patchify(dequantize(x, 'center'), model.cfg.patch)                               # (B, N, d)
    z_I, z_R, _ = model.latent(X)
    g = model.prior(z_I, c)[1]                                  # G_{N+1}: batch (B,); per token: (B, N)
    decode = lambda r: quantize(unpatchify(model.flow.inverse(model.unlatent(z_I, r), c), model.cfg.patch,
                                           model.cfg.image_shape))
    gen = torch.Generator(device=x.device).manual_seed(seed)                 # on the device the draws are made
    if model.prior.per_token: draw = lambda m: m.sample(generator=gen)                    # (B, N, d_R)
    else: draw = lambda m: m.sample(n=model.cfg.N, generator=gen).transpose(0, 1)        # (B, N, d_R)
    rows = [x, decode(z_R), decode(draw(GMM(g.logits, g.mu, g.log_sigma - math.inf)))]
    return rows + [decode(draw(g)) for _ in range(redraws)]

def cmd_latents(args, dev):
    "What Z^I and Z^R hold: latents.png (rows as in `latent_panels`) for the first test image of each class."
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    test = Emoji64('test')
    model = load_model(args.model, dev).float().eval()
    if model.prior.head_R is None: raise SystemExit('--model: needs a FARMER with a redundant mixture')
    first = [int((test.labels == k).nonzero()[0]) for k in range(model.cfg.num_classes) if (test.labels == k).any()]
    x, c = test.images[first].to(dev), test.labels[first].to(dev)
    rows = latent_panels(model, x, c, args.redraws, args.seed)
    save_png(torch.cat(rows).cpu(), out/'latents.png', nrow=len(first), scale=1)
    err = (rows[1].int() - x.int()).abs().max().item()
    (out/'latents.json').write_text(json.dumps(dict(model=args.model, images=first, redraws=args.redraws,
                                                    rows=['image', 'decoded', 'Z^I only (gamma 0)'] + ['Z^R redrawn'] * args.redraws,
                                                    max_decode_error=err), indent=1))
    print(f"{out/'latents.png'}: {len(rows)} rows × {len(first)} images; decoded within {err} grey levels", flush=True)

def cmd_paired(args, dev):
    "Test bits/dim of saved models on the same images and noise; differences from the first, with their standard errors."
    test = Emoji64('test')
    per = [evaluate_bpd(load_model(m, dev).float().eval(), test.images, test.labels, seed=1,
                        progress=False)['per_image'].double() for m in args.models]
    first = per[0]
    rows = []
    for m, v in zip(args.models, per):
        d = v - first                                                          # (n,): paired over test images
        rows.append(dict(model=m, bpd=v.mean().item(), se=(v.std() / len(v) ** 0.5).item(),
                         diff=d.mean().item(), diff_se=(d.std() / len(d) ** 0.5).item()))
        print(f"{m}: {rows[-1]['bpd']:.4f} ± {rows[-1]['se']:.4f} bits/dim; "
              f"{rows[-1]['diff']:+.4f} ± {rows[-1]['diff_se']:.4f} against the first", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(n=len(first), rows=rows), indent=1))

def cmd_score(args, dev):
    "Score saved samples (samples*.npz beside a results.json) with the Emoji64 feature network; update the results."
    test, net = Emoji64('test'), load_feature_net('emoji64', dev)
    for path in map(Path, args.samples):
        with np.load(path) as f:
            fake, labels, patch = torch.from_numpy(f['images']), torch.from_numpy(f['labels']), int(f['patch'])
        q = quality(fake, labels, test, net, patch)
        res_path = path.parent/'results.json'
        res = json.loads(res_path.read_text())
        if 'rows' in res:                                                     # a guidance run: one row per samples file
            row = next(r for r in res['rows'] if path.name == 'samples_' + setting_name(
                r['rule'], r['w'], r['gamma'], r.get('T_sigma', 1.0)) + '.npz')
            row.update(q)
        else: res.setdefault('quality', {}).update(q)
        res_path.write_text(json.dumps(res, indent=1, default=str))
        print(path, json.dumps({k: v for k, v in q.items() if not isinstance(v, (list, dict))}), flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    t = sub.add_parser('train', help='train for a fixed wall-clock, then score')
    t.add_argument('--preset', default='emoji64-p8')
    t.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE', help='config overrides')
    t.add_argument('--minutes', type=float, default=8.0, help='wall-clock training time')
    t.add_argument('--steps', type=int, default=None,
                   help='train this many steps instead, the schedule on steps (equal steps, for a shared or slow '
                        'machine where wall-clock favours the cheaper step)')
    t.add_argument('--batch-size', type=int, default=128)
    t.add_argument('--lr', type=float, default=1e-3, help='peak learning rate')
    t.add_argument('--noise', default='gaussian', choices=['gaussian', 'uniform+gaussian', 'uniform'])
    t.add_argument('--weight-decay', type=float, default=0.03, help='AdamW weight decay on matrices')
    t.add_argument('--hflip', action='store_true',
                   help='augment: mirror each training image left-right with probability 1/2')
    g = sub.add_parser('guidance', help='score a saved FARMER under guidance rules and redundant-std scales')
    g.add_argument('--model', required=True)
    g.add_argument('--rules', nargs='*', default=['naive', 'resampling'])
    g.add_argument('--w', type=float, nargs='*', default=[0.5, 1, 2, 3])
    g.add_argument('--gamma', type=float, nargs='*', default=[1.0], help='redundant-std scales, without guidance')
    g.add_argument('--T-sigma', type=float, nargs='*', default=[],
                   help='std temperatures of every mixture (informative and redundant), without guidance')
    g.add_argument('--s', type=int, default=5, help='resampling candidates per stream')
    g.add_argument('--T-pi-v', type=float, default=1.0)
    g.add_argument('--T-sigma-v', type=float, default=1.0)
    g.add_argument('--T-s', type=float, default=1.0)
    g.add_argument('--batch', type=int, default=750,
                   help='samples drawn at once (each batch seeded by its offset; lower it if memory runs short)')
    l = sub.add_parser('latents', help="draw what a saved FARMER's informative and redundant channels hold")
    l.add_argument('--model', required=True)
    l.add_argument('--redraws', type=int, default=3, help='fresh draws of the redundant channels')
    l.add_argument('--out', required=True)
    l.add_argument('--seed', type=int, default=0)
    l.add_argument('--device', default='cpu')
    pr = sub.add_parser('paired', help='test bits/dim of saved models on the same images and noise, paired')
    pr.add_argument('--models', nargs='+', required=True)
    pr.add_argument('--out', required=True, help='a JSON file')
    pr.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    s = sub.add_parser('score', help='score saved samples (samples*.npz) with the Emoji64 feature network')
    s.add_argument('samples', nargs='+', help='samples*.npz files written by train or guidance')
    s.add_argument('--device', default='cpu')
    for p in (t, g):
        p.add_argument('--repeats', type=int, default=1, help='samples per test image for the quality scores')
        p.add_argument('--seed', type=int, default=0)
        p.add_argument('--out', required=True)
        p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = ap.parse_args()
    dev = torch.device(args.device)
    dict(train=cmd_train, guidance=cmd_guidance, latents=cmd_latents, paired=cmd_paired, score=cmd_score)[args.cmd](args, dev)

if __name__ == '__main__':
    main()
