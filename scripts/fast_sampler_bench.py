"""Latency and throughput of the fast sampler (08_distill's `FastSampler`: prior decode and inverse as one CUDA graph)
against the plain `model.sample`, and how closely their images agree on the same seeds.

    python scripts/fast_sampler_bench.py --student tutorials/data/fmnist_small_student.safetensors --out results/fast_sampler/bench.json

Reports, at batch 1, the median latency (ms, over --reps calls after --warmup) of: plain sampling with the teacher and
with the student, and the fast sampler with each (drawing from the global generator; also the student with per-sample
seeds); at --batch, img/s of plain and fast sampling with the student; and, for each inverse, fast against plain
images on the same seeds: the largest difference in grey levels and the fraction of identical pixels. Without
--student an untrained student stands in (its timings hold, its images are not meaningful). CPU smoke test:
    python scripts/fast_sampler_bench.py --reps 2 --warmup 1 --batch 8 --check 4 --out runs/fast_sampler_smoke.json
"""
import argparse, json, platform, time
from pathlib import Path
import torch
from farmer_nb.model import load_model, load_pretrained
from farmer_nb.distill import FastSampler, Student, load_student
from farmer_nb.metrics import median_time

def agreement(a, b):
    "Fast vs plain uint8 images: largest difference in grey levels and fraction of identical pixels."
    d = (a.int() - b.int()).abs()
    return dict(max_abs_diff=d.max().item(), frac_identical=(d == 0).float().mean().item())

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=None, help='a saved model (default: the pretrained fmnist-small)')
    ap.add_argument('--student', default=None, help='a student saved by save_student (default: an untrained one)')
    ap.add_argument('--reps', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--batch', type=int, default=1024, help='batch size of the throughput rows')
    ap.add_argument('--check', type=int, default=64, help='samples compared between fast and plain sampling')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--out', default='results/fast_sampler/bench.json')
    args = ap.parse_args()
    dev = torch.device(args.device)
    model = (load_pretrained(device=dev) if args.model is None else load_model(args.model, dev)).eval()
    if args.student: load_student(model, args.student)
    else: model.student = Student(model.flow).to(dev).eval()
    res = dict(args=vars(args), device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu',
               torch=torch.__version__, cuda_graph=dev.type == 'cuda', student='loaded' if args.student else 'untrained (timing only)')
    ms = lambda fn, reps=args.reps: 1e3 * median_time(fn, dev, reps, args.warmup)
    plain_inv = {'teacher': None, 'student': 'student'}
    one = torch.tensor([0], device=dev)

    lat, fast = {}, {}
    for inv in ('teacher', 'student'):
        lat[f'plain_{inv}_ms'] = ms(lambda: model.sample(one, inverse=plain_inv[inv]))
        t0 = time.perf_counter(); fast[inv] = FastSampler(model, 1, inv); lat[f'fast_{inv}_setup_s'] = time.perf_counter() - t0
        lat[f'fast_{inv}_ms'] = ms(lambda: fast[inv](one))
    lat['fast_student_seeds_ms'] = ms(lambda: fast['student'](one, seeds=[0]))
    lat['speedup_student'] = lat['plain_student_ms'] / lat['fast_student_ms']
    lat['speedup_teacher'] = lat['plain_teacher_ms'] / lat['fast_teacher_ms']
    res['batch1'] = lat; print('batch 1:', json.dumps(lat, indent=1), flush=True)
    del fast

    B, reps = args.batch, max(3, args.reps // 4)
    labels = torch.arange(B, device=dev) % model.cfg.num_classes
    fs = FastSampler(model, B, 'student')
    thr = dict(batch=B, plain_student_img_s=B / median_time(lambda: model.sample(labels, inverse='student'), dev, reps, args.warmup),
               fast_student_img_s=B / median_time(lambda: fs(labels), dev, reps, args.warmup))
    res['throughput'] = thr; print('throughput:', thr, flush=True)
    del fs

    n = args.check
    labels, seeds = torch.arange(n, device=dev) % model.cfg.num_classes, list(range(n))
    check = {}
    for inv in ('teacher', 'student'):
        fs = FastSampler(model, n, inv)
        a, b = fs(labels, seeds=seeds), model.sample(labels, seeds=seeds, inverse=plain_inv[inv])
        check[inv] = dict(n=n, **agreement(a, b), redrawn_fast=fs.last_redrawn, redrawn_plain=model.last_redrawn)
    res['fast_vs_plain'] = check; print('fast vs plain, same seeds:', check, flush=True)

    out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print('wrote', out)

if __name__ == '__main__':
    main()
