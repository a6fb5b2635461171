"Autograder for assignment 4: the one-step distillation loss (FARMER Algorithm 2)."
import pytest, torch
from grader import load, notebook, diagnose
from farmer_nb.flow import AutoregressiveFlow, randomize_
from farmer_nb.distill import Student, distill_loss

distillation_loss = load(notebook('04_distill_loss.ipynb'), 'distillation_loss')

ORDER = "draw s = s_max·rand(B, 1, 1) first, then eps = randn(Z_n.shape), both from `generator`, in that order"
ONE_S_PER_SAMPLE = "draw one noise scale per sample: s = s_max·rand(B, 1, 1), not a single number for the batch"
NOISE = "start from the noisy last latent Ẑ_n = Z_n + s·eps"
OWN_OUTPUT = ("feed each student block its own previous output Ẑ_t (starting from the noisy Ẑ_n), not the "
              "teacher's latent Z_t")
DIRECTION = "walk the blocks from the last to the first: Ẑ_{t−1} = g_t(Ẑ_t) for t = n … 1, compared with Z_{t−1}"
AVERAGE = "average the per-block mean squared errors over the n blocks (divide their sum by n)"
NO_GRAD = "the teacher's path must be computed without gradients (torch.no_grad)"

def _loss(student, teacher, X, s_max, generator, order='s_first', chain=True, backwards=True, average=True, noise=True):
    "Algorithm 2 and its typical mistakes (the flags)."
    with torch.no_grad():
        path = [X]
        for blk in teacher.blocks: path.append(blk(path[-1])[0])
    B, n = X.shape[0], len(teacher.blocks)
    if order == 's_first':
        s = s_max * torch.rand(B, 1, 1, generator=generator); eps = torch.randn(path[-1].shape, generator=generator)
    elif order == 'eps_first':
        eps = torch.randn(path[-1].shape, generator=generator); s = s_max * torch.rand(B, 1, 1, generator=generator)
    else:
        s = s_max * torch.rand(1, generator=generator); eps = torch.randn(path[-1].shape, generator=generator)
    z = path[-1] + (s * eps if noise else 0)
    ts = reversed(range(n)) if backwards else range(n)
    loss = 0.0
    for t in ts:
        inp = z if chain else (path[t + 1] + (s * eps if noise and t == n - 1 else 0))
        z = student.block_inverse(t, inp)
        loss = loss + (z - path[t]).pow(2).mean()
    return loss / n if average else loss

def _mistakes(student, teacher, X, s_max, seed):
    run = lambda **kw: _loss(student, teacher, X, s_max, torch.Generator().manual_seed(seed), **kw).detach()
    return [(run(order='eps_first'), ORDER), (run(order='one_s'), ONE_S_PER_SAMPLE), (run(noise=False), NOISE),
            (run(chain=False), OWN_OUTPUT), (run(backwards=False), DIRECTION), (run(average=False), AVERAGE)]

@pytest.mark.parametrize('n_blocks, s_max', [(1, 0.3), (2, 0.3), (3, 0.0)])
def test_matches_algorithm_2(n_blocks, s_max):
    "Same flows, same random draws: your loss equals the library's."
    teacher = randomize_(AutoregressiveFlow(4, 6, n_blocks=n_blocks, width=32, depth=1, head_dim=16), seed=n_blocks)
    student = Student(teacher)
    with torch.no_grad():
        for p in student.parameters(): p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    X = torch.randn(5, 6, 4, generator=torch.Generator().manual_seed(1))
    want = distill_loss(student, teacher, X, None, s_max, torch.Generator().manual_seed(7))
    got = distillation_loss(student, teacher, X, s_max, torch.Generator().manual_seed(7))
    assert torch.is_tensor(got) and got.dim() == 0, "return the loss as a scalar tensor"
    if abs(got.item() - want.item()) < 1e-6 * max(1.0, abs(want.item())): return
    hint = diagnose(got, _mistakes(student, teacher, X, s_max, 7), rtol=1e-6) or (
        f"checklist: {ORDER}; {OWN_OUTPUT}; {DIRECTION}; {AVERAGE}")
    pytest.fail(f"loss {got.item():.6g}, expected {want.item():.6g} ({n_blocks} block(s), s_max = {s_max}): {hint}",
                pytrace=False)

def test_gradients_reach_the_student_only():
    "Backward reaches every student block and leaves the teacher without gradients."
    teacher = randomize_(AutoregressiveFlow(4, 6, n_blocks=2, width=32, depth=1, head_dim=16))
    student = Student(teacher)
    loss = distillation_loss(student, teacher, torch.randn(3, 6, 4), 0.3, torch.Generator().manual_seed(0))
    assert torch.is_tensor(loss) and loss.requires_grad, (
        "the loss carries no gradient: compute the student's path with gradients (only the teacher's without)")
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters()), NO_GRAD
    for t, blk in enumerate(student.flow.blocks):
        assert blk.proj_out.weight.grad is not None and blk.proj_out.weight.grad.abs().sum() > 0, f"no gradient reached student block {t}"
