"Tests of farmer_nb.distill: the bidirectional student, its one-pass block inverse, Algorithm 2's loss and the training loop."
import copy, re

import pytest
import torch

from farmer_nb.data import SyntheticImages, dequantize, patchify, quantize, unpatchify
from farmer_nb.distill import Student, distill, distill_loss, student_block_inverse
from farmer_nb.flow import AutoregressiveFlow, block_forward, permute_tokens, randomize_
from farmer_nb.model import Farmer, get_config


def make_flow(d=4, N=6, n_blocks=3, depth=2, num_classes=0, std=0.1, seed=0, dtype=torch.float32):
    "A tiny flow with seeded random weights (output layers included), alternating token order."
    torch.manual_seed(seed)
    flow = AutoregressiveFlow(d, N, n_blocks, width=32, depth=depth, head_dim=16, num_classes=num_classes)
    return randomize_(flow.to(dtype), std=std, seed=seed).eval()


def tokens(B=3, N=6, d=4, seed=1, dtype=torch.float32):
    "Seeded standard-normal tokens (B, N, d)."
    return torch.randn(B, N, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def tiny_farmer(std=0.1, seed=0):
    "The 'farmer-tiny' model (1×8×8, patch 2: N = 16, d = 4) with a seeded random flow."
    torch.manual_seed(seed)
    m = Farmer(get_config('farmer-tiny'))
    randomize_(m.flow, std=std, seed=seed)
    return m.eval()


def exact_inverse_block(self, t, z, c=None):
    "Student.block_inverse replaced by the teacher's exact sequential inverse of block t."
    return self.flow.blocks[t].inverse(z, c)


# ---------------------------------------------------------------- the student

def test_student_is_bidirectional_deep_copy():
    "The student starts with the teacher's weights in separate storage, bidirectional; the teacher stays causal."
    flow = make_flow()
    st = Student(flow)
    t_sd, s_sd = flow.state_dict(), st.flow.state_dict()
    assert t_sd.keys() == s_sd.keys()
    for k in t_sd:
        assert torch.equal(t_sd[k], s_sd[k]) and t_sd[k].data_ptr() != s_sd[k].data_ptr(), k
    assert all(not l.attn.causal for b in st.flow.blocks for l in b.transformer.layers)
    assert all(l.attn.causal for b in flow.blocks for l in b.transformer.layers)
    assert [b.reverse for b in st.flow.blocks] == [b.reverse for b in flow.blocks] == [False, True, False]
    with torch.no_grad(): st.flow.blocks[0].proj_in.weight.add_(1.0)
    assert torch.equal(flow.state_dict()['blocks.0.proj_in.weight'], t_sd['blocks.0.proj_in.weight'])


# ---------------------------------------------------------------- one-pass block inverse

@pytest.mark.parametrize('t', [0, 1])
@pytest.mark.parametrize('mode', ['fp32', 'fp64', 'bf16-autocast'])
def test_block_inverse_first_token_shape_dtype(t, mode):
    "The block's first token (in its own order) passes through exactly; output shape kept, dtype fp32 (fp64 for fp64)."
    dtype = torch.float64 if mode == 'fp64' else torch.float32
    st = Student(make_flow(dtype=dtype))
    z = tokens(dtype=dtype)
    if mode == 'bf16-autocast':
        z = z.bfloat16()
        with torch.autocast('cpu', dtype=torch.bfloat16): x = student_block_inverse(st.flow.blocks[t], z)
    else:
        x = student_block_inverse(st.flow.blocks[t], z)
    assert x.shape == z.shape and x.dtype == (torch.float64 if mode == 'fp64' else torch.float32)
    rev = st.flow.blocks[t].reverse
    first = permute_tokens(x, rev)[:, 0]
    assert torch.equal(first, permute_tokens(z, rev)[:, 0].to(x.dtype))
    assert torch.isfinite(x).all() and not torch.allclose(x, z.to(x.dtype), atol=1e-3)   # the other tokens move


@pytest.mark.parametrize('t', [0, 1])
def test_student_depends_on_later_tokens_teacher_does_not(t):
    "Perturbing the last token (block order) changes the student's earlier outputs but not the teacher's."
    flow = make_flow()
    st = Student(flow)
    rev = flow.blocks[t].reverse
    z = tokens()
    zb = permute_tokens(z, rev).clone(); zb[:, -1] += 1.0
    z2 = permute_tokens(zb, rev)
    diff = lambda f: (permute_tokens(f(z2), rev) - permute_tokens(f(z), rev)).abs().amax(dim=(0, 2))   # (N,), block order
    d_student = diff(lambda v: student_block_inverse(st.flow.blocks[t], v))
    d_teacher = diff(lambda v: flow.blocks[t].inverse(v))
    d_causal = diff(lambda v: student_block_inverse(flow.blocks[t], v))          # same formula, causal attention
    assert d_student[0] == 0 and (d_student[1:-1] > 1e-4).all()
    assert (d_teacher[:-1] == 0).all() and d_teacher[-1] > 0
    assert (d_causal[:-1] <= 1e-6).all()


@pytest.mark.parametrize('dtype, tol', [(torch.float64, 1e-10), (torch.float32, 1e-6)])
@pytest.mark.parametrize('kind', ['attention zeroed', 'identical token inputs'])
@pytest.mark.parametrize('t', [0, 1, 2])
def test_student_equals_teacher_when_transformer_ignores_input(kind, t, dtype, tol):
    "With proj_in's weight zero (and no token mixing), both inverses are the same per-token affine map, to tol·max|x|."
    flow = make_flow(std=0.3, dtype=dtype)
    with torch.no_grad():
        for blk in flow.blocks:
            blk.proj_in.weight.zero_()
            if kind == 'attention zeroed':                     # no context: h_i depends on position i only
                for layer in blk.transformer.layers: layer.attn.proj.weight.zero_(); layer.attn.proj.bias.zero_()
            else:                                              # every position sees the same input: any mask gives the same h
                blk.pos_emb.copy_(blk.pos_emb[:, :1].expand_as(blk.pos_emb))
    st = Student(flow)
    z = tokens(B=4, dtype=dtype)
    x_teacher = flow.blocks[t].inverse(z)
    x_student = st.block_inverse(t, z)
    assert not torch.allclose(x_teacher, z, atol=1e-2)                          # a non-trivial map
    scale = max(1.0, x_teacher.abs().max().item())
    assert (x_student - x_teacher).abs().max().item() <= tol * scale
    assert (block_forward(flow.blocks[t], x_student)[0] - z).abs().max().item() <= 10 * tol * scale


# ---------------------------------------------------------------- Algorithm 2's loss

def test_distill_loss_matches_manual_algorithm2():
    "distill_loss equals a hand-written Algorithm 2 (teacher path, per-sample s·ε, student chained on its own outputs)."
    flow = make_flow(n_blocks=3, dtype=torch.float64)
    st = Student(flow)
    with torch.no_grad():                                      # make the student differ from the teacher
        for p in st.parameters(): p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(9), dtype=p.dtype))
    X, s_max = tokens(B=5, dtype=torch.float64), 0.3
    loss = distill_loss(st, flow, X, None, s_max, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        path = [X]
        for blk in flow.blocks: path.append(block_forward(blk, path[-1])[0])
        s = s_max * torch.rand(5, generator=g, dtype=torch.float64)             # one level per sample, in the inputs' dtype
        assert ((s >= 0) & (s <= s_max)).all() and s.unique().numel() == 5
        z = path[-1] + s[:, None, None] * torch.randn(path[-1].shape, generator=g, dtype=torch.float64)
        terms = []
        for t in (2, 1, 0):
            z = student_block_inverse(st.flow.blocks[t], z)                    # fed its own output
            terms.append(((z - path[t]) ** 2).sum() / z.numel())
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx((sum(terms) / 3).item(), rel=1e-12)
    assert loss.item() != pytest.approx(distill_loss(st, flow, X, None, 0.0, torch.Generator().manual_seed(7)).item(), rel=1e-3)


@pytest.mark.parametrize('dtype, tol', [(torch.float64, 1e-10), (torch.float32, 1e-8)])
def test_distill_loss_zero_for_exact_inverse(monkeypatch, dtype, tol):
    "With s_max = 0 and the teacher's exact inverse as the student, the loss vanishes; with noise it does not."
    flow = make_flow(dtype=dtype)
    monkeypatch.setattr(Student, 'block_inverse', exact_inverse_block)
    st, X = Student(flow), tokens(dtype=dtype)
    assert distill_loss(st, flow, X, None, 0.0, torch.Generator().manual_seed(0)).item() < tol
    assert distill_loss(st, flow, X, None, 0.3, torch.Generator().manual_seed(0)).item() > 1e-4


def test_distill_loss_gradients_reach_student_only():
    "Backpropagating the loss fills every student gradient and none of the teacher's."
    flow = make_flow()
    st = Student(flow)
    loss = distill_loss(st, flow, tokens(), None, 0.3, torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in st.parameters())
    assert sum(p.grad.abs().sum() for p in st.parameters()) > 0
    assert all(p.grad is None for p in flow.parameters())


# ---------------------------------------------------------------- training

@pytest.fixture(scope='module')
def distilled():
    "A 'farmer-tiny' model distilled for 100 steps on SyntheticImages; (model, teacher snapshot, student at init, log)."
    m, ds = tiny_farmer(), SyntheticImages(n=512)
    snapshot, init = copy.deepcopy(m.flow.state_dict()), Student(m.flow)
    student, log = distill(m, ds.images, ds.labels, epochs=100, batch_size=64, max_steps=100, log_every=20, progress=False)
    return dict(model=m, snapshot=snapshot, init=init, student=student, log=log, images=ds.images)


def test_distill_reduces_reconstruction_error(distilled):
    "Distillation lowers the student's MSE to the exact inverse on held-in images by at least 5×."
    m = distilled['model']
    X = patchify(dequantize(distilled['images'][:128], 'center'), m.cfg.patch)
    with torch.no_grad():
        Z, _ = m.flow(X)
        exact = m.flow.inverse(Z)
        before = (distilled['init'].inverse(Z) - exact).pow(2).mean().item()
        after = (distilled['student'].inverse(Z) - exact).pow(2).mean().item()
    assert (exact - X).abs().max() < 1e-5
    assert before > 0.1 and after < before / 5


def test_distill_log_and_attachment(distilled):
    "distill attaches the student in eval mode and logs every 20 steps with a decreasing loss."
    m, log = distilled['model'], distilled['log']
    assert m.student is distilled['student'] and not m.student.training
    assert [r['step'] for r in log] == [20, 40, 60, 80, 100]
    losses = [r['loss'] for r in log]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] / 3


