"Several processes (gloo, CPU): the same global batch on 1 and 2 processes gives the same training; rank-0 checkpoints resume anywhere."
import json, os, sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from farmer_nb.data import SyntheticImages
from farmer_nb.model import Farmer, GaussianFlow, get_config
from farmer_nb.train import fit

ROOT = Path(__file__).resolve().parents[1]
KW = dict(epochs=2, batch_size=32, lr=3e-3, noise='uniform', log_every=1, progress=False, seed=0)


def make(kind):
    torch.manual_seed(0)
    return (Farmer if kind == 'farmer' else GaussianFlow)(get_config('farmer-tiny' if kind == 'farmer' else 'tarflow-tiny'))


def _worker(rank, world, kind, rdzv, out, stop=None):
    dist.init_process_group('gloo', init_method=f'file://{rdzv}', rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        data = SyntheticImages(n=128, size=8, num_classes=4)
        model = make(kind)
        res = fit(model, data.images, data.labels, checkpoint=Path(out)/'ck.safetensors', stop_at_step=stop, **KW)
        if rank == 0:
            torch.save({k: v.clone() for k, v in model.state_dict().items()}, Path(out)/'state.pt')
            (Path(out)/'losses.json').write_text(json.dumps([r['loss'] for r in res['log']]))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('kind', ['gaussian-flow', 'farmer'])
def test_two_processes_match_one(tmp_path, kind):
    "Global batch 32 on 2 gloo processes = batch 32 on 1 process: loss curve and weights agree to float rounding."
    mp.spawn(_worker, args=(2, kind, str(tmp_path/'rdzv'), str(tmp_path)), nprocs=2, join=True)
    two = json.loads((tmp_path/'losses.json').read_text())
    state2 = torch.load(tmp_path/'state.pt')
    data = SyntheticImages(n=128, size=8, num_classes=4)
    model = make(kind)
    one = [r['loss'] for r in fit(model, data.images, data.labels, **KW)['log']]
    assert len(one) == len(two) == 8
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    for k, v in model.state_dict().items():
        assert torch.allclose(v, state2[k], rtol=1e-4, atol=1e-5), k
    print('max loss difference, 1 vs 2 processes:', max(abs(a - b) for a, b in zip(one, two)))


def test_rank0_checkpoint_resumes_in_one_process(tmp_path):
    "A 2-process run stopped at step 5 (rank 0 writes the checkpoint) resumes in one process and ends where a straight run ends."
    mp.spawn(_worker, args=(2, 'farmer', str(tmp_path/'rdzv'), str(tmp_path), 5), nprocs=2, join=True)
    data = SyntheticImages(n=128, size=8, num_classes=4)
    straight = make('farmer')
    one = [r['loss'] for r in fit(straight, data.images, data.labels, **KW)['log']]
    resumed = make('farmer')
    out = fit(resumed, data.images, data.labels, checkpoint=tmp_path/'ck.safetensors', resume=True, **KW)
    assert out['finished'] and out['steps'] == 8
    assert max(abs(a - b) for a, b in zip(one, [r['loss'] for r in out['log']])) < 1e-4
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], rtol=1e-4, atol=1e-5), k


BUDGET = 4.0                # seconds: more than one 10-step window even when other tests share the CPU


def _budget_worker(rank, world, rdzv, out):
    "A 4 s budgeted run in which rank 1 is slower (a sleep per step): every rank must stop at the same step."
    import time
    import farmer_nb.train as train
    dist.init_process_group('gloo', init_method=f'file://{rdzv}', rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        if rank == 1:
            real = train.optimizer_step
            def slow(*a, **k):
                time.sleep(0.02)
                return real(*a, **k)
            train.optimizer_step = slow
        data = SyntheticImages(n=128, size=8, num_classes=4)
        res = fit(make('farmer'), data.images, data.labels, **{**KW, 'epochs': 10_000}, time_budget=BUDGET)
        (Path(out)/f'rank{rank}.json').write_text(json.dumps(dict(steps=res['steps'], finished=res['finished'],
                                                                 seconds=res['seconds'])))
    finally:
        dist.destroy_process_group()


def test_time_budget_ends_every_process_at_the_same_step(tmp_path):
    "Under DDP the clock is agreed on (the slowest process's) every 10 steps: both ranks stop together, on time, finished."
    ctx = mp.spawn(_budget_worker, args=(2, str(tmp_path/'rdzv'), str(tmp_path)), nprocs=2, join=False)
    for _ in range(120):                                                      # a disagreement would hang: 60 s at most
        if ctx.join(timeout=0.5): break
    else:
        for p in ctx.processes: p.kill()
        pytest.fail('the two processes did not stop together')
    r0, r1 = (json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0, 1))
    assert r0['steps'] == r1['steps'] > 10 and r0['finished'] and r1['finished']
    window = 10 * max(r['seconds'] / r['steps'] for r in (r0, r1))              # the clock is read every 10 steps
    assert BUDGET <= max(r0['seconds'], r1['seconds']) < BUDGET + 1.5 * window + 0.5    # at most one window late
