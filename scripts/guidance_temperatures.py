"""Evaluation temperatures of resampling guidance: the paper's ImageNet values (T_πv 0.2, T_σv 0.9) against 1, 1.

    python scripts/guidance_temperatures.py [--n 2000] [--out results/guidance_fmnist/cpu_temperatures/results.json]

Pretrained fmnist-small, n class-conditional samples per setting (the same seeds), scored with the classifier
features of 10_metrics against the first n test images. Runs on a CPU in about 3 minutes at n = 2000 (one thread).
"""
import argparse, json, time
from pathlib import Path
import torch
from farmer_nb.model import load_pretrained
from farmer_nb.data import FashionMNIST
from farmer_nb.guidance import Resampling, NaiveGuidance
from farmer_nb.metrics import load_feature_net, sample_quality, class_samples

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=2000); ap.add_argument('--out', default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    m = load_pretrained().eval(); net = load_feature_net(); real = FashionMNIST('test').images[:args.n]
    paper = dict(T_pi_v=0.2, T_sigma_v=0.9, T_s=1.1); ones = dict(T_pi_v=1.0, T_sigma_v=1.0, T_s=1.1)
    settings = [('none', None), ('naive w=1', NaiveGuidance(1.0)), ('resampling w=2 Tv=(0.2,0.9)', Resampling(2.0, 5, 5, **paper)),
                ('resampling w=1 Tv=1', Resampling(1.0, 5, 5, **ones)), ('resampling w=2 Tv=1', Resampling(2.0, 5, 5, **ones)),
                ('resampling w=4 Tv=1', Resampling(4.0, 5, 5, **ones))]
    out = {}
    for name, rule in settings:
        t = time.time()
        fake, labels = class_samples(m, args.n, 500, 0, guidance=rule)
        q = out[name] = sample_quality(fake, real, labels, net=net)
        print(f"{name:28s} FID {q['fid']:6.2f} prec {q['precision']:.3f} rec {q['recall']:.3f} acc {q['cond_accuracy']:.3f} ({time.time()-t:.0f}s)", flush=True)
    if args.out: Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(dict(n=args.n, device='cpu', runs=out), indent=1))

if __name__ == '__main__':
    main()
