"Autograder for assignment 4: the one-step distillation loss (FARMER Algorithm 2)."
import pytest, torch
from grader import load, notebook
from farmer_nb.flow import AutoregressiveFlow, randomize_
from farmer_nb.distill import Student, distill_loss

distillation_loss = load(notebook('04_distill_loss.ipynb'), 'distillation_loss')

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
    assert abs(got.item() - want.item()) < 1e-6 * max(1.0, abs(want.item())), (
        f"loss {got.item():.6g}, expected {want.item():.6g}. Checklist: s = s_max·rand(B, 1, 1) then eps = randn(Z_n.shape), "
        "in that order; walk the blocks from the last to the first; feed each student block its own previous output; "
        "average the per-block mean squared errors")

def test_gradients_reach_the_student_only():
    "Backward reaches every student block and leaves the teacher without gradients."
    teacher = randomize_(AutoregressiveFlow(4, 6, n_blocks=2, width=32, depth=1, head_dim=16))
    student = Student(teacher)
    distillation_loss(student, teacher, torch.randn(3, 6, 4), 0.3, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in teacher.parameters()), "the teacher's path must be computed without gradients (torch.no_grad)"
    for t, blk in enumerate(student.flow.blocks):
        assert blk.proj_out.weight.grad is not None and blk.proj_out.weight.grad.abs().sum() > 0, f"no gradient reached student block {t}"
