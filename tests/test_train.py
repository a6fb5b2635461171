"Tests of farmer_nb.train: the loss goes down, non-finite steps are skipped and counted, schedules, determinism."
import math, re, sys

import pytest
import torch

from farmer_nb.data import SyntheticImages, dequantize
from farmer_nb.model import GaussianFlow, get_config
from farmer_nb.train import fit, lr_factor, make_optimizer, prepare_batch, train_step


def tiny(seed=0, **kw):
    "A zero-initialised 'tarflow-tiny' model (1×8×8 images, 4 classes)."
    torch.manual_seed(seed)
    return GaussianFlow(get_config('tarflow-tiny', **kw))


@pytest.fixture(scope='module')
def data():
    return SyntheticImages(n=64, size=8, channels=1, num_classes=4, seed=0)


def nan_nll(model, times=1):
    "Wrap model.nll so that its first `times` calls return NaN (still differentiable)."
    orig, calls = model.nll, [0]
    def nll(*args, **kw):
        calls[0] += 1
        out = orig(*args, **kw)
        return out * float('nan') if calls[0] <= times else out
    model.nll = nll
    return model


def snapshot(model, opt):
    "Copies of the parameters and of the AdamW state."
    params = [p.detach().clone() for p in model.parameters()]
    state = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in opt.state.items()}
    return params, state


def same_snapshot(a, b):
    (pa, sa), (pb, sb) = a, b
    return (all(torch.equal(x, y) for x, y in zip(pa, pb)) and sa.keys() == sb.keys()
            and all(torch.equal(sa[k][n], sb[k][n]) for k in sa for n in sa[k]))


@torch.no_grad()
def mean_nll(model, data):
    "Mean NLL (nats/dim) of the data at bin centres: a deterministic measure of fit."
    return model.nll(dequantize(data.images, 'center'), data.labels).mean().item()


def test_fit_lowers_the_loss(data):
    "20 AdamW steps on tiny synthetic data lower both the logged loss and the held-fixed NLL."
    model = tiny()
    before = mean_nll(model, data)
    out = fit(model, data.images, data.labels, epochs=10, batch_size=16, max_steps=20, noise='uniform', log_every=5,
              progress=False)
    after = mean_nll(model, data)
    assert out['steps'] == 20 and out['skipped'] == 0 and [r['step'] for r in out['log']] == [5, 10, 15, 20]
    assert out['log'][-1]['loss'] < out['log'][0]['loss'] - 0.2
    assert after < before - 0.3
    assert not model.training                                          # fit leaves the model in eval mode


def test_fit_gaussian_noise_schedule(data):
    "With noise='gaussian' the logged sigma follows the cosine schedule from sigma_max towards sigma_min."
    out = fit(tiny(), data.images, data.labels, batch_size=32, epochs=4, noise='gaussian', log_every=1, progress=False)
    sig = [r['sigma'] for r in out['log']]
    assert sig[0] == pytest.approx(0.1) and all(a > b for a, b in zip(sig, sig[1:])) and sig[-1] > 0.005


@pytest.mark.parametrize('fused', [True, False])
def test_nan_step_is_skipped(data, fused):
    "A step whose loss is NaN changes neither weights nor AdamW state, reports applied=False; the next step applies (fused AdamW: decided on the device)."
    model = tiny()
    opt = make_optimizer(model, fused=fused)
    assert bool(opt.param_groups[0]['fused']) == fused
    x, labels = data.images[:16], data.labels[:16]
    assert train_step(model, opt, x, labels)[2]                        # one normal step: AdamW has state
    before = snapshot(model, opt)
    loss, gnorm, applied = train_step(nan_nll(model), opt, x, labels)
    assert not applied and math.isnan(loss.item())
    assert same_snapshot(before, snapshot(model, opt))
    assert all(p.grad is None for p in model.parameters())             # NaN gradients are not kept
    loss, gnorm, applied = train_step(model, opt, x, labels)
    assert applied and math.isfinite(loss.item())
    assert not same_snapshot(before, snapshot(model, opt))
    assert all(s['step'].item() == 2 for s in opt.state.values())


