"Autograder for assignment 2: the log-density of a diagonal Gaussian mixture."
import math
import pytest, torch
from grader import load, notebook, diagnose
from farmer_nb.gmm import GMM

gmm_log_prob = load(notebook('02_gmm_logprob.ipynb'), 'gmm_log_prob')

LOGSUMEXP = "work in logs: a sum over channels for each component, then torch.logsumexp over the components"
SOFTMAX = "the weights are softmax(logits): normalise the logits with log_softmax"
CONSTANT = "each channel's Gaussian has the constant −½·log(2π): keep it"
LOG_SIGMA = "each channel's Gaussian has the term −log σ (its normalisation): keep it"
PER_CHANNEL = ("one weight per component for the whole vector: sum the channels' log-densities inside each "
               "component, then logsumexp over the components (not a mixture per channel)")

def _mistakes(logits, mu, log_sigma, z):
    "What typical wrong answers give on these inputs, with the hint for each."
    u = (z[..., None, :] - mu) * torch.exp(-log_sigma)                                 # (..., K, d)
    c = 0.5 * math.log(2 * math.pi)
    comp = lambda terms: terms.sum(-1)                                                  # (..., K)
    mix = lambda logw, lc: torch.logsumexp(logw + lc, -1)
    logpi = torch.log_softmax(logits, -1)
    return [(mix(logits, comp(-0.5 * u**2 - log_sigma - c)), SOFTMAX),
            (mix(logpi, comp(-0.5 * u**2 - log_sigma)), CONSTANT),
            (mix(logpi, comp(-0.5 * u**2 - c)), LOG_SIGMA),
            (mix(logpi, comp(-0.5 * u**2)), f"{CONSTANT}; {LOG_SIGMA}"),
            (torch.logsumexp(logpi[..., None] - 0.5 * u**2 - log_sigma - c, -2).sum(-1), PER_CHANNEL)]

def _check(logits, mu, log_sigma, z, what):
    want = GMM(logits, mu, log_sigma).log_prob(z)
    got = gmm_log_prob(logits, mu, log_sigma, z)
    assert torch.is_tensor(got) and got.shape == want.shape, (
        f"{what}: expected a tensor of shape {tuple(want.shape)} (the batch shape), got "
        f"{tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}")
    assert torch.isfinite(got).all(), f"{what}: your result has inf/NaN ({got.flatten()[:4].tolist()}): {LOGSUMEXP}"
    rel = ((got - want).abs() / want.abs().clamp_min(1.0)).max().item()
    hint = diagnose(got, _mistakes(logits, mu, log_sigma, z)) or "compare with the formula above, term by term"
    assert rel < 1e-5, (f"{what}: relative error {rel:.2e} (first values {got.flatten()[:3].tolist()} vs "
                        f"{want.flatten()[:3].tolist()}): {hint}")

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
    assert torch.allclose(a, b, atol=1e-5), f"shifting all logits by 7 changed the result: {SOFTMAX}"

def test_extreme_values_are_stable():
    "Huge logits, tiny scales and far points: still finite and right (the naive formula under/overflows)."
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], dtype=torch.float64)
    mu = torch.zeros(1, 3, 8, dtype=torch.float64)
    _check(logits, mu, torch.full((1, 3, 8), -3.0, dtype=torch.float64), torch.full((1, 8), 2.0, dtype=torch.float64), 'extreme values')
