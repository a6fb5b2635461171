"Tests of farmer_nb.ar: causality, the exact factorization of the AR prior's log-density, sampling and learning."
import math

import pytest
import torch

from farmer_nb.ar import ARPrior
from farmer_nb.gmm import GMM

N, D_I, D_R, C = 5, 3, 2, 4          # tokens, informative and redundant channels, classes


def make_prior(d_R=D_R, redundant='gmm', K_I=3, K_R=2, seed=0, dtype=torch.float64, std=0.3):
    "A tiny ARPrior whose heads have random weights, so mixture weights and scales depend on the context."
    torch.manual_seed(seed)
    p = ARPrior(N, D_I, d_R, num_classes=C, width=32, depth=2, head_dim=16, M=2, K_I=K_I, K_R=K_R, redundant=redundant)
    with torch.no_grad():
        for head in (p.head_I, p.head_R):
            if head is not None: head.proj.weight.normal_(0, std); head.proj.bias.normal_(0, std)
    return p.to(dtype).eval()


def inputs(B=3, d_R=D_R, seed=1, dtype=torch.float64):
    "Random (Z^I, Z^R, labels)."
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, N, D_I, generator=g, dtype=dtype), torch.randn(B, N, d_R, generator=g, dtype=dtype),
            torch.randint(0, C, (B,), generator=g))


def params(g):
    return g.logits, g.mu, g.log_sigma


def component(g, *idx):
    "The mixture at batch index `idx` of a batched GMM."
    return GMM(g.logits[idx], g.mu[idx], g.log_sigma[idx])


# --- causality ----------------------------------------------------------------------------------

@pytest.mark.parametrize('j', range(N))
def test_informative_mixtures_are_causal(j):
    "Perturbing z_I[:, j] leaves G_1..G_{j+1} bit-identical and changes G_{j+2}."
    p = make_prior()
    z_I, _, c = inputs()
    z2 = z_I.clone(); z2[:, j] += 1.0
    with torch.no_grad(): (g1, _), (g2, _) = p(z_I, c), p(z2, c)
    for a, b in zip(params(g1), params(g2)):
        assert torch.equal(a[:, :j + 1], b[:, :j + 1])
        if j + 1 < N: assert (a[:, j + 1] != b[:, j + 1]).any(-1).all()


@pytest.mark.parametrize('j', range(N))
def test_redundant_mixture_sees_every_informative_token(j):
    "The shared redundant mixture changes when any single informative token changes."
    p = make_prior()
    z_I, _, c = inputs()
    z2 = z_I.clone(); z2[:, j] += 1.0
    with torch.no_grad(): (_, r1), (_, r2) = p(z_I, c), p(z2, c)
    for a, b in zip(params(r1), params(r2)):
        assert (a != b).flatten(1).any(1).all()


@pytest.mark.parametrize('new_label', [lambda c: (c + 1) % C, lambda c: torch.full_like(c, C)], ids=['other class', 'null'])
def test_mixtures_depend_on_label(new_label):
    "Changing the label (to another class or to the null label) changes every informative mixture and the redundant one."
    p = make_prior()
    z_I, _, c = inputs()
    with torch.no_grad(): (g1, r1), (g2, r2) = p(z_I, c), p(z_I, new_label(c))
    for a, b in zip(params(g1), params(g2)): assert (a != b).flatten(2).any(-1).all()    # every (b, i)
    for a, b in zip(params(r1), params(r2)): assert (a != b).flatten(1).any(-1).all()    # every b


# --- log-density --------------------------------------------------------------------------------

def test_log_prob_is_sum_of_token_terms():
    "log_prob = Σ_i log G_i(z_I_i) + Σ_i log G_{N+1}(z_R_i), checked with an explicit loop in float64."
    p = make_prior()
    z_I, z_R, c = inputs()
    with torch.no_grad():
        g_I, g_R = p(z_I, c)
        lp = p.log_prob(z_I, z_R, c)
    for b in range(z_I.shape[0]):
        manual = sum(component(g_I, b, i).log_prob(z_I[b, i]) + component(g_R, b).log_prob(z_R[b, i]) for i in range(N))
        assert lp[b].item() == pytest.approx(manual.item(), abs=1e-10)


