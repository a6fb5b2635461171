"Autograder for assignment 3: resampling-based classifier-free guidance (FARMER Algorithm 1)."
import torch
from grader import load, notebook
from farmer_nb.gmm import GMM
from farmer_nb.guidance import tv_to_target

resample_cfg = load(notebook('03_resampling_cfg.ipynb'), 'resample_cfg')

def mix(logits, mu, sd):
    return GMM(torch.tensor(logits, dtype=torch.float64), torch.tensor(mu, dtype=torch.float64)[:, None],
               torch.log(torch.tensor(sd, dtype=torch.float64))[:, None])

P_C, P_U = mix([0.3, 0.0], [-1.0, 1.0], [0.8, 0.8]), mix([0.0, 0.0], [-0.5, 1.5], [1.0, 1.0])

class _Rule:                                           # adapts your function to tv_to_target's interface
    def __init__(self, **kw): self.kw = kw
    def __call__(self, g_c, g_u, n=None, generator=None): return resample_cfg(g_c, g_u, generator=generator, **self.kw)

def test_shapes():
    "One draw of d channels per mixture of the batch."
    g = lambda: GMM(torch.randn(4, 3), torch.randn(4, 3, 2), torch.zeros(4, 3, 2))
    out = resample_cfg(g(), g(), w=1.5, s_c=5, s_u=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 2), f"expected (B, d) = (4, 2), got {tuple(out.shape)}"

def test_reaches_the_target():
    "With 5 + 5 candidates and w = 2 the draws are within total variation 0.07 of p_c^3 p_u^-2."
    tv = tv_to_target(_Rule(w=2.0, s_c=5, s_u=5), P_C, P_U, 2.0, n=200_000)
    assert tv < 0.07, f"total variation to the guided target is {tv:.3f} (plain p_c draws: 0.31). Check the weights w·Δ and (w+1)·Δ with Δ = log p_c − log p_u"

def test_weights_for_unconditional_candidates():
    "All candidates from p_u (s_c = 0): only the (w + 1)·Δ weight reaches the target."
    tv = tv_to_target(_Rule(w=2.0, s_c=0, s_u=50), P_C, P_U, 2.0, n=200_000)      # right weight: 0.016; w·Δ instead: 0.16
    assert tv < 0.03, f"total variation {tv:.3f}: candidates drawn from p_u need log-weight (w + 1)·Δ, not w·Δ (SPEC.md, reading A11)"