def test_distill_leaves_teacher_untouched(distilled):
    "After distill the teacher's weights are unchanged, require gradients again and its attention is still causal."
    m = distilled['model']
    for k, v in m.flow.state_dict().items(): assert torch.equal(v, distilled['snapshot'][k]), k
    assert all(p.requires_grad for p in m.flow.parameters())
    assert all(l.attn.causal for b in m.flow.blocks for l in b.transformer.layers)
    assert all(not l.attn.causal for b in m.student.flow.blocks for l in b.transformer.layers)
    assert not all(torch.equal(a, b) for a, b in zip(m.student.flow.parameters(), m.flow.parameters()))


def test_sample_with_student(distilled):
    "model.sample(inverse='student') decodes the same latents through the student; without a student it is refused."
    m = distilled['model']
    labels = torch.tensor([0, 1, 2, 3])
    a = m.sample(labels, generator=torch.Generator().manual_seed(0), inverse='student')
    with torch.no_grad():
        z = m.sample_latent(labels, 4, torch.Generator().manual_seed(0))
        ref = quantize(unpatchify(m.student.inverse(z), m.cfg.patch, m.cfg.image_shape))
    assert a.dtype == torch.uint8 and a.shape == (4, 1, 8, 8) and m.last_redrawn == 0
    assert torch.equal(a, ref)
    assert not torch.equal(a, m.sample(labels, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="inverse: 'student' needs a distilled student"):
        tiny_farmer().sample(n=2, inverse='student')


def test_distill_refuses_batch_larger_than_dataset():
    "distill with fewer images than one batch raises ValueError, as fit does, instead of returning an untrained student."
    m, ds = tiny_farmer(), SyntheticImages(n=100)
    with pytest.raises(ValueError):
        distill(m, ds.images, batch_size=256, progress=False)


@pytest.mark.parametrize('option, value, exc, match', [
    ('batch_size', 0, ValueError, 'batch_size: expected a finite number >= 1, got 0'),
    ('epochs', 0, ValueError, 'epochs: expected a finite number >= 1, got 0'),
    ('max_steps', 0, ValueError, 'max_steps: expected a finite number >= 1, got 0'),
    ('lr', -1e-3, ValueError, 'lr: expected a finite number > 0, got -0.001'),
    ('log_every', 2.5, TypeError, 'log_every: expected an int, got 2.5'),
])
def test_distill_number_checks(option, value, exc, match):
    "distill names a count or rate out of range before any work (batch_size=0 raised ZeroDivisionError)."
    m, ds = tiny_farmer(), SyntheticImages(n=32)
    with pytest.raises(exc, match=re.escape(match)):
        distill(m, ds.images, progress=False, **{'batch_size': 8, option: value})
    assert getattr(m, 'student', None) is None


# ---------------------------------------------------------------- the student is not part of the model

def test_student_stays_out_of_the_model(distilled):
    "After distill the model has the teacher's parameters only (farmer-tiny: 41,833), and state_dict has no student keys."
    m = distilled['model']
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in Farmer(m.cfg).parameters()) == 41_833
    assert not [k for k in m.state_dict() if k.startswith('student')]