SCHED_WARNING = 'ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`'   # a skipped first step


@pytest.mark.filterwarnings(SCHED_WARNING)
def test_fit_counts_skipped_steps(data):
    "fit skips a NaN step, counts it, and reports it in the log."
    out = fit(nan_nll(tiny()), data.images, data.labels, batch_size=16, epochs=3, log_every=4, progress=False)
    assert out['steps'] == 12 and out['skipped'] == 1
    assert [r['skipped'] for r in out['log']] == [1, 1, 1]
    assert all(math.isfinite(r['loss']) for r in out['log'])


@pytest.mark.filterwarnings(SCHED_WARNING)
def test_fit_log_window_without_applied_steps(data):
    "A log window in which no step was applied reports a NaN loss, not a made-up finite one."
    out = fit(nan_nll(tiny()), data.images, data.labels, batch_size=16, epochs=1, log_every=1, progress=False)
    assert out['log'][0]['skipped'] == 1
    assert math.isnan(out['log'][0]['loss'])


@pytest.mark.filterwarnings(SCHED_WARNING)
def test_fit_gives_up_when_diverged(data):
    "A model whose loss is always NaN makes fit raise RuntimeError once too many steps are skipped."
    with pytest.raises(RuntimeError, match=r'training diverged: 11 of 11 steps had a non-finite loss'):
        fit(nan_nll(tiny(), times=10**9), data.images, data.labels, batch_size=4, epochs=1, progress=False)


def test_fit_argument_checks(data):
    "fit checks its data and options before training."
    with pytest.raises(ValueError, match='batch_size: 128 is larger than the dataset'):
        fit(tiny(), data.images, data.labels, batch_size=128, progress=False)
    with pytest.raises(ValueError, match=r"noise: expected one of 'uniform', 'gaussian', 'uniform\+gaussian'"):
        fit(tiny(), data.images, data.labels, noise='salt', progress=False)
    with pytest.raises(TypeError, match='images: expected uint8 pixels'):
        fit(tiny(), data.images.float(), data.labels, progress=False)
    with pytest.raises(ValueError, match=r'labels: expected values in \[0, 4\)'):
        fit(tiny(), data.images, data.labels + 4, progress=False)


@pytest.mark.parametrize('option, value, exc, match', [
    ('batch_size', 0, ValueError, 'batch_size: expected a finite number >= 1, got 0'),
    ('batch_size', -4, ValueError, 'batch_size: expected a finite number >= 1, got -4'),
    ('batch_size', 2.5, TypeError, 'batch_size: expected an int, got 2.5'),
    ('epochs', 0, ValueError, 'epochs: expected a finite number >= 1, got 0'),
    ('epochs', True, TypeError, 'epochs: expected an int, got True'),
    ('lr', -1e-3, ValueError, 'lr: expected a finite number > 0, got -0.001'),
    ('lr', float('nan'), ValueError, 'lr: expected a finite number > 0, got nan'),
    ('grad_clip', 0, ValueError, 'grad_clip: expected a finite number > 0, got 0'),
    ('grad_clip', None, TypeError, 'grad_clip: expected a number, got None'),
    ('weight_decay', -0.1, ValueError, 'weight_decay: expected a finite number >= 0'),
    ('max_steps', -1, ValueError, 'max_steps: expected a finite number >= 0, got -1'),
    ('log_every', 0, ValueError, 'log_every: expected a finite number >= 1, got 0'),
    ('sigma_max', float('inf'), ValueError, 'sigma_max: expected a finite number >= 0, got inf'),
    ('stop_after', -1.0, ValueError, 'stop_after: expected a finite number >= 0, got -1.0'),
    ('warmup_steps', '10', TypeError, "warmup_steps: expected an int, got '10'"),
])
def test_fit_number_checks(data, option, value, exc, match):
    "A count, size or rate out of range is refused before any work, with a message naming it."
    model = tiny()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(exc, match=re.escape(match)):
        fit(model, data.images, data.labels, progress=False, **{'batch_size': 4, option: value})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))      # nothing trained


