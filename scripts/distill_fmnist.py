"""Distil a trained model's flow inverse into a one-pass student and measure speed and quality.

    python scripts/distill_fmnist.py --model runs/main/model.safetensors --epochs 10 --out runs/distill

Reports: flow-inverse time (sequential teacher, eager and CUDA graph; student) at batch 1 and --bench-batch,
the whole sampling pipeline with each inverse, the student's reconstruction error against the teacher's
exact inverse on latents of test images and on prior samples (MSE and PSNR on the [-1, 1] scale), and
sample quality (classifier FID etc., 10_metrics) of teacher and student samples from the same latents.
With --synthetic n the student trains on the training images plus n samples of the teacher itself (its AR prior
and exact inverse), so that it also learns the inverse where the prior's latents fall (beyond Algorithm 2).
"""
import argparse, json, math, time
from pathlib import Path
import torch
from farmer_nb.data import FashionMNIST, dequantize, patchify
from farmer_nb.model import load_model
from farmer_nb.flow import GraphedInverse
from farmer_nb.distill import distill, save_student
from farmer_nb.metrics import load_feature_net, median_time, class_samples
from student_quality import teacher_vs_student

def psnr(mse): return 10 * math.log10(4 / mse) if mse > 0 else float('inf')     # peak-to-peak range 2 on [-1, 1]

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True)
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=0, help="the student's data order and noise")
    ap.add_argument('--s-max', type=float, default=0.0, help="noise scale of the student's start: s ~ U[0, s_max] (paper: 0.3; 0 distils a better student here)")
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--n', type=int, default=10000, help='samples for the quality comparison')
    ap.add_argument('--bench-batch', type=int, default=1024)
    ap.add_argument('--max-steps', type=int, default=None, help='smoke tests')
    ap.add_argument('--data', default=None)
    ap.add_argument('--out', default='runs/distill')
    ap.add_argument('--half', action='store_true', help='store the student in float16')
    ap.add_argument('--synthetic', type=int, default=0,
                    help="also train on this many of the teacher's own samples (prior → exact inverse), a multiple of 10")
    args = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device).eval()
    train, test = FashionMNIST('train', args.data), FashionMNIST('test', args.data)
    images, labels, extra = train.images, train.labels, {}
    if args.synthetic:                                                        # the student also learns where sampling goes
        t0 = time.perf_counter()
        fake, fake_labels = class_samples(model, args.synthetic, 1000, seed=10**6)   # seeds apart from the evaluation's
        images, labels = torch.cat([images, fake]), torch.cat([labels, fake_labels])
        extra = dict(synthetic_seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    student, log = distill(model, images, labels, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           max_steps=args.max_steps, log_every=100, s_max=args.s_max, seed=args.seed)
    res = dict(args=vars(args), distill_seconds=time.perf_counter() - t0, log=log, **extra)
    save_student(model, out/'student.safetensors', dtype=torch.float16 if args.half else None)
    with torch.no_grad():                                                     # reconstruction on test images' latents
        X = patchify(dequantize(test.images[:1000].to(device), 'center'), model.cfg.patch)
        Z, _ = model.flow(X)
        mse = (student.inverse(Z) - model.flow.inverse(Z)).pow(2).mean().item()
        c = torch.arange(1000, device=device) % model.cfg.num_classes
        Zp = model.sample_latent(c, 1000, torch.Generator(device=device).manual_seed(0))
        mse_p = (student.inverse(Zp) - model.flow.inverse(Zp)).pow(2).mean().item()
    res.update(recon_mse_test=mse, recon_psnr_test=psnr(mse), recon_mse_prior=mse_p, recon_psnr_prior=psnr(mse_p))
    print({k: v for k, v in res.items() if k != 'log'}, flush=True)
    speed = []
    for B in (1, args.bench_batch):
        z = torch.randn(B, model.cfg.N, model.cfg.d, device=device)
        row = dict(batch=B, teacher_s=median_time(lambda: model.flow.inverse(z), device), student_s=median_time(lambda: student.inverse(z), device))
        if device.type == 'cuda':
            g = GraphedInverse(model.flow, z); row['teacher_graph_s'] = median_time(lambda: g(z), device)
        labels = torch.arange(B, device=device) % model.cfg.num_classes
        row['pipeline_teacher_s'] = median_time(lambda: model.sample(labels), device, reps=3)
        row['pipeline_student_s'] = median_time(lambda: model.sample(labels, inverse='student'), device, reps=3)
        row['inverse_speedup'] = row['teacher_s'] / row['student_s']
        row['pipeline_speedup'] = row['pipeline_teacher_s'] / row['pipeline_student_s']
        print(row, flush=True); speed.append(row)
        res['speed'] = speed; (out/'results.json').write_text(json.dumps(res, indent=1))
    net = load_feature_net(device=device)
    res['quality'] = teacher_vs_student(model, args.n, test.images[:args.n], net, 1000, grid_dir=out)
    (out/'results.json').write_text(json.dumps(res, indent=1))

if __name__ == '__main__':
    main()
