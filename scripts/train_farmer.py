"""Train a small FARMER on Fashion-MNIST, write a sample grid and print test bits/dim.

    python scripts/train_farmer.py                       # defaults: 2 min of training on a CPU, 10 epochs on a GPU
    python scripts/train_farmer.py --epochs 20 --preset fmnist-base --out runs/base
    torchrun --nproc-per-node=2 scripts/train_farmer.py --epochs 20       # one process per GPU; --batch-size is global

With no --epochs on a CPU, the run is sized to --minutes of training: a few steps are timed first and the
learning-rate schedule is fitted to the number of steps that fit. Outputs go to --out: samples.png,
model.safetensors, results.json and checkpoint.safetensors (the resumable training state: --resume continues it,
--stop-at-step splits a long run over several calls).
"""
import argparse, json, math, os, time
from pathlib import Path
import torch
from farmer_nb.data import FashionMNIST
from farmer_nb.model import PRESETS, build_model, get_config, save_model
from farmer_nb.train import fit, train_step, make_optimizer
from farmer_nb.metrics import evaluate_bpd
from farmer_nb.viz import save_image_grid

def steps_for(model, x, y, batch_size, seconds):
    "How many training steps of this model fit in `seconds`, from 3 timed steps on a throwaway optimizer state."
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model)
    train_step(model, opt, x[:batch_size].to(model.device), y[:batch_size].to(model.device))       # warm-up
    t0 = time.perf_counter()
    for _ in range(3): train_step(model, opt, x[:batch_size].to(model.device), y[:batch_size].to(model.device))
    per_step = (time.perf_counter() - t0) / 3
    model.load_state_dict(state)
    return max(10, int(seconds / per_step)), per_step

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='fmnist-small', choices=sorted(PRESETS), help='model configuration')
    ap.add_argument('--epochs', type=int, default=None, help='train for this many epochs (default: 10 on a GPU, a time budget on a CPU)')
    ap.add_argument('--minutes', type=float, default=2.0, help='training time on a CPU when --epochs is not given')
    ap.add_argument('--test-n', type=int, default=None, help='score the first n test images (default: all on a GPU, 2000 on a CPU)')
    ap.add_argument('--batch-size', type=int, default=None, help='default: 256 on a GPU, 64 on a CPU')
    ap.add_argument('--lr', type=float, default=2e-3, help='peak learning rate')
    ap.add_argument('--noise', default='uniform', choices=['uniform', 'gaussian'], help="dequantization: 'gaussian' is FARMER's annealed noise")
    ap.add_argument('--data', default=None, help='folder with the Fashion-MNIST IDX files (default: the search path)')
    ap.add_argument('--out', default='runs/main', help='output folder')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--resume', action='store_true', help='continue from OUT/checkpoint.safetensors if it exists (same settings)')
    ap.add_argument('--stop-at-step', type=int, default=None, help='stop (and checkpoint) at this step; resume later with --resume')
    ap.add_argument('--checkpoint-every', type=int, default=500, help='steps between training checkpoints')
    args = ap.parse_args()

    world = int(os.environ.get('WORLD_SIZE', 1))                          # set by torchrun
    if world > 1:                                                         # one process per GPU (or CPU processes with gloo)
        import torch.distributed as dist
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ['LOCAL_RANK'])); args.device = f"cuda:{os.environ['LOCAL_RANK']}"
    rank = int(os.environ.get('RANK', 0))
    device = torch.device(args.device)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    train, test = FashionMNIST('train', args.data), FashionMNIST('test', args.data)
    torch.manual_seed(args.seed)
    cfg = get_config(args.preset)
    model = build_model(cfg).to(device)
    bs = args.batch_size or (256 if device.type == 'cuda' else 64)
    steps_per_epoch = len(train.images) // bs
    if args.epochs is None and device.type == 'cpu':
        max_steps, per_step = steps_for(model, train.images, train.labels, bs, 60 * args.minutes)
        epochs = math.ceil(max_steps / steps_per_epoch)
        print(f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on the CPU; "
              f"{per_step:.2f} s/step, so {max_steps} steps of batch {bs} fit in {args.minutes:g} min", flush=True)
    else:
        epochs, max_steps = args.epochs or 10, None
        print(f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on {device}; "
              f"{epochs} epochs of batch {bs}", flush=True)
    tr = fit(model, train.images, train.labels, epochs=epochs, batch_size=bs, lr=args.lr, noise=args.noise,
             seed=args.seed, max_steps=max_steps, log_every=10, checkpoint=out/'checkpoint.safetensors',
             checkpoint_every=args.checkpoint_every, resume=args.resume, stop_at_step=args.stop_at_step)
    if rank > 0: return                                                   # rank 0 samples, saves and evaluates
    if not tr['finished']:
        print(f"stopped at step {tr['steps']}; continue with the same options and --resume"); return
    labels = torch.arange(10, device=device).repeat_interleave(10)
    grid = save_image_grid(model.sample(labels, generator=torch.Generator(device=device).manual_seed(args.seed)),
                           out/'samples.png', nrow=10)
    save_model(model, out/'model.safetensors', preset=args.preset, steps=tr['steps'])
    n_test = args.test_n or (len(test.images) if device.type == 'cuda' else 2000)
    r = evaluate_bpd(model, test.images[:n_test], test.labels[:n_test])
    res = dict(preset=args.preset, steps=tr['steps'], batch_size=bs, epochs=tr['steps'] / steps_per_epoch,
               train_seconds=tr['seconds'], skipped=tr['skipped'], test_bpd=r['bpd'], test_bpd_se=r['se'], test_n=r['n'],
               bpd_kind='conditional, uniform dequantization, +ln128', device=str(device))
    (out/'results.json').write_text(json.dumps(res, indent=1))
    print(f"sample grid: {grid}\ncheckpoint: {out/'model.safetensors'}")
    print(f"test bits/dim: {r['bpd']:.3f} ± {r['se']:.3f} (conditional, first {r['n']:,} test images; "
          f"{res['epochs']:.2f} epochs, {tr['seconds']:.0f} s of training)")

if __name__ == '__main__':
    main()