@pytest.mark.parametrize('step, total, warmup, expected', [
    (0, 100, 10, 0.1),            # first warm-up step: 1/warmup
    (4, 100, 10, 0.5),
    (9, 100, 10, 1.0),            # last warm-up step: the peak
    (10, 100, 10, 1.0),           # start of the cosine
    (55, 100, 10, 0.505),         # half-way down: (1 + min_ratio)/2
    (100, 100, 10, 0.01),         # end: min_ratio
    (250, 100, 10, 0.01),         # past the end: stays at min_ratio
    (0, 100, 0, 1.0),             # no warm-up
])
def test_lr_factor(step, total, warmup, expected):
    "Linear warm-up to 1, then cosine decay to min_ratio = 0.01."
    assert lr_factor(step, total, warmup) == pytest.approx(expected, rel=1e-12)


def test_lr_factor_monotone():
    "The factor rises during warm-up and never rises afterwards."
    f = [lr_factor(s, 200, 20) for s in range(201)]
    assert all(a < b for a, b in zip(f[:20], f[1:20])) and all(a >= b for a, b in zip(f[19:], f[20:]))


def test_make_optimizer_weight_decay_groups():
    "AdamW decays parameters of 2+ dimensions only; 1-D ones (biases, norms) get no weight decay."
    model = tiny(num_classes=4)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW)
    wd = {id(p): g['weight_decay'] for g in opt.param_groups for p in g['params']}
    params = list(model.parameters())
    assert len(wd) == len(params) == sum(len(g['params']) for g in opt.param_groups)     # each exactly once
    for p in params: assert wd[id(p)] == (0.05 if p.ndim >= 2 else 0.0)
    assert any(p.ndim == 1 for p in params) and any(p.ndim >= 2 for p in params)


@pytest.mark.parametrize('noise, label_drop', [('uniform', 0.0), ('gaussian', 0.5)])
def test_fit_is_deterministic(data, noise, label_drop):
    "The same seed gives bit-identical loss logs and weights on CPU."
    runs = []
    for _ in range(2):
        model = tiny(seed=3)
        out = fit(model, data.images, data.labels, batch_size=16, epochs=2, noise=noise, label_drop=label_drop,
                  log_every=1, seed=11, progress=False)
        runs.append(([(r['loss'], r['grad_norm']) for r in out['log']], model.state_dict()))
    (log_a, sd_a), (log_b, sd_b) = runs
    assert len(log_a) == 8 and log_a == log_b
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


# --- checkpoints and exact resume -------------------------------------------------------------------------

def _run(make, data, **kw):
    "Build a fresh model with `make` and train it; returns (model, fit output)."
    m = make()
    return m, fit(m, data.images, data.labels, epochs=3, batch_size=16, lr=3e-3, log_every=3, progress=False, **kw)


def _farmer():
    from farmer_nb.model import Farmer
    torch.manual_seed(0)
    return Farmer(get_config('farmer-tiny'))


@pytest.mark.parametrize('make', [tiny, _farmer], ids=['gaussian-flow', 'farmer'])
@pytest.mark.parametrize('noise', ['uniform', 'gaussian', 'uniform+gaussian'])
@pytest.mark.parametrize('stop', [1, 4, 6])      # after the first step, on an epoch boundary (4 steps per epoch), mid-epoch
def test_resume_is_exact(tmp_path, data, make, noise, stop):
    "N steps, stop, resume, the rest: bit-identical weights and log to the straight run (CPU)."
    straight, a = _run(make, data, noise=noise)
    ck = tmp_path / 'ck.safetensors'
    _, first = _run(make, data, noise=noise, checkpoint=ck, stop_at_step=stop)
    assert first['steps'] == stop and not first['finished']
    resumed, b = _run(make, data, noise=noise, checkpoint=ck, resume=True)
    assert b['finished'] and b['steps'] == a['steps']
    for (k, v), (_, w) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(v, w), k
    assert [r['loss'] for r in a['log']] == [r['loss'] for r in b['log']]


