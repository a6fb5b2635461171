"""Where the AR prior's sampling time goes: per-step time at each batch size, then a kernel profile.

    python scripts/prior_profile.py --preset imagenet256-p16 --batches 1 64 --precision bf16 --out runs/prior_profile

Random weights (speed does not depend on training). For each batch size it times `prior.sample` and reports
ms per sample call, per step (the prefix pass and N cached decoding steps, no guidance) and per image; then it
profiles one call and prints the operators (CPU) or kernels (CUDA) that take the most time, grouped into
matmuls, attention, mixture sampling and the rest, with the share of the wall time the device was busy and the
number of operator calls per step (on a GPU each is at least one launch). Writes results.json.
"""
import argparse, json, time
from contextlib import nullcontext
from pathlib import Path
import torch
from torch.profiler import ProfilerActivity, profile
from farmer_nb.model import build_model, get_config


def group(name):
    n = name.lower()
    if any(k in n for k in ('gemm', 'cutlass', 'xmma', 'cublas', 'matmul', 'nvjet', 'addmm', 'aten::mm')):
        return 'matmul'
    if any(k in n for k in ('flash', 'fmha', 'attention', 'sdpa')): return 'attention'
    if any(k in n for k in ('multinomial', 'softmax', 'randn', 'normal', 'uniform', 'cumsum', 'exponential',
                            'argmax', 'gather')): return 'mixture sampling'
    return 'other'


def timed(fn, device, reps):
    "Median seconds of `reps` calls after one warm-up."
    fn()
    times = []
    for _ in range(reps):
        if device.type == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter(); fn()
        if device.type == 'cuda': torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='imagenet256-p16')
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 64])
    ap.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32', help='bf16: autocast')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--top', type=int, default=15, help='rows of the kernel table')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--out', default='runs/prior_profile')
    args = ap.parse_args()
    device, out = torch.device(args.device), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    with device: prior = build_model(cfg).eval().prior          # built on the device: no slow CPU init
    steps = cfg.N + 1                                  # the prefix pass, then N decoding steps
    amp = ((lambda: torch.autocast(device.type, torch.bfloat16)) if args.precision == 'bf16' else nullcontext)
    results = dict(preset=args.preset, precision=args.precision, steps=steps, device=str(device),
                   gpu=torch.cuda.get_device_name() if device.type == 'cuda' else None, rows=[])
    for B in args.batches:
        c = torch.arange(B, device=device) % cfg.num_classes
        def call():
            with torch.no_grad(), amp(): prior.sample(c)
        s = timed(call, device, args.reps)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
        with profile(activities=acts) as prof: call()
        ev = prof.key_averages()
        cuda = device.type == 'cuda'
        t = lambda e: (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3       # ms
        kernels = [e for e in ev if (t(e) > 0 and (not cuda or e.device_type.name == 'CUDA'))
                   and (cuda or e.key.startswith('aten::'))]
        busy = sum(t(e) for e in kernels)
        groups = {}
        for e in kernels: groups[group(e.key)] = groups.get(group(e.key), 0.0) + t(e)
        ops = sum(e.count for e in ev if e.key.startswith('aten::'))
        row = dict(batch=B, ms_per_call=1e3 * s, ms_per_step=1e3 * s / steps, ms_per_image=1e3 * s / B,
                   aten_ops_per_step=ops / steps, busy_ms=busy, groups_ms=groups,
                   top=[dict(name=e.key[:90], ms=t(e), calls=e.count)
                        for e in sorted(kernels, key=t, reverse=True)[:args.top]])
        results['rows'].append(row)
        print(f"batch {B}: {row['ms_per_call']:.0f} ms per call, {row['ms_per_step']:.2f} ms per step, "
              f"{row['ms_per_image']:.2f} ms per image; {row['aten_ops_per_step']:.0f} operator calls per step; "
              f"{'device' if cuda else 'operator'} time {busy:.0f} ms "
              f"({100 * busy / 1e3 / s:.0f} % of the wall time, profiled call)", flush=True)
        for g, v in sorted(groups.items(), key=lambda kv: -kv[1]): print(f"  {g:17} {v:9.1f} ms")
        for k in row['top']: print(f"    {k['ms']:9.1f} ms {k['calls']:7} × {k['name']}")
    (out / 'results.json').write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
