"""Sample quality of a student against its teacher: the same latents through both inverses, scored by 10_metrics.

    python scripts/student_quality.py --student tutorials/data/fmnist_small_student.safetensors --n 10000 --out results/distill_fmnist/quality.json

The model defaults to the pretrained fmnist-small. n class-conditional samples (n/10 per class, the same seeds for
both), no guidance; classifier-FID, KID, precision/recall and accuracy against the first n test images. Runs on a CPU
(about 2 minutes per 10,000 samples and inverse on one core) or a GPU.
"""
import argparse, json, platform, time
from pathlib import Path
import torch
from farmer_nb.data import FashionMNIST
from farmer_nb.model import load_model, load_pretrained
from farmer_nb.distill import load_student
from farmer_nb.metrics import class_samples, sample_quality, load_feature_net
from farmer_nb.viz import save_image_grid

def teacher_vs_student(model, n, real, net, batch=500, grid_dir=None):
    "Quality of n samples through the exact inverse and through `model.student`, from the same latents: {'teacher': …, 'student': …}."
    res = {}
    for name, inv in [('teacher', None), ('student', 'student')]:
        t0 = time.perf_counter()
        imgs, labels = class_samples(model, n, batch, 0, inverse=inv)                        # the same latents for both
        res[name] = sample_quality(imgs, real, labels, net=net); res[name]['seconds'] = time.perf_counter() - t0
        if grid_dir is not None: save_image_grid(imgs[::max(1, len(imgs) // 100)][:100], Path(grid_dir)/f'samples_{name}.png', nrow=10)
        print(name, {k: round(v, 4) for k, v in res[name].items()}, flush=True)
    return res

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=None, help='a saved model (default: the pretrained fmnist-small)')
    ap.add_argument('--student', required=True); ap.add_argument('--n', type=int, default=10000)
    ap.add_argument('--batch', type=int, default=500); ap.add_argument('--data', default=None); ap.add_argument('--out', default=None)
    args = ap.parse_args()
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = (load_pretrained(device=dev) if args.model is None else load_model(args.model, dev)).eval()
    load_student(model, args.student)
    net, real = load_feature_net(device=dev), FashionMNIST('test', args.data).images[:args.n]
    res = dict(args=vars(args), device=torch.cuda.get_device_name() if dev.type == 'cuda' else platform.processor() or 'cpu')
    res.update(teacher_vs_student(model, args.n, real, net, args.batch))
    res['fid_change'] = res['student']['fid'] / res['teacher']['fid'] - 1
    print(f"student FID {res['fid_change']:+.1%} against the teacher")
    if args.out: Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(res, indent=1))

if __name__ == '__main__':
    main()