def test_checkpoint_every_and_three_calls(tmp_path, data):
    "Periodic checkpoints: a run split into three calls equals the straight run."
    straight, a = _run(tiny, data)
    ck = tmp_path / 'ck.safetensors'
    _run(tiny, data, checkpoint=ck, checkpoint_every=2, stop_at_step=3)
    _run(tiny, data, checkpoint=ck, checkpoint_every=2, resume=True, stop_at_step=8)
    resumed, b = _run(tiny, data, checkpoint=ck, checkpoint_every=2, resume=True)
    assert all(torch.equal(v, w) for v, w in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_resume_refuses_other_settings_or_config(tmp_path, data):
    "A checkpoint from other settings, another config or another model class is refused, naming the difference."
    ck = tmp_path / 'ck.safetensors'
    _run(tiny, data, checkpoint=ck, stop_at_step=2)
    with pytest.raises(ValueError, match='batch_size: now 8, checkpoint 16'):
        fit(tiny(), data.images, data.labels, epochs=3, batch_size=8, lr=3e-3, checkpoint=ck, resume=True, progress=False)
    with pytest.raises(ValueError, match='checkpoint is from another config .*width: expected 48'):
        fit(tiny(width=48), data.images, data.labels, epochs=3, batch_size=16, lr=3e-3, checkpoint=ck, resume=True, progress=False)
    with pytest.raises(ValueError, match='checkpoint of a GaussianFlow, not a Farmer'):
        fit(_farmer(), data.images, data.labels, epochs=3, batch_size=16, lr=3e-3, checkpoint=ck, resume=True, progress=False)


def test_training_checkpoint_loads_as_model(tmp_path, data):
    "load_model reads the weights of a training checkpoint; resume=True without a file starts from scratch."
    from farmer_nb.model import load_model
    ck = tmp_path / 'ck.safetensors'
    m, out = _run(tiny, data, checkpoint=ck, resume=True)             # no file yet: a fresh run
    assert out['finished'] and ck.exists()
    back = load_model(ck)
    assert all(torch.equal(v, w) for v, w in zip(m.state_dict().values(), back.state_dict().values()))


def test_fused_step_clips_like_clip_grad_norm(data):
    "The fused path divides gradients by max(1, |g|/clip) inside AdamW: the same weights as clip_grad_norm_ then a step, with clipping active."
    def run(plain, clip=0.02, steps=4):
        model = tiny(); opt = make_optimizer(model)
        g = torch.Generator().manual_seed(0)
        for i in range(steps):
            x, labels = data.images[16 * i:16 * (i + 1)], data.labels[16 * i:16 * (i + 1)]
            if plain:
                y, c = prepare_batch(model, x, labels, generator=g)
                opt.zero_grad(); model(y, c).mean().backward()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip); opt.step()
            else: norm = train_step(model, opt, x, labels, grad_clip=clip, generator=g)[1]
            assert norm > clip                                           # every step is clipped
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    a, b = run(False), run(True)
    start = torch.cat([p.detach().flatten() for p in tiny().parameters()])
    assert torch.allclose(a, b, atol=1e-6) and (a - start).abs().max() > 1e-3   # same weights, and they moved


# --- a time budget is a deadline -----------------------------------------------------------------

