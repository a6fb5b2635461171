"""FARMER's redundant log-density two ways: per vector, component and channel (`GMM.log_prob`), or as matrix products
(`GMM.log_prob_many`, the library's path); alone, and inside the whole model's training step.

    python scripts/gmm_bench.py --preset imagenet256-p16 --batch 64 --step --precision bf16   # a GPU
    python scripts/gmm_bench.py --preset emoji64-p16 --batch 16 --device cpu --step
    python scripts/gmm_bench.py --guided farmer_nb/assets/emoji64_p8.safetensors --batch 50 --s 20 --device cpu

The log-density alone: N vectors of d_R channels per image under the image's mixture of K_R components (the
preset's sizes), forward and backward, in ms, with the peak memory on CUDA and the largest difference between the
two paths. `--step`: the training step of the whole model on random images with each path (`log_prob_many`
swapped for the per-vector formula), in ms. `--guided MODEL`: instead, resampling guidance (w = 3, `--s` candidates
per stream) drawing `--batch` samples of a saved FARMER with each path, each in a process of its own: seconds,
peak memory (CUDA: allocated; CPU: the process's resident set) and whether both drew the same images. Each
measurement is the median of `--reps` after a warm-up. A path that runs out of memory is reported as such. Writes
--out (JSON).
"""
import argparse, contextlib, json, platform, resource, subprocess, sys, time
from pathlib import Path
import torch
from farmer_nb.gmm import GMM
from farmer_nb.metrics import median_time
from farmer_nb.model import build_model, get_config
from farmer_nb.train import make_optimizer, prepare_batch, optimizer_step

LIBRARY = GMM.log_prob_many
PATHS = {'per-vector': lambda g, z: g.log_prob(z.movedim(-2, 0)).movedim(0, -1),     # (B, N, K, d_R) terms
         'matmul': LIBRARY}                                                           # the library's path


@contextlib.contextmanager
def redundant_path(path):
    "Within the block, the library's `GMM.log_prob_many` computes by `path`."
    GMM.log_prob_many = PATHS[path]
    try: yield
    finally: GMM.log_prob_many = LIBRARY


def mixture(B, N, K, d, device, seed=0):
    "A random shared mixture per image (B,) and N vectors per image (B, N, d), as leaves that take gradients."
    g = torch.Generator(device=device).manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, device=device)
    leaves = [rnd(B, K), rnd(B, K, d), 0.3 * rnd(B, K, d) - 1, rnd(B, N, d)]
    return [t.requires_grad_() for t in leaves]


def time_path(path, leaves, device, reps):
    "ms per forward + backward of one path, the peak memory in GiB on CUDA (else None), and the output."
    def run():
        out = PATHS[path](GMM(*leaves[:3]), leaves[3])                                  # (B, N)
        out.sum().backward()
        return out
    cuda = torch.device(device).type == 'cuda'
    if cuda: torch.cuda.reset_peak_memory_stats()
    ms = 1e3 * median_time(run, device, reps=reps, warmup=1)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return ms, peak, run().detach()


def time_step(cfg, path, B, device, precision, reps):
    "ms per training step of the whole model with the redundant term computed by `path`."
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = make_optimizer(model)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (B, *cfg.image_shape), dtype=torch.uint8, device=device, generator=g)
    c = torch.randint(0, cfg.num_classes, (B,), device=device, generator=g) if cfg.num_classes else None
    amp = {'fp32': None, 'bf16': torch.bfloat16}[precision]
    with redundant_path(path):
        return 1e3 * median_time(lambda: optimizer_step(model, opt, *prepare_batch(model, x, c, None, 0.0, g), 1.0, amp),
                                 device, reps=reps, warmup=1)


def guided(model_path, path, B, s, device):
    "Seconds, peak GiB and a checksum of B samples under resampling guidance with the redundant term by `path`."
    from farmer_nb.guidance import Resampling
    from farmer_nb.model import load_model
    model = load_model(model_path, device).float().eval()
    labels = torch.arange(B, device=device) % max(model.cfg.num_classes, 1)
    cuda = torch.device(device).type == 'cuda'
    if cuda: torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with redundant_path(path):
        x = model.sample(labels, generator=torch.Generator(device=device).manual_seed(0),
                         guidance=Resampling(3.0, s, s))
    if cuda: torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if cuda else 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(seconds=round(seconds, 2), peak_GiB=round(peak / 2**30, 2), checksum=int(x.long().sum()))


def guarded(fn):
    "fn(), or None when the device runs out of memory."
    try: return fn()
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='imagenet256-p16')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--step', action='store_true', help='also time the whole training step with each path')
    ap.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'], help='autocast of the training step')
    ap.add_argument('--guided', default=None, metavar='MODEL', help='time guided sampling of this saved FARMER')
    ap.add_argument('--s', type=int, default=20, help='--guided: resampling candidates per stream')
    ap.add_argument('--path', choices=list(PATHS), help=argparse.SUPPRESS)     # --guided: one path, in a child
    ap.add_argument('--out', default='runs/gmm_bench.json')
    args = ap.parse_args()
    if args.guided and args.path:
        return print(json.dumps(guided(args.guided, args.path, args.batch, args.s, args.device)))
    if args.guided:
        rows = []
        for path in PATHS:
            cmd = [sys.executable, __file__, '--guided', args.guided, '--path', path, '--batch', str(args.batch),
                   '--s', str(args.s), '--device', args.device]
            rows.append(dict(what=f'guided sampling, s = {args.s}', path=path,
                             **json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)))
            print(json.dumps(rows[-1]), flush=True)
        res = dict(model=args.guided, batch=args.batch, s=args.s, device=args.device, torch=torch.__version__, rows=rows,
                   same_images=rows[0]['checksum'] == rows[1]['checksum'])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        return Path(args.out).write_text(json.dumps(res, indent=1))
    cfg = get_config(args.preset)
    N, K, d = cfg.N, cfg.K_R, cfg.d - cfg.d_I
    dev = args.device
    name = torch.cuda.get_device_name() if torch.device(dev).type == 'cuda' else platform.processor() or 'cpu'
    res = dict(device=name, torch=torch.__version__, preset=args.preset, batch=args.batch, N=N, K_R=K, d_R=d,
               threads=torch.get_num_threads(), rows=[])
    outs = {}
    for path in PATHS:
        r = guarded(lambda: time_path(path, mixture(args.batch, N, K, d, dev), dev, args.reps))
        row = dict(what='log-density', path=path, ms=None if r is None else round(r[0], 3),
                   peak_GiB=None if r is None or r[1] is None else round(r[1], 2))
        if r is not None: outs[path] = r[2]
        res['rows'].append(row)
        print(json.dumps(row), flush=True)
    if len(outs) == 2:
        a, b = outs.values()
        res['max_rel_diff'] = ((a - b).abs() / b.abs().clamp_min(1)).max().item()
        print(f"largest relative difference between the paths: {res['max_rel_diff']:.1e}")
    if args.step:
        for path in PATHS:
            ms = guarded(lambda: time_step(cfg, path, args.batch, dev, args.precision, args.reps))
            row = dict(what=f'training step ({args.precision})', path=path, ms=None if ms is None else round(ms, 1))
            res['rows'].append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