def test_save_and_load_after_distill(distilled, tmp_path):
    "save_model then load_model round-trips a distilled model exactly; the student goes through its own file."
    from farmer_nb.distill import save_student, load_student
    from farmer_nb.model import save_model, load_model
    m = distilled['model']
    again = load_model(save_model(m, tmp_path/'model.safetensors'))
    assert all(torch.equal(again.state_dict()[k], v) for k, v in m.state_dict().items())
    load_student(again, save_student(m, tmp_path/'student.safetensors'))
    assert sum(p.numel() for p in again.parameters()) == 41_833
    again2 = load_model(save_model(again, tmp_path/'model2.safetensors'))        # after load_student too
    assert set(again2.state_dict()) == set(m.state_dict())
    labels = torch.tensor([0, 1, 2, 3])
    a = m.sample(labels, generator=torch.Generator().manual_seed(0), inverse='student')
    b = again.sample(labels, generator=torch.Generator().manual_seed(0), inverse='student')
    assert torch.equal(a, b)


def test_training_checkpoint_after_distill(distilled, tmp_path):
    "A model with a student trains, checkpoints and resumes; the checkpoint loads as a model (no student keys)."
    from farmer_nb.model import load_model
    from farmer_nb.train import fit
    m = copy.deepcopy(distilled['model'])
    ds = SyntheticImages(n=64)
    ck = tmp_path/'checkpoint.safetensors'
    fit(m, ds.images, ds.labels, epochs=1, batch_size=32, max_steps=2, stop_at_step=1, checkpoint=ck, progress=False)
    out = fit(m, ds.images, ds.labels, epochs=1, batch_size=32, max_steps=2, checkpoint=ck, resume=True, progress=False)
    assert out['steps'] == 2 and out['finished']
    assert set(load_model(ck).state_dict()) == set(Farmer(m.cfg).state_dict())
    assert m.student is not None and m.sample(n=None, labels=torch.tensor([0]), inverse='student').shape == (1, 1, 8, 8)