class FakeClock:
    "farmer_nb.train's view of `time`: perf_counter advances only when an optimizer step runs, by dt(step) seconds."
    def __init__(self, dt): self.now, self.dt, self.steps = 1000.0, dt, 0
    def perf_counter(self): return self.now
    def __getattr__(self, name): return getattr(__import__('time'), name)


def fake_clock(monkeypatch, dt):
    "Install a FakeClock in farmer_nb.train, ticking once per optimizer step."
    import farmer_nb.train as train
    clock, real = FakeClock(dt), train.optimizer_step
    def step(*a, **k):
        clock.steps += 1
        clock.now += dt(clock.steps)
        return real(*a, **k)
    monkeypatch.setattr(train, 'optimizer_step', step)
    monkeypatch.setattr(train, 'time', clock)
    return clock


def test_time_budget_is_a_deadline_on_a_slowing_machine(monkeypatch, data):
    "Planned as 200 steps of 5 ms, slowed to 50 ms a step after 10: training stops at the 1 s budget, finished, lr decayed."
    fake_clock(monkeypatch, lambda k: 0.005 if k <= 10 else 0.05)
    out = fit(tiny(), data.images, data.labels, epochs=1000, batch_size=16, max_steps=200, log_every=1, progress=False,
              time_budget=1.0)
    assert out['finished'] and out['steps'] in (29, 30)                          # 10 fast steps, then 19 or 20 slow ones
    assert out['seconds'] <= 1.0 + 0.05                                           # at most one step past the budget
    assert out['log'][-1]['step'] == out['steps']                                  # the last step is logged
    assert out['log'][-1]['lr'] < 0.02 * 2e-3 < out['log'][3]['lr']               # the cosine decay ran within the budget
    assert [r['lr'] for r in out['log'][:4]] == sorted(r['lr'] for r in out['log'][:4])   # after the warm-up


def test_time_budget_resumes_with_what_is_left(monkeypatch, tmp_path, data):
    "A budgeted run stopped early resumes with the rest of its budget; a spent budget resumes as finished, no step taken."
    fake_clock(monkeypatch, lambda k: 0.02)
    ck = tmp_path/'ck.safetensors'
    kw = dict(epochs=1000, batch_size=16, max_steps=1000, progress=False, checkpoint=ck, time_budget=1.0)
    first = fit(tiny(), data.images, data.labels, stop_at_step=5, **kw)
    assert not first['finished'] and first['steps'] == 5
    second = fit(tiny(), data.images, data.labels, resume=True, **kw)
    assert second['finished'] and second['steps'] in (50, 51)                     # 1 s of 20 ms steps in all
    third = fit(tiny(), data.images, data.labels, resume=True, **kw)
    assert third['finished'] and third['steps'] == second['steps']
    with pytest.raises(ValueError, match='time_budget: now 2.0, checkpoint 1.0'):
        fit(tiny(), data.images, data.labels, resume=True, **{**kw, 'time_budget': 2.0})


def test_time_budget_that_is_not_reached_changes_nothing(data):
    "A budget far beyond the run's steps gives exactly the run without a budget (the steps lead the schedule)."
    a = fit(tiny(), data.images, data.labels, epochs=2, batch_size=16, log_every=1, progress=False)
    b = fit(tiny(), data.images, data.labels, epochs=2, batch_size=16, log_every=1, progress=False, time_budget=3600.0)
    assert [r['loss'] for r in a['log']] == [r['loss'] for r in b['log']] and b['finished']