def test_redundant_normal_is_standard_normal():
    "redundant='normal' has no head_R and scores Z^R with the standard normal log-density."
    p = make_prior(redundant='normal', dtype=torch.float32)
    assert p.head_R is None
    z_I, z_R, c = inputs(dtype=torch.float32)
    with torch.no_grad():
        g_I, g_R = p(z_I, c)
        lp = p.log_prob(z_I, z_R, c)
    assert g_R is None
    expected = g_I.log_prob(z_I).sum(1) + torch.distributions.Normal(0.0, 1.0).log_prob(z_R).flatten(1).sum(1)
    torch.testing.assert_close(lp, expected, rtol=1e-6, atol=1e-5)


def test_redundant_normal_keeps_float64_precision():
    "In float64 the standard-normal term for Z^R is computed in float64 (like every other log-density)."
    p = make_prior(redundant='normal')
    z_I, z_R, c = inputs()
    with torch.no_grad():
        lp = p.log_prob(z_I, z_R, c)
        expected = p(z_I, c)[0].log_prob(z_I).sum(1) - 0.5 * (z_R ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
    torch.testing.assert_close(lp, expected, rtol=0, atol=1e-10)


def test_float64_prior_keeps_float64_log_sigma():
    "A float64 ARPrior's mixtures have float64 log-scales, like its means and logits."
    p = make_prior()
    z_I, _, c = inputs()
    g_I, g_R = p(z_I, c)
    assert g_I.mu.dtype == torch.float64
    assert g_I.log_sigma.dtype == torch.float64 and g_R.log_sigma.dtype == torch.float64


@pytest.mark.parametrize('redundant', ['gmm', 'gmm-token', 'normal'])
def test_no_redundant_channels(redundant):
    "d_R = 0 works: no redundant head, log_prob is the informative part, samples have an empty Z^R."
    p = make_prior(d_R=0, redundant=redundant)
    assert p.head_R is None
    z_I, z_R, c = inputs(d_R=0)
    with torch.no_grad(): g_I, g_R = p(z_I, c)
    assert g_R is None
    torch.testing.assert_close(p.log_prob(z_I, z_R, c), g_I.log_prob(z_I).sum(1), rtol=0, atol=0)
    s_I, s_R = p.sample(c, generator=torch.Generator().manual_seed(0))
    assert s_I.shape == (3, N, D_I) and s_R.shape == (3, N, 0)


def test_log_prob_is_fp32_in_bf16():
    "A bf16 prior on bf16 latents returns a finite fp32 log-density."
    p = make_prior(dtype=torch.bfloat16)
    z_I, z_R, c = inputs(dtype=torch.bfloat16)
    lp = p.log_prob(z_I, z_R, c)
    assert lp.dtype == torch.float32 and lp.shape == (3,) and torch.isfinite(lp).all()


def test_invalid_redundant_raises():
    "An unknown `redundant` kind is refused with a ValueError naming the argument."
    with pytest.raises(ValueError, match='redundant'):
        ARPrior(N, D_I, D_R, width=32, depth=1, head_dim=16, M=2, redundant='jet')


# --- one redundant mixture per token ------------------------------------------------------------

@pytest.mark.parametrize('j', range(N))
def test_per_token_redundant_mixtures_are_causal(j):
    "redundant='gmm-token': perturbing z_I[:, j] leaves G^R_1..G^R_j bit-identical and moves G^R_{j+1}..G^R_N."
    p = make_prior(redundant='gmm-token')
    z_I, _, c = inputs()
    z2 = z_I.clone(); z2[:, j] += 1.0
    with torch.no_grad(): (_, r1), (_, r2) = p(z_I, c), p(z2, c)
    for a, b in zip(params(r1), params(r2)):
        assert a.shape[:2] == (3, N)
        assert torch.equal(a[:, :j], b[:, :j])
        assert (a[:, j:] != b[:, j:]).flatten(2).any(-1).all()


def test_per_token_log_prob_is_sum_of_token_terms():
    "redundant='gmm-token': log_prob = Σ_i log G_i(z_I_i) + Σ_i log G^R_i(z_R_i), an explicit loop in float64."
    p = make_prior(redundant='gmm-token')
    z_I, z_R, c = inputs()
    with torch.no_grad():
        g_I, g_R = p(z_I, c)
        lp = p.log_prob(z_I, z_R, c)
    for b in range(z_I.shape[0]):
        manual = sum(component(g_I, b, i).log_prob(z_I[b, i]) + component(g_R, b, i).log_prob(z_R[b, i]) for i in range(N))
        assert lp[b].item() == pytest.approx(manual.item(), abs=1e-10)


def test_per_token_last_mixture_is_the_shared_one():
    "G^R_N reads the position of z_N, as G_{N+1} does: with the same weights the two kinds agree there."
    shared, token = make_prior(), make_prior(redundant='gmm-token')
    token.load_state_dict(shared.state_dict())
    z_I, _, c = inputs()
    with torch.no_grad(): (_, g), (_, gt) = shared(z_I, c), token(z_I, c)
    for a, b in zip(params(g), params(gt)): torch.testing.assert_close(b[:, -1], a, rtol=0, atol=1e-12)


def test_per_token_samples_follow_their_mixtures():
    "With T_sigma = 0, each sampled z_R[:, i] is a component mean of G^R_i evaluated on the sampled Z^I."
    p = make_prior(redundant='gmm-token')
    c = torch.tensor([0, 2, C])
    z_I, z_R = p.sample(c, T_sigma=0.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): _, g_R = p(z_I, c)
    assert (z_R[:, :, None] - g_R.mu).abs().amax(-1).amin(-1).max() < 1e-10


@pytest.mark.parametrize('kw', [{}, dict(T_pi=0.7, T_sigma=1.2, gamma=0.5)], ids=['default', 'tempered'])
def test_per_token_decode_from_noise_equals_sample(kw):
    "sample_from_noise on draw_noise's numbers equals sample with the same NoiseBank, for per-token mixtures."
    from farmer_nb.gmm import NoiseBank
    p = make_prior(redundant='gmm-token', dtype=torch.float32)
    c, seeds = torch.tensor([0, 2, 3]), [3, 1, 4]
    plain = p.sample(c, generator=NoiseBank(seeds), **kw)
    fast = p.sample_from_noise(c, p.draw_noise(3, NoiseBank(seeds)), **kw)
    assert all(torch.equal(a, b) for a, b in zip(plain, fast))


@pytest.mark.parametrize('rule', ['resampling', 'naive'])
def test_per_token_guided_sampling(rule):
    "Guidance rules draw per-token redundant vectors of the right shape, finite."
    from farmer_nb.guidance import NaiveGuidance, Resampling
    p = make_prior(redundant='gmm-token', dtype=torch.float32)
    r = Resampling(2.0, s_c=3, s_u=3) if rule == 'resampling' else NaiveGuidance(2.0)
    z_I, z_R = p.sample(torch.tensor([0, 1, 3]), rule=r, generator=torch.Generator().manual_seed(0))
    assert z_I.shape == (3, N, D_I) and z_R.shape == (3, N, D_R)
    assert torch.isfinite(z_I).all() and torch.isfinite(z_R).all()


# --- sampling -----------------------------------------------------------------------------------

@pytest.mark.parametrize('redundant', ['gmm', 'gmm-token', 'normal'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_sample_shapes_and_dtypes(redundant, dtype):
    "sample(c) returns Z^I (B, N, d_I) and Z^R (B, N, d_R), finite, in the prior's dtype."
    p = make_prior(redundant=redundant, dtype=dtype)
    c = torch.tensor([0, 3, C])                                                     # includes the null label
    z_I, z_R = p.sample(c, generator=torch.Generator().manual_seed(0))
    assert z_I.shape == (3, N, D_I) and z_R.shape == (3, N, D_R)
    assert z_I.dtype == dtype and z_R.dtype == dtype
    assert torch.isfinite(z_I).all() and torch.isfinite(z_R).all()


@pytest.mark.parametrize('redundant', ['gmm', 'gmm-token', 'normal'])
@pytest.mark.parametrize('kw', [{}, dict(T_pi=2.0, T_sigma=0.5, gamma=1.5)], ids=['default', 'tempered'])
def test_cached_sampling_equals_uncached(redundant, kw):
    "KV-cached sampling draws the same latents as recomputing the whole prefix each step (same generator seed)."
    p = make_prior(redundant=redundant)
    c = torch.tensor([1, 2, C])
    a = p.sample(c, generator=torch.Generator().manual_seed(5), **kw)
    b = p.sample(c, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
    for x, y in zip(a, b): torch.testing.assert_close(x, y, rtol=0, atol=1e-10)


def test_sample_is_reproducible_and_seed_dependent():
    "Equal generator seeds give identical samples; a different seed gives different ones."
    p = make_prior(dtype=torch.float32)
    c = torch.tensor([0, 1])
    a, b, d = (p.sample(c, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], d[0])


def test_sampled_tokens_follow_their_conditional_mixtures():
    "With T_sigma = 0, each sampled z_I[:, i] is a component mean of G_{i+1} evaluated on the sampled prefix."
    p = make_prior()
    c = torch.tensor([0, 2, C])
    z_I, z_R = p.sample(c, T_sigma=0.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): g_I, g_R = p(z_I, c)
    dist_I = (z_I[:, :, None] - g_I.mu).abs().amax(-1).amin(-1)                     # (B, N): nearest component mean
    dist_R = (z_R[:, :, None] - g_R.mu[:, None]).abs().amax(-1).amin(-1)            # (B, N)
    assert dist_I.max() < 1e-10 and dist_R.max() < 1e-10


def test_gamma_zero_single_redundant_component_gives_equal_vectors():
    "gamma = 0 with K_R = 1: the N redundant vectors of a sample are all equal (to the shared mixture's mean)."
    p = make_prior(K_R=1)
    c = torch.tensor([0, 1, C])
    z_I, z_R = p.sample(c, gamma=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z_R, z_R[:, :1].expand_as(z_R))
    with torch.no_grad(): _, g_R = p(z_I, c)
    torch.testing.assert_close(z_R[:, 0], g_R.mu[:, 0], rtol=0, atol=1e-12)
    assert not torch.equal(z_R[0, 0], z_R[1, 0])                                    # but it depends on the sample


def test_gamma_zero_normal_redundant_is_zero():
    "gamma = 0 with redundant='normal': Z^R is exactly zero."
    p = make_prior(redundant='normal')
    _, z_R = p.sample(torch.tensor([0, 1]), gamma=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z_R, torch.zeros_like(z_R))


# --- learning -----------------------------------------------------------------------------------

def test_learns_dependency_between_tokens():
    "30 Adam steps on z_I[:, i] = z_I[:, i−1] + 0.1·noise bring the NLL far below any token-independent model's."
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    B, n, d = 256, 6, 2
    z0 = torch.randn(B, 1, d, generator=g)
    z_I = torch.cat([z0, z0 + (0.1 * torch.randn(B, n - 1, d, generator=g)).cumsum(1)], 1)   # marginal var ≈ 1
    z_R, c = torch.zeros(B, n, 0), torch.zeros(B, dtype=torch.long)
    p = ARPrior(n, d, 0, num_classes=1, width=32, depth=1, head_dim=16, M=1, K_I=1, K_R=1)
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    nll = lambda: -p.log_prob(z_I, z_R, c).mean() / (n * d)                           # nats per dimension
    first = nll().item()
    for _ in range(30):
        loss = nll(); opt.zero_grad(); loss.backward(); opt.step()
    last = nll().item()
    independent_bound = 0.5 * math.log(2 * math.pi * math.e * 0.9)   # marginals N(0, ≥1): no context-free model beats ≈1.42
    assert first > independent_bound
    assert last < independent_bound - 0.5
