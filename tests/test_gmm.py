"Tests of farmer_nb.gmm: the diagonal Gaussian mixture (density, sampling, temperatures) and its linear head."
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from farmer_nb.gmm import GMM, GMMHead


def random_gmm(batch, K, d, seed=0, dtype=torch.float64, spread=2.0):
    "A random mixture with batch shape `batch`: logits ~ N(0, 1), means in ±spread, sigmas in [0.3, 1]."
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*batch, K, generator=g, dtype=dtype)
    mu = spread * (2 * torch.rand(*batch, K, d, generator=g, dtype=dtype) - 1)
    log_sigma = torch.log(0.3 + 0.7 * torch.rand(*batch, K, d, generator=g, dtype=dtype))
    return GMM(logits, mu, log_sigma)


def reference(gmm):
    "The same mixture as a torch.distributions object (float64)."
    comp = Independent(Normal(gmm.mu.double(), gmm.log_sigma.double().exp()), 1)
    return MixtureSameFamily(Categorical(logits=gmm.logits.double()), comp)


def mixture_moments(gmm):
    "Mean, variance and fourth central moment per dimension of a mixture with empty batch shape."
    pi, mu, s2 = torch.softmax(gmm.logits.double(), -1)[:, None], gmm.mu.double(), gmm.log_sigma.double().exp() ** 2
    mean = (pi * mu).sum(0)
    var = (pi * (s2 + mu ** 2)).sum(0) - mean ** 2
    delta = mu - mean
    m4 = (pi * (delta ** 4 + 6 * delta ** 2 * s2 + 3 * s2 ** 2)).sum(0)
    return mean, var, m4


# --- density ------------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', [0, 1, 2])
def test_log_prob_integrates_to_one_1d(seed):
    "exp(log_prob) of a 1-D mixture integrates to 1 on a fine grid (trapezoid rule)."
    gmm = random_gmm((), K=3, d=1, seed=seed)
    x = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    p = gmm.log_prob(x[:, None]).exp()
    assert p.dtype == torch.float64
    assert torch.trapezoid(p, x).item() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_log_prob_integrates_to_one_2d(seed):
    "exp(log_prob) of a 2-D mixture integrates to 1 on a fine 2-D grid."
    gmm = random_gmm((), K=4, d=2, seed=seed)
    t = torch.linspace(-8, 8, 641, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(t, t, indexing='ij'), -1)           # (641, 641, 2)
    p = gmm.log_prob(grid).exp()
    assert torch.trapezoid(torch.trapezoid(p, t, dim=1), t).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize('batch', [(3,), (2, 5)])