def test_make_optimizer_embed_decay():
    "embed_decay=False moves positional and class embeddings into the group without weight decay; matrices stay decayed."
    from farmer_nb.model import GaussianFlow, get_config
    from farmer_nb.train import make_optimizer, embedding_ids
    m = GaussianFlow(get_config('tarflow-tiny'))
    names = {id(p): n for n, p in m.named_parameters()}
    emb = {names[i] for i in embedding_ids(m)}
    assert emb == {f'flow.blocks.{t}.{k}' for t in range(2) for k in ('pos_emb', 'class_emb.weight')}
    for embed_decay in (True, False):
        decayed, plain = make_optimizer(m, weight_decay=0.03, embed_decay=embed_decay).param_groups
        assert decayed['weight_decay'] == 0.03 and plain['weight_decay'] == 0.0
        dec = {names[id(p)] for p in decayed['params']}
        assert emb <= dec if embed_decay else not emb & dec
        assert 'flow.blocks.0.proj_in.weight' in dec and 'flow.blocks.0.proj_in.bias' not in dec
        assert len(decayed['params']) + len(plain['params']) == len(list(m.parameters()))


# --- one set of defaults: fit trains as `farmer train` does ---------------------------------------------

def test_fit_defaults_are_farmer_trains():
    """fit's noise default is `farmer train --noise`'s (the annealed Gaussian: the command resolves its None to it, or
    to uniform with --init, and says so in --help: test_cli); the learning rate is the preset's, in 06_model."""
    import inspect
    from farmer_nb.cli import make_parser
    from farmer_nb.model import DEFAULT_LR, PRESET_LR, default_lr
    params = inspect.signature(fit).parameters
    assert params['noise'].default == 'gaussian' and make_parser().parse_args(['train']).noise is None
    assert params['lr'].default is None and make_parser().parse_args(['train']).lr is None
    assert DEFAULT_LR == 2e-3 and PRESET_LR == {'fmnist-base': 3e-4}           # what farmer train has always used
    assert default_lr('fmnist-base') == default_lr(get_config('fmnist-base')) == 3e-4
    assert default_lr('fmnist-small') == default_lr('tarflow-tiny') == 2e-3
    assert default_lr(get_config('fmnist-base', d_I=8)) == DEFAULT_LR             # a config of no preset
    with pytest.raises(ValueError, match="preset: unknown 'fmnist-huge'"):
        default_lr('fmnist-huge')


def test_fit_default_lr_and_noise(monkeypatch, data):
    "Without lr and noise, fit trains at the preset's peak learning rate with the annealed Gaussian noise."
    import farmer_nb.model as model_module
    kw = dict(batch_size=16, max_steps=2, warmup_steps=0, log_every=1, progress=False)
    out = fit(tiny(), data.images, data.labels, **kw)
    assert out['log'][0]['lr'] == pytest.approx(2e-3) and out['log'][0]['sigma'] == pytest.approx(0.1)
    same = fit(tiny(), data.images, data.labels, lr=2e-3, noise='gaussian', **kw)
    assert [r['loss'] for r in out['log']] == [r['loss'] for r in same['log']]
    monkeypatch.setitem(model_module.PRESET_LR, 'tarflow-tiny', 5e-4)             # the table decides
    assert fit(tiny(), data.images, data.labels, **kw)['log'][0]['lr'] == pytest.approx(5e-4)


# --- TensorBoard ---------------------------------------------------------------------------------------

def tensorboard_scalars(folder):
    "{tag: [(step, value), ...]} of the TensorBoard event files in `folder`, read back as TensorBoard does."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}


def log_scalars(log):
    "The same shape from fit's log: every number but the step, a list's items as key/i, no None."
    out = {}
    for row in log:
        for key, value in row.items():
            if key == 'step' or value is None: continue
            items = [(f'{key}/{i}', v) for i, v in enumerate(value)] if isinstance(value, list) else [(key, value)]
            for tag, v in items: out.setdefault(tag, []).append((row['step'], v))
    return out


def assert_same_scalars(events, log):
    "TensorBoard's scalars are the log's, tag for tag and step for step (TensorBoard keeps float32)."
    want = log_scalars(log)
    assert sorted(events) == sorted(want)
    for tag, rows in want.items():
        assert [s for s, _ in events[tag]] == [s for s, _ in rows], tag
        assert [v for _, v in events[tag]] == pytest.approx([v for _, v in rows], rel=1e-6, abs=1e-12), tag


