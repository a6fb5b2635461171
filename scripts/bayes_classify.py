"""Bayes-rule classification with a class-conditional model: argmax_c log p(x | c) over a whole test split.

    python scripts/bayes_classify.py [--model M] [--n 10000] [--out results/bayes_fmnist.json]

The default model is the pretrained fmnist-small. FARMER's flow is unconditional, so each image goes through the
flow once and only the AR prior is re-run per label (the Gaussian-prior flow re-runs everything). One uniform
dequantization draw per image, shared by all labels. Prints the accuracy, per-class accuracy and the confusion
matrix, and writes them as JSON.
"""
import argparse, json, time
from pathlib import Path
import torch
from tqdm.auto import tqdm
from farmer_nb.data import FashionMNIST, dequantize, patchify
from farmer_nb.model import load_model, load_pretrained

@torch.no_grad()
def log_likelihoods(model, x, generator):
    "log p(x | c) in nats for every label c: (B, K), one dequantization draw per image."
    K, B = model.cfg.num_classes, len(x)
    y = dequantize(x.to(model.device), 'uniform', generator=generator)
    if hasattr(model, 'prior'):                                            # FARMER: the flow once, the prior per label
        z_I, z_R, logdet = model.latent(patchify(y, model.cfg.patch))
        lp = [model.prior.log_prob(z_I, z_R, torch.full((B,), c, device=model.device)) + logdet for c in range(K)]
    else:
        lp = [-model.nll(y, torch.full((B,), c, device=model.device)) * model.cfg.D for c in range(K)]
    return torch.stack(lp, 1)                                              # (B, K)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=None, help='a model file (default: the pretrained fmnist-small)')
    ap.add_argument('--n', type=int, default=10000, help='first n test images')
    ap.add_argument('--batch', type=int, default=500)
    ap.add_argument('--data', default=None)
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = (load_model(args.model, device) if args.model else load_pretrained(device=device)).eval()
    if not model.cfg.num_classes: raise SystemExit('bayes_classify: the model is unconditional')
    test = FashionMNIST('test', args.data)
    x, c = test.images[:args.n], test.labels[:args.n]
    g = torch.Generator(device=device).manual_seed(0)
    t0 = time.perf_counter()
    lp = torch.cat([log_likelihoods(model, x[i:i + args.batch], g).cpu() for i in tqdm(range(0, len(x), args.batch), desc='scoring')])
    pred = lp.argmax(1)
    K = model.cfg.num_classes
    conf = torch.zeros(K, K, dtype=torch.long)
    conf.index_put_((c, pred), torch.ones_like(c), accumulate=True)
    acc = (pred == c).float().mean().item()
    res = dict(model=args.model or 'pretrained fmnist-small', n=len(x), accuracy=acc, se=(acc * (1 - acc) / len(x)) ** 0.5,
               per_class={test.classes[k]: (conf[k, k] / conf[k].sum()).item() for k in range(K)},
               confusion=conf.tolist(), seconds=time.perf_counter() - t0, device=device)
    print(f"Bayes-rule accuracy on {len(x):,} test images: {acc:.4f} ± {res['se']:.4f}")
    for k, v in res['per_class'].items(): print(f"  {k:12s} {v:.3f}")
    if args.out: Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(res, indent=1))

if __name__ == '__main__':
    main()
