"""Summarise `scripts/ddp_fmnist.sh`: loss curves on 1 and 2 GPUs, throughput scaling, resumed runs.

    python scripts/ddp_report.py runs/ddp [--out results/ddp]

Writes summary.json and curves.png to --out (default: the run folder) and prints a table.
"""
import argparse, json, shutil
from pathlib import Path

def read_log(path):
    "{step: row} of a log.jsonl."
    return {r['step']: r for r in map(json.loads, Path(path).read_text().splitlines())} if Path(path).exists() else {}

def compare(a, b, key='loss'):
    "Largest and mean absolute difference of `key` at the steps both logs share."
    common = sorted(set(a) & set(b))
    d = [abs(a[s][key] - b[s][key]) for s in common]
    return dict(steps=len(common), max_abs=max(d, default=float('nan')), mean_abs=sum(d) / max(len(d), 1),
                first=common[0] if common else None, last=common[-1] if common else None)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('run'); ap.add_argument('--out', default=None)
    ap.add_argument('--stop', type=int, default=300, help='the step of the two-GPU checkpoint that was resumed')
    args = ap.parse_args()
    run = Path(args.run); out = Path(args.out or run); out.mkdir(parents=True, exist_ok=True)
    g1, g2 = read_log(run/'gpu1/log.jsonl'), read_log(run/'gpu2/log.jsonl')
    r1, rc = read_log(run/'resume_gpu1/log.jsonl'), read_log(run/'resume_cpu/log.jsonl')
    stop = args.stop
    after = lambda log: {s: r for s, r in log.items() if s > stop}
    res = dict(two_vs_one_gpu=compare(g2, g1), two_vs_one_gpu_before_stop=compare({s: r for s, r in g2.items() if s <= stop}, g1),
               resumed_on_1gpu_vs_resumed_on_2gpus=compare(after(r1), after(g2)),
               resumed_on_cpu_rows={s: r['loss'] for s, r in rc.items() if s > stop},
               loss_at_stop=g2[stop]['loss'] if stop in g2 else None, throughput={})
    for f in sorted(run.glob('bench_*_1gpu.json')):
        preset = f.name[len('bench_'):-len('_1gpu.json')]
        one = json.loads(f.read_text())['rows'][0]
        two_f = run/f'bench_{preset}_2gpu.json'
        two = json.loads(two_f.read_text())['rows'][0] if two_f.exists() else None
        res['throughput'][preset] = dict(batch_per_gpu=one['batch'], precision=one['precision'], img_per_s_1gpu=one['img_per_s'],
                                         img_per_s_2gpu=two and two['img_per_s'], scaling=two and two['img_per_s'] / one['img_per_s'],
                                         mfu_1gpu=one['mfu'], mfu_2gpu=two and two['mfu'])
    (out/'summary.json').write_text(json.dumps(res, indent=1))
    for name in ('gpu1', 'gpu2', 'resume_gpu1', 'resume_cpu'):
        if (run/name/'log.jsonl').exists() and out != run:
            (out/name).mkdir(exist_ok=True); shutil.copy(run/name/'log.jsonl', out/name/'log.jsonl')
    for f in run.glob('bench_*.json'):
        if out != run: shutil.copy(f, out/f.name)
    print(json.dumps(res, indent=1))
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for log, lab, st in [(g1, '1 GPU, batch 256', '-'), (g2, '2 GPUs, 128 each', '--'), (after(r1), '2-GPU checkpoint resumed on 1 GPU', ':')]:
        steps = sorted(log)
        a.plot(steps, [log[s]['bpd'] for s in steps], st, label=lab)
    a.set(xlabel='step', ylabel='training bits/dim (window mean)', title='same global batch'); a.legend(fontsize=7)
    common = sorted(set(g1) & set(g2))
    b.plot(common, [g2[s]['loss'] - g1[s]['loss'] for s in common], marker='.')
    b.axhline(0, c='k', lw=0.6); b.set(xlabel='step', ylabel='loss(2 GPUs) − loss(1 GPU), nats/dim', title='difference')
    fig.tight_layout(); fig.savefig(out/'curves.png', dpi=120)

if __name__ == '__main__':
    main()