def test_student_follows_the_model_to_its_dtype(distilled):
    "The student is not a submodule, so model.double() leaves it; sampling moves it to the model's device and dtype."
    m = copy.deepcopy(distilled['model']).double()
    img = m.sample(torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0), inverse='student')
    assert img.shape == (2, 1, 8, 8) and m.student.flow.blocks[0].proj_in.weight.dtype == torch.float64


# ---------------------------------------------------------------- the fast sampler is model.sample

FAST_SHAPES = [dict(n_blocks=2), dict(n_blocks=3, mixing=True), dict(redundant='normal'), dict(d_I=4),
               dict(num_classes=0), dict(image_shape=(3, 8, 8), basis='dct', coupling=8)]


@pytest.mark.parametrize('over', FAST_SHAPES, ids=lambda o: ','.join(f'{k}={v}' for k, v in o.items()))
@pytest.mark.parametrize('inverse', ['teacher', 'student'])
def test_fast_sampler_equals_model_sample(over, inverse):
    "FastSampler (teacher or student inverse) gives model.sample's images bit for bit for the same seeds."
    from farmer_nb.distill import FastSampler
    from farmer_nb.model import randomize_model_
    m = randomize_model_(Farmer(get_config('farmer-tiny', **over)), std=0.05).eval()
    m.student = Student(m.flow).eval()
    labels = None if m.cfg.num_classes == 0 else torch.tensor([0, 1, 2, 3])
    seeds = [10, 11, 12, 13]
    fast = FastSampler(m, 4, inverse, T_pi=1.2, gamma=1.5)(labels, seeds=seeds)
    slow = m.sample(labels, n=4, seeds=seeds, inverse=None if inverse == 'teacher' else 'student',
                    T_pi=1.2, gamma=1.5)
    assert fast.dtype == torch.uint8 and torch.equal(fast, slow)


def test_fast_sampler_redraws_like_model_sample():
    "Images with non-finite pixels are drawn again on fresh noise, the same images as in model.sample."
    import torch.nn as nn
    from farmer_nb.distill import FastSampler
    from farmer_nb.model import randomize_model_

    class Flaky(nn.Module):                                   # a "student" that fails on some latents
        def __init__(self, flow):
            super().__init__()
            self.flow = flow

        def inverse(self, z, c=None):
            return torch.where(z[:, :1, :1] > 0.5, float('nan'), self.flow.inverse(z, c))

    m = randomize_model_(Farmer(get_config('farmer-tiny')), std=0.05).eval()
    m.student = Flaky(m.flow)
    labels, seeds = torch.arange(8) % 4, list(range(8))
    fs = FastSampler(m, 8, 'student')
    assert torch.equal(fs(labels, seeds=seeds), m.sample(labels, seeds=seeds, inverse='student'))
    assert fs.last_redrawn == m.last_redrawn > 0