def test_tensorboard_events_match_the_log(tmp_path):
    "3 steps of tarflow-tiny on random uint8 images: the event file holds the returned log's scalars."
    pytest.importorskip('tensorboard')
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 1, 8, 8), dtype=torch.uint8, generator=g)
    c = torch.randint(0, 4, (24,), generator=g)
    out = fit(tiny(), x, c, batch_size=8, max_steps=3, log_every=1, progress=False, tensorboard=tmp_path/'tb')
    assert len(list((tmp_path/'tb').glob('events.out.tfevents.*'))) == 1
    events = tensorboard_scalars(tmp_path/'tb')
    assert {'loss', 'bpd', 'grad_norm', 'lr', 'skipped', 'sigma', 'z2/0', 'z2/1', 'logdet_per_dim/1'} <= set(events)
    assert [s for s, _ in events['loss']] == [1, 2, 3]
    assert_same_scalars(events, out['log'])


def test_tensorboard_after_resume(tmp_path, data):
    "A run resumed from an earlier checkpoint than where a call stopped: TensorBoard shows each step once, the resumed run's."
    pytest.importorskip('tensorboard')
    import shutil
    ck = tmp_path/'ck.safetensors'
    kw = dict(batch_size=16, epochs=2, log_every=1, progress=False, checkpoint=ck, tensorboard=tmp_path/'tb')
    fit(tiny(), data.images, data.labels, stop_at_step=2, **kw)
    shutil.copy(ck, tmp_path/'at_step_2')
    fit(tiny(), data.images, data.labels, stop_at_step=5, resume=True, **kw)  # steps 3-5, then lost
    shutil.copy(tmp_path/'at_step_2', ck)
    out = fit(tiny(), data.images, data.labels, resume=True, **kw)
    straight = fit(tiny(), data.images, data.labels, **{**kw, 'checkpoint': None, 'tensorboard': None})
    events = tensorboard_scalars(tmp_path/'tb')
    assert [s for s, _ in events['loss']] == list(range(1, 9))
    assert [v for _, v in events['loss']] == pytest.approx([r['loss'] for r in straight['log']], rel=1e-6)
    assert_same_scalars(events, out['log'])                                     # the log keeps steps 1-2 too


def test_tensorboard_missing_names_the_extra(monkeypatch, tmp_path, data):
    "Without the tensorboard package, fit refuses before any step, naming the extra to install."
    monkeypatch.setitem(sys.modules, 'tensorboard', None)                        # as if not installed
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    with pytest.raises(ImportError, match=r"needs the tensorboard package: pip install 'farmer_nb\[tensorboard\]'"):
        fit(tiny(), data.images, data.labels, batch_size=16, progress=False, tensorboard=tmp_path/'tb',
            checkpoint=tmp_path/'ck.safetensors')
    assert not (tmp_path/'tb').exists() and not (tmp_path/'ck.safetensors').exists()


def test_regional_compile_matches_eager():
    """compile_model(..., 'regional') compiles each flow block and each prior layer in place (not the layers inside
    a flow block a second time): the same NLL and gradients as eager."""
    from farmer_nb.train import compile_model
    from farmer_nb.model import build_model, get_config
    torch.manual_seed(0)
    m = build_model(get_config('farmer-tiny'))
    y, c = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randint(0, 4, (4,))
    ref = m.nll(y, c)
    ref.mean().backward()
    g_ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    assert compile_model(m, 'regional') is m
    compiled = lambda mod: getattr(mod, '_compiled_call_impl', None) is not None
    assert all(compiled(b) for b in m.flow.blocks) and all(compiled(l) for l in m.prior.transformer.layers)
    assert not any(compiled(l) for b in m.flow.blocks for l in b.transformer.layers)
    out = m.nll(y, c)
    out.mean().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for g, p in zip(g_ref, m.parameters()): torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
