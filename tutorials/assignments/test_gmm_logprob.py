"Autograder for assignment 2: the log-density of a diagonal Gaussian mixture."
import pytest, torch
from grader import load, notebook
from farmer_nb.gmm import GMM

gmm_log_prob = load(notebook('02_gmm_logprob.ipynb'), 'gmm_log_prob')

def _check(logits, mu, log_sigma, z, what):
    want = GMM(logits, mu, log_sigma).log_prob(z)
    got = gmm_log_prob(logits, mu, log_sigma, z)
    assert got.shape == want.shape, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.isfinite(got).all(), f"{what}: your result has inf/NaN ({got.flatten()[:4].tolist()}): work in logs and use torch.logsumexp"
    rel = ((got - want).abs() / want.abs().clamp_min(1.0)).max().item()
    assert rel < 1e-5, f"{what}: relative error {rel:.2e} (first values {got.flatten()[:3].tolist()} vs {want.flatten()[:3].tolist()})"

@pytest.mark.parametrize('batch, K, d', [((), 1, 1), ((5,), 3, 2), ((2, 4), 4, 6)])
def test_random_mixtures(batch, K, d):
    "Random mixtures of several batch shapes, component counts and dimensions."
    g = torch.Generator().manual_seed(K * 10 + d)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    _check(r(*batch, K), r(*batch, K, d), 0.5 * r(*batch, K, d), r(*batch, d), f"batch {batch}, K={K}, d={d}")

def test_weights_are_a_softmax_of_the_logits():
    "Adding a constant to every logit changes nothing: the weights are softmax(logits)."
    g = torch.Generator().manual_seed(1)
    logits, mu, ls, z = (torch.randn(3, 4, generator=g), torch.randn(3, 4, 2, generator=g), torch.zeros(3, 4, 2), torch.randn(3, 2, generator=g))
    a, b = gmm_log_prob(logits, mu, ls, z), gmm_log_prob(logits + 7.0, mu, ls, z)
    assert torch.allclose(a, b, atol=1e-5), "shifting all logits by 7 changed the result: normalise them with log_softmax"

def test_extreme_values_are_stable():
    "Huge logits, tiny scales and far points: still finite and right (the naive formula under/overflows)."
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], dtype=torch.float64)
    mu = torch.zeros(1, 3, 8, dtype=torch.float64)
    _check(logits, mu, torch.full((1, 3, 8), -3.0, dtype=torch.float64), torch.full((1, 8), 2.0, dtype=torch.float64), 'extreme values')