def test_log_prob_matches_torch_distributions(batch):
    "log_prob equals log Σ_k π_k Π_j N(z_j; μ_kj, σ_kj²) computed with torch.distributions in float64."
    gmm = random_gmm(batch, K=4, d=3, seed=len(batch))
    z = torch.randn(*batch, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    lp = gmm.log_prob(z)
    assert lp.shape == batch
    torch.testing.assert_close(lp, reference(gmm).log_prob(z), rtol=0, atol=1e-12)


def test_log_prob_matches_direct_sum():
    "log_prob equals the log of an explicit sum over components of π_k × product of normal pdfs."
    gmm = random_gmm((3,), K=2, d=2, seed=5)
    z = torch.randn(3, 2, dtype=torch.float64)
    pi, sigma = torch.softmax(gmm.logits, -1), gmm.log_sigma.exp()
    pdf = torch.exp(-0.5 * ((z[:, None] - gmm.mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))   # (3, K, d)
    torch.testing.assert_close(gmm.log_prob(z), torch.log((pi * pdf.prod(-1)).sum(-1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize('z_shape, out_shape', [((3,), (2, 5)), ((4, 1, 1, 3), (4, 2, 5)), ((1, 5, 3), (2, 5))])
def test_log_prob_broadcasts_z_against_batch(z_shape, out_shape):
    "z broadcasts against the mixture's batch shape like any elementwise op, with the same values as the reference."
    gmm = random_gmm((2, 5), K=3, d=3, seed=11)
    z = torch.randn(*z_shape, dtype=torch.float64)
    lp = gmm.log_prob(z)
    assert lp.shape == out_shape
    torch.testing.assert_close(lp, reference(gmm).log_prob(z), rtol=0, atol=1e-12)


def test_log_prob_is_fp32_for_bf16_parameters():
    "A mixture with bf16 parameters and a bf16 z returns an fp32 log-density."
    gmm = random_gmm((3,), K=2, d=4, dtype=torch.float32)
    gmm16 = GMM(gmm.logits.bfloat16(), gmm.mu.bfloat16(), gmm.log_sigma.bfloat16())
    assert gmm16.log_prob(torch.zeros(3, 4, dtype=torch.bfloat16)).dtype == torch.float32


# --- sampling -----------------------------------------------------------------------------------

def test_sample_shapes():
    "sample() gives one draw per mixture (..., d); sample(n) gives (n, ..., d)."
    gmm = random_gmm((2, 5), K=3, d=4, dtype=torch.float32)
    assert gmm.sample().shape == (2, 5, 4)
    assert gmm.sample(n=7).shape == (7, 2, 5, 4)


def test_sample_is_reproducible_with_generator():
    "Two draws with equally seeded generators are identical."
    gmm = random_gmm((3,), K=3, d=2)
    a = gmm.sample(n=5, generator=torch.Generator().manual_seed(3))
    b = gmm.sample(n=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize('seed', [0, 1])
def test_sample_mean_and_variance(seed):
    "Empirical mean and variance of 200k draws match the mixture's within 4 standard errors."
    gmm = random_gmm((), K=3, d=2, seed=seed)
    n = 200_000
    x = gmm.sample(n=n, generator=torch.Generator().manual_seed(seed)).double()       # (n, 2)
    mean, var, m4 = mixture_moments(gmm)
    assert ((x.mean(0) - mean).abs() < 4 * (var / n).sqrt()).all()
    assert ((x.var(0) - var).abs() < 4 * ((m4 - var ** 2) / n).sqrt()).all()


def test_component_frequencies_match_weights():
    "With T_sigma = 0 each draw is a component mean; their frequencies pass a chi-square test against softmax(logits)."
    logits = torch.tensor([0.3, -1.0, 1.2, 0.0], dtype=torch.float64)
    mu = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    gmm = GMM(logits, mu, torch.zeros(4, 1, dtype=torch.float64)).temper(1.0, 0.0)
    n = 40_000
    x = gmm.sample(n=n, generator=torch.Generator().manual_seed(0))[:, 0]
    counts = torch.stack([(x == k).sum() for k in range(4)]).double()
    assert counts.sum() == n                                                          # every draw is a mean
    expected = n * torch.softmax(logits, -1)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 21.11                                                               # chi-square(3) quantile at 1 − 1e-4


# --- temperatures -------------------------------------------------------------------------------

def test_temper_one_one_is_identity():
    "temper(1, 1) leaves logits, means and log-scales unchanged."
    gmm = random_gmm((2,), K=3, d=2)
    t = gmm.temper(1.0, 1.0)
    for a, b in [(t.logits, gmm.logits), (t.mu, gmm.mu), (t.log_sigma, gmm.log_sigma)]:
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('T_pi, T_sigma', [(0.5, 2.0), (3.0, 0.25), (1.0, 0.7)])
def test_temper_scales_logits_and_std(T_pi, T_sigma):
    "temper(T_pi, T_sigma) multiplies the logits by T_pi and every component std by T_sigma."
    gmm = random_gmm((2,), K=3, d=2)
    t = gmm.temper(T_pi, T_sigma)
    torch.testing.assert_close(t.logits, gmm.logits * T_pi, rtol=1e-15, atol=0)
    torch.testing.assert_close(t.mu, gmm.mu, rtol=0, atol=0)
    torch.testing.assert_close(t.log_sigma.exp(), gmm.log_sigma.exp() * T_sigma, rtol=1e-14, atol=0)


@pytest.mark.parametrize('T_sigma', [0.5, 2.0])
def test_temper_sampled_std_scales_by_T_sigma(T_sigma):
    "For one component with std s, draws of temper(1, T_sigma) have std T_sigma·s within 4 standard errors."
    s, n = 1.5, 100_000
    gmm = GMM(torch.zeros(1, dtype=torch.float64), torch.full((1, 1), 0.7, dtype=torch.float64),
              torch.full((1, 1), math.log(s), dtype=torch.float64))
    x = gmm.temper(1.0, T_sigma).sample(n=n, generator=torch.Generator().manual_seed(1))[:, 0]
    target = T_sigma * s
    assert abs(x.std().item() - target) < 4 * target / math.sqrt(2 * (n - 1))         # SE of a normal sample's std
    assert abs(x.mean().item() - 0.7) < 4 * target / math.sqrt(n)


def test_large_T_pi_concentrates_on_argmax():
    "A large T_pi puts (almost) all the weight on the component with the largest logit."
    logits = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    mu = torch.tensor([[-5.0], [5.0], [0.0]], dtype=torch.float64)
    gmm = GMM(logits, mu, torch.zeros(3, 1, dtype=torch.float64)).temper(100.0, 0.0)
    assert torch.softmax(gmm.logits, -1)[[0, 2]].max().item() < 1e-20            # e^{-50} and e^{-100}
    x = gmm.sample(n=5000, generator=torch.Generator().manual_seed(0))
    assert (x == 5.0).all()


def test_T_sigma_zero_gives_component_means():
    "temper(·, 0): every draw equals one of its mixture's component means exactly."
    gmm = random_gmm((4,), K=3, d=2, seed=3)
    x = gmm.temper(1.0, 0.0).sample(n=50, generator=torch.Generator().manual_seed(0))   # (50, 4, 2)
    hit = (x[:, :, None, :] == gmm.mu[None]).all(-1)                                   # (50, 4, K)
    assert hit.any(-1).all()


@pytest.mark.parametrize('T_sigma', [-1.0, -1e-9])
def test_negative_T_sigma_raises(T_sigma):
    "A negative T_sigma is refused with a ValueError naming it."
    with pytest.raises(ValueError, match='T_sigma'):
        random_gmm((1,), K=2, d=1).temper(1.0, T_sigma)


# --- effective number of components -------------------------------------------------------------

@pytest.mark.parametrize('K', [1, 3, 16])
def test_effective_components_uniform_is_K(K):
    "Uniform weights give exp(entropy) = K."
    gmm = GMM(torch.zeros(5, K), torch.zeros(5, K, 2), torch.zeros(5, K, 2))
    assert gmm.effective_components().item() == pytest.approx(K, rel=1e-5)


def test_effective_components_one_hot_is_one():
    "One-hot weights (the same component everywhere) give exactly one effective component."
    logits = torch.full((5, 8), -1e4); logits[:, 2] = 1e4
    gmm = GMM(logits, torch.zeros(5, 8, 2), torch.zeros(5, 8, 2))
    assert gmm.effective_components().item() == pytest.approx(1.0, abs=1e-6)


def test_effective_components_uses_batch_mean_weights():
    "Different one-hot components across the batch average to uniform batch-mean weights: K effective components."
    logits = torch.full((4, 4), -1e4); logits[torch.arange(4), torch.arange(4)] = 1e4
    gmm = GMM(logits, torch.zeros(4, 4, 1), torch.zeros(4, 4, 1))
    assert gmm.effective_components().item() == pytest.approx(4.0, rel=1e-5)


# --- head ---------------------------------------------------------------------------------------

def test_head_output_shapes():
    "GMMHead maps features (..., width) to logits (..., K), mu and log_sigma (..., K, d)."
    head = GMMHead(32, d=5, K=3)
    g = head(torch.randn(2, 7, 32))
    assert g.logits.shape == (2, 7, 3) and g.mu.shape == (2, 7, 3, 5) and g.log_sigma.shape == (2, 7, 3, 5)
    assert (g.K, g.d) == (3, 5)


def test_head_init_uniform_weights_unit_sigma_distinct_means():
    "At init the logits and log-scales are exactly zero (uniform π, σ = 1) and the component means differ."
    torch.manual_seed(0)
    g = GMMHead(32, d=4, K=5)(torch.randn(6, 32))
    assert torch.equal(g.logits, torch.zeros_like(g.logits))
    assert torch.equal(g.log_sigma, torch.zeros_like(g.log_sigma))
    diffs = (g.mu[:, :, None] - g.mu[:, None]).abs().amax(-1)                       # (6, K, K)
    off_diag = ~torch.eye(5, dtype=torch.bool)
    assert (diffs[:, off_diag] > 0).all()


def test_head_sigma_floor():
    "A very negative scale pre-activation gives σ at the 1e-6 floor, never below it."
    head = GMMHead(8, d=2, K=2)
    with torch.no_grad(): head.proj.bias[2 + 4:] = -1e12                             # the scale rows
    g = head(torch.randn(3, 8))
    assert torch.isfinite(g.log_sigma).all()
    assert (g.log_sigma >= math.log(1e-6)).all()
    assert g.log_sigma.exp().min().item() == pytest.approx(1e-6, rel=1e-5)


def test_head_sigma_is_square_plus():
    "log σ = asinh(r/2), i.e. σ = square_plus(r) = (r + √(r² + 4))/2, for the head's scale pre-activations r."
    torch.manual_seed(1)
    head = GMMHead(16, d=3, K=2)
    with torch.no_grad(): head.proj.weight.normal_(0, 2.0); head.proj.bias.normal_(0, 2.0)
    h = torch.randn(4, 16)
    g = head(h)
    r = head.proj(h)[:, 2 + 6:].reshape(4, 2, 3).double()
    torch.testing.assert_close(g.log_sigma.double(), torch.asinh(r / 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(g.log_sigma.double().exp(), (r + (r ** 2 + 4).sqrt()) / 2, rtol=1e-5, atol=0)
    assert r.abs().max() > 2                                                         # far from the linear regime


def test_head_bf16_log_prob_is_fp32():
    "A bf16 head on bf16 features gives fp32 log-scales and an fp32, finite log-density."
    torch.manual_seed(2)
    head = GMMHead(16, d=3, K=2).bfloat16()
    g = head(torch.randn(4, 16, dtype=torch.bfloat16))
    assert g.log_sigma.dtype == torch.float32
    lp = g.log_prob(torch.randn(4, 3, dtype=torch.bfloat16))
    assert lp.dtype == torch.float32 and torch.isfinite(lp).all()
