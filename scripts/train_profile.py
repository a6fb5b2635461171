"""Where a training step's time goes: optimizer variants side by side, then a kernel profile.

    python scripts/train_profile.py --preset imagenet256-p16-flow8 --batch 64 --compile --out runs/train_profile

On one model (bf16 autocast, flow math in fp32) it times the same training step with
  foreach+sync   AdamW with foreach kernels; the step is skipped or applied after one host sync (the old default)
  fused+sync     fused AdamW, but the host still reads the finite check every step
  fused          fused AdamW with the finite check kept on the device (`optimizer_step`'s default path)
and reports ms/step, img/s and model FLOP utilisation (matmul FLOPs of `train_flops`) for each. Then it profiles
a few steps of the default path and prints the kernels that take the most GPU time, grouped into matmuls,
attention, optimizer and the rest, the PyTorch operators that launched the most GPU time (`--ops`), and the
share of the wall time the GPU was busy. Writes results.json.
"""
import argparse, json, time
from pathlib import Path
import torch
from farmer_nb.model import build_model, get_config
from farmer_nb.train import make_optimizer, prepare_batch, optimizer_step
from farmer_nb.metrics import train_flops, median_time


def group(name):
    n = name.lower()
    if any(k in n for k in ('gemm', 'cutlass', 'sm90_xmma', 'cublas', 'matmul', 'nvjet')): return 'matmul'
    if any(k in n for k in ('flash', 'fmha', 'attention', 'sdpa')): return 'attention'
    if any(k in n for k in ('adam', 'multi_tensor', 'foreach', 'norm_kernel', 'lpnorm')): return 'optimizer/clip'
    return 'other'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='imagenet256-p16-flow8')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--steps', type=int, default=30, help='steps per throughput measurement')
    ap.add_argument('--peak-tflops', type=float, default=989.0)
    ap.add_argument('--variants', nargs='+', default=['foreach+sync', 'fused+sync', 'fused'],
                    choices=['foreach+sync', 'fused+sync', 'fused'], help="optimizer variants to time ('fused' is profiled)")
    ap.add_argument('--ops', type=int, default=25, help='PyTorch operators to list by GPU time')
    ap.add_argument('--out', default='runs/train_profile')
    args = ap.parse_args()
    dev = torch.device('cuda')
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    model = build_model(cfg).to(dev).train()
    net = torch.compile(model) if args.compile else model
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randint(0, 256, (args.batch, *cfg.image_shape), dtype=torch.uint8, device=dev, generator=g)
    c = torch.randint(0, max(cfg.num_classes, 1), (args.batch,), device=dev, generator=g) if cfg.num_classes else None
    flops = train_flops(model, args.batch)
    opts = {k: make_optimizer(model, fused=k != 'foreach+sync') for k in args.variants}   # a state each: memory
    def stepper(name):
        opt = opts[name]
        def step():
            loss, gn, ok = optimizer_step(net, opt, *prepare_batch(model, x, c, None, cfg.label_drop, g), 1.0, torch.bfloat16)
            if name == 'fused+sync': bool(ok)                                 # the host waits, as the old loop did
        return step
    rows = []
    for name in opts:
        step = stepper(name)
        median = median_time(step, dev, reps=10, warmup=3 + 5 * args.compile)
        s = median_time(lambda: [step() for _ in range(args.steps)], dev, reps=1, warmup=0) / args.steps   # back to back, one sync
        rows.append(dict(variant=name, batch=args.batch, compile=args.compile, median_ms=1e3 * median, loop_ms=1e3 * s,
                         img_per_s=args.batch / s, tflops=flops / s / 1e12, mfu=flops / s / (args.peak_tflops * 1e12)))
        print(f"{name:13s} median {1e3 * median:.1f} ms, loop {1e3 * s:.1f} ms/step, {args.batch / s:,.0f} img/s, "
              f"MFU {100 * rows[-1]['mfu']:.1f} %", flush=True)
    if 'fused' not in opts: opts['fused'] = make_optimizer(model)
    step = stepper('fused')
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        torch.cuda.synchronize(dev); t = time.perf_counter()
        for _ in range(5): step()
        torch.cuda.synchronize(dev); wall = time.perf_counter() - t
    kern = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    tot = lambda e: getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)
    busy = sum(tot(e) for e in kern) / 1e6
    groups = {}
    for e in kern: groups[group(e.key)] = groups.get(group(e.key), 0) + tot(e) / 1e6 / 5
    top = sorted(kern, key=tot, reverse=True)[:25]
    print(f"\nprofile of 5 steps ({'compiled' if args.compile else 'eager'}): wall {1e3 * wall / 5:.1f} ms/step, GPU busy "
          f"{1e3 * busy / 5:.1f} ms/step ({100 * busy / wall:.0f} %)")
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1]): print(f"  {k:15s} {1e3 * v:7.2f} ms/step")
    for e in top: print(f"  {tot(e) / 5e3:8.2f} ms/step  x{e.count // 5:<4d} {e.key[:110]}")
    ops = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CPU and tot(e) > 0]
    ops = sorted(ops, key=tot, reverse=True)[:args.ops]                    # PyTorch operators by their own GPU time
    print('\nby operator (GPU time launched by the operator itself):')
    for e in ops: print(f"  {tot(e) / 5e3:8.2f} ms/step  x{e.count // 5:<4d} {e.key[:110]}")
    res = dict(args=vars(args), device=torch.cuda.get_device_name(dev), torch=torch.__version__, rows=rows,
               profile=dict(wall_ms=1e3 * wall / 5, busy_ms=1e3 * busy / 5, groups_ms={k: 1e3 * v for k, v in groups.items()},
                            top=[dict(kernel=e.key, ms_per_step=tot(e) / 5e3, calls_per_step=e.count / 5) for e in top],
                            ops=[dict(op=e.key, ms_per_step=tot(e) / 5e3, calls_per_step=e.count / 5) for e in ops]))
    (out/'results.json').write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
