"Tests of farmer_nb.guidance: Algorithm 1 resampling, the naive rule, accuracy against p' ∝ p_c^{1+w} p_u^{-w}, and the plumbing through ARPrior and Farmer."
import functools, math

import pytest
import torch

from farmer_nb.ar import ARPrior
from farmer_nb.gmm import GMM
from farmer_nb.guidance import NaiveGuidance, NoGuidance, Resampling, tv_to_target
from farmer_nb.model import Farmer, get_config, randomize_model_

F32, F64 = torch.float32, torch.float64
RULES = {'none': lambda: NoGuidance(), 'naive': lambda: NaiveGuidance(1.5),
         'resampling': lambda: Resampling(1.5, 3, 2, T_pi_v=0.5, T_sigma_v=0.9, T_s=1.2)}


# --- helpers -------------------------------------------------------------------------------------

def mix1d(logits, mu, sigma, dtype=F64):
    "A 1-D mixture from lists of K logits, means and stds."
    t = lambda v: torch.tensor(v, dtype=dtype)
    return GMM(t(logits), t(mu)[:, None], t(sigma).log()[:, None])


def random_mix(batch, K=3, d=2, seed=0, dtype=F64):
    "A batch of random diagonal mixtures."
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)
    return GMM(r(*batch, K).to(dtype), (1.5 * r(*batch, K, d)).to(dtype), (0.3 * r(*batch, K, d)).to(dtype))


def gauss(mu, var, dtype=F64):
    "Single-component diagonal Gaussians: mu, var (..., d) → GMM with K = 1 (log σ = ½ log var, so var is exact)."
    mu, var = torch.as_tensor(mu, dtype=dtype), torch.as_tensor(var, dtype=dtype)
    return GMM(torch.zeros(*mu.shape[:-1], 1, dtype=dtype), mu[..., None, :], 0.5 * var.log()[..., None, :])


def log_density(logits, mu, sigma, z):
    "log Σ_k softmax(logits)_k Π_j N(z_j; μ_kj, σ_kj²), written out by hand: z (S, *batch, d) → (S, *batch)."
    logn = -0.5 * ((z[..., None, :] - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(torch.log_softmax(logits, -1) + logn.sum(-1), -1)


@pytest.fixture
def multinomial_calls(monkeypatch):
    "Record (probs, num_samples, result) of every torch.multinomial call, drawing exactly as the original does."
    calls, orig = [], torch.multinomial
    def spy(probs, num_samples, *args, **kw):
        out = orig(probs, num_samples, *args, **kw)
        calls.append((probs.detach().clone(), num_samples, out.clone()))
        return out
    monkeypatch.setattr(torch, 'multinomial', spy)
    return calls


class Recorder:
    "Wrap a rule and record (g_c, g_u, n, output) of each call."
    def __init__(self, rule): self.rule, self.calls = rule, []
    def __call__(self, g_c, g_u, n=None, generator=None):
        out = self.rule(g_c, g_u, n=n, generator=generator)
        self.calls.append((g_c, g_u, n, out))
        return out


# --- Resampling: Algorithm 1 reproduced by hand --------------------------------------------------

def algorithm1(g_c, g_u, w, s_c, s_u, T_pi, T_sigma, T_pi_v, T_sigma_v, T_s, n, seed, scales=None):
    "Algorithm 1 by hand: pooled candidates (S, *batch, d) and selection probabilities (batch, S)."
    k = 1 if n is None else n
    gen = torch.Generator().manual_seed(seed)
    cand_c = g_c.temper(T_pi, T_sigma).sample(n=s_c * k, generator=gen)
    cand_u = g_u.temper(T_pi, T_sigma).sample(n=s_u * k, generator=gen)
    lv = lambda g, z: log_density(g.logits * T_pi_v, g.mu, g.log_sigma.exp() * T_sigma_v, z)
    delta = lambda z: lv(g_c, z) - lv(g_u, z)
    a, b = scales or (w, w + 1)
    logw = torch.cat([a * delta(cand_c), b * delta(cand_u)])                      # (S, *batch)
    probs = torch.softmax(T_s * torch.log_softmax(logw, 0), 0)
    cand = torch.cat([cand_c, cand_u])
    return cand, probs.reshape(len(cand), -1).T


ALG1_CASES = [  # (w, s_c, s_u, T_pi, T_sigma, T_pi_v, T_sigma_v, T_s, n, d)
    (2.0, 3, 4, 1.0, 1.0, 1.0, 1.0, 1.0, None, 1),
    (1.5, 5, 2, 0.7, 1.2, 0.25, 0.875, 1.0, None, 1),
    (0.5, 2, 3, 1.0, 0.75, 0.5, 1.25, 2.5, 3, 1),
    (3.0, 4, 4, 1.25, 1.0, 0.25, 0.875, 0.5, 2, 2),
    (0.0, 3, 3, 1.0, 1.0, 1.0, 1.0, 1.0, None, 1),
    (-1.0, 2, 5, 1.0, 1.0, 0.5, 1.0, 1.0, 4, 2),
]


@pytest.mark.parametrize('w,s_c,s_u,T_pi,T_sigma,T_pi_v,T_sigma_v,T_s,n,d', ALG1_CASES)
def test_resampling_matches_algorithm1(multinomial_calls, w, s_c, s_u, T_pi, T_sigma, T_pi_v, T_sigma_v, T_s, n, d):
    "The selection probabilities equal softmax(T_s·log_softmax([w·Δ(cand_c), (w+1)·Δ(cand_u)])) and the output is the chosen candidate."
    g_c, g_u = random_mix((3,), K=2, d=d, seed=1), random_mix((3,), K=2, d=d, seed=2)
    params = (w, s_c, s_u, T_pi, T_sigma, T_pi_v, T_sigma_v, T_s)
    cand, probs = algorithm1(g_c, g_u, *params, n, seed=7)
    out = Resampling(*params)(g_c, g_u, n=n, generator=torch.Generator().manual_seed(7))   # its choice: the last call
    got_probs, k, idx = multinomial_calls[-1]
    assert k == (1 if n is None else n) and got_probs.shape == (3, len(cand))
    torch.testing.assert_close(got_probs, probs, rtol=1e-10, atol=1e-300)
    chosen = cand.reshape(len(cand), 3, d)[idx.T, torch.arange(3)]                   # (k, 3, d)
    assert torch.equal(out, chosen[0] if n is None else chosen)


@pytest.mark.parametrize('T_s', [0.0, 0.5, 2.0, 4.0])
def test_T_s_scales_the_logits(multinomial_calls, T_s):
    "log p_j(T_s) − T_s·log p_j(1) is the same for every candidate (T_s = 0: uniform choice)."
    g_c, g_u = random_mix((2,), K=2, d=1, seed=3), random_mix((2,), K=2, d=1, seed=4)
    for t in (1.0, T_s): Resampling(2.0, 4, 4, T_s=t)(g_c, g_u, generator=torch.Generator().manual_seed(0))
    p1, pt = multinomial_calls[-4][0], multinomial_calls[-1][0]                     # each call: 2 candidate draws + 1 choice
    diff = pt.log() - T_s * p1.log()
    torch.testing.assert_close(diff, diff[:, :1].expand_as(diff), rtol=0, atol=1e-10)


@pytest.mark.parametrize('w', [0.0, 1.0, 2.5])
def test_weights_are_w_for_pc_and_w_plus_1_for_pu(multinomial_calls, w):
    "log p_j − w·Δ_j over the p_c candidates and log p_j − (w+1)·Δ_j over the p_u candidates are one constant."
    g_c, g_u = random_mix((2,), K=2, d=1, seed=5), random_mix((2,), K=2, d=1, seed=6)
    cand, _ = algorithm1(g_c, g_u, w, 3, 3, 1.0, 1.0, 1.0, 1.0, 1.0, None, seed=1)
    Resampling(w, 3, 3)(g_c, g_u, generator=torch.Generator().manual_seed(1))
    delta = (log_density(g_c.logits, g_c.mu, g_c.log_sigma.exp(), cand)
             - log_density(g_u.logits, g_u.mu, g_u.log_sigma.exp(), cand)).T               # (batch, S)
    rest = multinomial_calls[-1][0].log() - torch.tensor([w] * 3 + [w + 1] * 3, dtype=F64) * delta
    torch.testing.assert_close(rest, rest[:, :1].expand_as(rest), rtol=0, atol=1e-10)
    appendix = multinomial_calls[-1][0].log() - w * delta                                 # App. A.2: w for all
    assert (appendix - appendix[:, :1]).abs().max() > 1e-3


def test_weights_keep_float64_precision(multinomial_calls):
    "With float64 mixtures and w = 0.1 the selection probabilities match Algorithm 1 in float64 (rtol 1e-10)."
    g_c, g_u = random_mix((3,), K=2, d=1, seed=1), random_mix((3,), K=2, d=1, seed=2)
    params = (0.1, 4, 4, 1.0, 1.0, 1.0, 1.0, 1.0)
    _, probs = algorithm1(g_c, g_u, *params, None, seed=7)
    Resampling(*params)(g_c, g_u, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(multinomial_calls[-1][0], probs, rtol=1e-10, atol=1e-300)


# --- Resampling: accuracy against the target p' (1-D, float64) ---------------------------------

P_C = mix1d([0.3, 0.0], [-1.0, 1.0], [0.8, 0.8])      # class c: two modes
P_U = mix1d([0.0, 0.0], [-0.5, 1.5], [1.0, 1.0])      # all classes: wider, shifted
W, N_TV, LO, HI, BINS = 2.0, 100_000, -6.0, 8.0, 140


@functools.lru_cache(maxsize=None)
def tv(kind, w=W, target_w=None, s_c=0, s_u=0):
    "tv_to_target with N_TV draws on the moderate pair (P_C, P_U), cached across tests; target p' for target_w (default w)."
    rule = {'plain': lambda: NoGuidance(), 'naive': lambda: NaiveGuidance(w), 'resampling': lambda: Resampling(w, s_c, s_u)}[kind]()
    return tv_to_target(rule, P_C, P_U, w if target_w is None else target_w, n=N_TV, lo=LO, hi=HI, bins=BINS)


def tv_noise(g_c, g_u, w, n=N_TV):
    "Mean and sd of the TV of n exact draws from p' (per bin E|h − m| = √(2m(1−m)/(πn)), Var = (1 − 2/π) m(1−m)/n)."
    x = torch.linspace(LO, HI, BINS * 200 + 1, dtype=F64); mid = ((x[:-1] + x[1:]) / 2)[:, None]
    lp = lambda g: log_density(g.logits, g.mu, g.log_sigma.exp(), mid)
    p = torch.exp((1 + w) * lp(g_c) - w * lp(g_u)); m = p.reshape(BINS, 200).sum(1); m = m / m.sum()
    v = m * (1 - m) / n
    return 0.5 * (2 * v / math.pi).sqrt().sum().item(), 0.5 * ((1 - 2 / math.pi) * v.sum()).sqrt().item()


def test_tv_of_exact_sampler_is_the_noise_floor():
    "NoGuidance at w = 0 samples p' = p_c exactly: its TV is the sampling-noise floor within 5 sd."
    floor, sd = tv_noise(P_C, P_U, 0.0)
    assert abs(tv('plain', w=0.0) - floor) < 5 * sd


def test_plain_sampling_is_far_from_target():
    "The moderate pair is moderate: plain conditional sampling has TV ≈ 0.3 to p' (w = 2)."
    assert 0.25 < tv('plain') < 0.35


@pytest.mark.parametrize('s,bound', [(5, 0.07), (50, 0.02)])
def test_resampling_tv_bound(s, bound):
    "Resampling with s_c = s_u = s is within TV `bound` of p'."
    assert tv('resampling', s_c=s, s_u=s) < bound


def test_tv_decreases_with_pool():
    "TV to p' falls strictly (by > 3 sd of its noise) as s_c = s_u goes 2, 5, 20, 50, always under half of plain sampling."
    _, sd = tv_noise(P_C, P_U, W)
    tvs = [tv('resampling', s_c=s, s_u=s) for s in (2, 5, 20, 50)]
    assert all(a - b > 3 * sd for a, b in zip(tvs, tvs[1:])), tvs
    assert max(tvs) < tv('plain') / 2, tvs


def test_w0_targets_pc():
    "With w = 0 (weights 0 for p_c candidates, Δ for p_u candidates) resampling 20+20 samples p_c: TV at the noise floor."
    floor, sd = tv_noise(P_C, P_U, 0.0)
    assert tv('resampling', w=0.0, s_c=20, s_u=20) < floor + 5 * sd


def test_pu_candidates_alone_target_p_prime():
    "With only p_u candidates (s_c = 0) the (w+1)·Δ weights target p', not the appendix-weight target p_c^w p_u^{1−w}."
    right = tv('resampling', s_c=0, s_u=50)
    wrong = tv('resampling', s_c=0, s_u=50, target_w=W - 1)
    assert right < 0.03 and wrong > 0.1, (right, wrong)


def test_naive_is_exact_for_one_component_and_biased_for_mixtures():
    "NaiveGuidance hits p' for K = 1 (TV at the noise floor) but not for the two-component pair (TV > 2× resampling 50+50)."
    g_c, g_u = mix1d([0.0], [1.0], [0.8]), mix1d([0.0], [0.0], [1.2])
    floor, sd = tv_noise(g_c, g_u, W)
    assert tv_to_target(NaiveGuidance(W), g_c, g_u, W, n=N_TV, lo=LO, hi=HI, bins=BINS) < floor + 5 * sd
    assert tv('naive') > 2 * tv('resampling', s_c=50, s_u=50)


# --- NaiveGuidance ------------------------------------------------------------------------------

def tilted(w, mu_c, var_c, mu_u, var_u):
    "Closed-form N_c^{1+w}/N_u^w (mean, var), or N_c when λ = (1+w)/σ_c² − w/σ_u² <= 0."
    lam = (1 + w) / var_c - w / var_u
    return ((((1 + w) * mu_c / var_c - w * mu_u / var_u) / lam, 1 / lam) if lam > 0 else (mu_c, var_c))


NAIVE_CASES = [  # (w, μ_c, σ_c², μ_u, σ_u²)
    (2.0, 1.0, 0.64, 0.0, 1.44),      # λ > 0
    (0.5, -1.0, 1.0, 2.0, 1.0),       # λ > 0, equal variances
    (3.0, 0.5, 0.25, 0.0, 4.0),       # λ > 0, broad p_u
    (1.0, 0.0, 1.0, 3.0, 2.25),       # λ > 0
    (2.0, 1.0, 1.0, 0.0, 0.25),       # λ < 0: fallback
    (1.0, 0.5, 1.0, -1.0, 0.5),       # λ = 0 exactly: fallback
]


@pytest.mark.parametrize('w,mu_c,var_c,mu_u,var_u', NAIVE_CASES)
def test_naive_matches_tilted_gaussian(w, mu_c, var_c, mu_u, var_u):
    "Draws for K = 1 have the closed-form tilted mean and variance (N_c when λ <= 0) within 5 standard errors."
    n = 200_000
    x = NaiveGuidance(w)(gauss([mu_c], [var_c]), gauss([mu_u], [var_u]), n=n, generator=torch.Generator().manual_seed(0))
    mean, var = tilted(w, mu_c, var_c, mu_u, var_u)
    assert x.shape == (n, 1)
    assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1))


@pytest.mark.parametrize('T_sigma', [0.5, 2.0])
def test_naive_T_sigma_scales_the_std(T_sigma):
    "Same seed: draw − mean scales exactly by T_sigma (mean = the T_sigma = 0 draw = closed form), for λ > 0 and λ <= 0."
    _, mu_c, var_c, mu_u, var_u = (torch.tensor(v, dtype=F64) for v in zip(*NAIVE_CASES))
    g_c, g_u = gauss(mu_c[:, None], var_c[:, None]), gauss(mu_u[:, None], var_u[:, None])
    draw = lambda t: NaiveGuidance(2.0, T_sigma=t)(g_c, g_u, n=3, generator=torch.Generator().manual_seed(1))
    mean, one, scaled = draw(0.0), draw(1.0), draw(T_sigma)
    expect = torch.tensor([tilted(2.0, *c[1:])[0] for c in NAIVE_CASES], dtype=F64)
    torch.testing.assert_close(mean, expect[None, :, None].expand(3, -1, 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scaled - mean, T_sigma * (one - mean), rtol=1e-12, atol=1e-12)


def test_naive_multidim_batched():
    "d = 3, batch (2,): each (sample, dimension) follows its own tilted Gaussian or falls back, within 5 standard errors."
    w, n = 1.5, 100_000
    mu_c, var_c = torch.tensor([[1.0, -0.5, 2.0], [0.0, 0.3, -1.0]]), torch.tensor([[0.5, 1.0, 1.0], [2.0, 0.3, 0.8]])
    mu_u, var_u = torch.tensor([[0.0, 0.5, 2.5], [1.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.25, 3.0], [1.5, 0.5, 0.2]])
    x = NaiveGuidance(w)(gauss(mu_c, var_c), gauss(mu_u, var_u), n=n, generator=torch.Generator().manual_seed(2))
    assert x.shape == (n, 2, 3)
    cases = [tilted(w, *(t[b, j].item() for t in (mu_c, var_c, mu_u, var_u))) for b in range(2) for j in range(3)]
    assert sum((1 + w) / var_c[b, j] <= w / var_u[b, j] for b in range(2) for j in range(3)) >= 2   # some dims fall back
    for (mean, var), m, v in zip(cases, x.mean(0).flatten().tolist(), x.var(0).flatten().tolist()):
        assert abs(m - mean) < 5 * math.sqrt(var / n) and abs(v - var) < 5 * var * math.sqrt(2 / (n - 1))


@pytest.mark.parametrize('T_pi', [0.5, 1.0, 2.0])
def test_naive_component_from_tempered_conditional_weights(T_pi):
    "The component k is drawn from softmax(T_pi·logits_c), not from p_u's weights: frequencies within 5 standard errors."
    n, w = 60_000, 1.0
    logits_c, logits_u = torch.tensor([0.0, 1.0, -1.0], dtype=F64), torch.tensor([2.0, -2.0, 0.0], dtype=F64)
    mu = torch.tensor([-20.0, 0.0, 20.0], dtype=F64)[:, None]
    g_c = GMM(logits_c, mu, torch.full((3, 1), math.log(0.5), dtype=F64))
    g_u = GMM(logits_u, mu + 0.5, torch.zeros(3, 1, dtype=F64))
    x = NaiveGuidance(w, T_pi=T_pi)(g_c, g_u, n=n, generator=torch.Generator().manual_seed(3))
    k = (x[:, 0, None] - mu[:, 0]).abs().argmin(-1)
    freq, p = torch.bincount(k, minlength=3) / n, torch.softmax(T_pi * logits_c, -1)
    assert ((freq - p).abs() < 5 * (p * (1 - p) / n).sqrt()).all(), (freq, p)


@pytest.mark.parametrize('n', [None, 5])
def test_naive_w0_is_no_guidance(n):
    "NaiveGuidance(w=0, T_pi, T_sigma) draws what NoGuidance(T_pi, T_sigma) draws for the same seed."
    g_c, g_u = random_mix((4,), K=3, d=2, seed=8), random_mix((4,), K=3, d=2, seed=9)
    a = NaiveGuidance(0.0, T_pi=0.7, T_sigma=1.3)(g_c, g_u, n=n, generator=torch.Generator().manual_seed(4))
    b = NoGuidance(T_pi=0.7, T_sigma=1.3)(g_c, g_u, n=n, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --- shapes and plumbing ------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [F32, F64])
@pytest.mark.parametrize('n', [None, 3])
@pytest.mark.parametrize('batch', [(), (4,), (2, 3)])
@pytest.mark.parametrize('rule', list(RULES))
def test_rule_shapes_and_dtype(rule, batch, n, dtype):
    "Each rule returns (*batch, d) for n = None and (n, *batch, d) otherwise, finite, in the mixtures' dtype."
    g_c, g_u = random_mix(batch, seed=10, dtype=dtype), random_mix(batch, seed=11, dtype=dtype)
    x = RULES[rule]()(g_c, g_u, n=n, generator=torch.Generator().manual_seed(0))
    assert x.shape == ((*batch, 2) if n is None else (n, *batch, 2)) and x.dtype == dtype and x.isfinite().all()


N, D_I, C, B = 5, 3, 4, 3


def make_prior(d_R=2, redundant='gmm', dtype=F64, seed=0, std=0.3):
    "A tiny ARPrior with random heads (mixtures depend on the context)."
    torch.manual_seed(seed)
    p = ARPrior(N, D_I, d_R, num_classes=C, width=32, depth=2, head_dim=16, M=2, K_I=3, K_R=2, redundant=redundant)
    with torch.no_grad():
        for head in (p.head_I, p.head_R):
            if head is not None: head.proj.weight.normal_(0, std); head.proj.bias.normal_(0, std)
    return p.to(dtype).eval()


LABELS = torch.tensor([0, 3, 1])
PRIOR_KINDS = [(2, 'gmm'), (2, 'normal'), (0, 'gmm')]


@pytest.mark.parametrize('d_R,redundant', PRIOR_KINDS)
@pytest.mark.parametrize('rule', list(RULES))
def test_prior_sample_shapes_with_rule(rule, d_R, redundant):
    "ARPrior.sample(c, rule=...) returns the same shapes and dtype as without a rule."
    p = make_prior(d_R, redundant)
    plain = p.sample(LABELS, generator=torch.Generator().manual_seed(0))
    guided = p.sample(LABELS, rule=RULES[rule](), generator=torch.Generator().manual_seed(0))
    for a, b in zip(plain, guided): assert a.shape == b.shape and a.dtype == b.dtype and b.isfinite().all()


@pytest.mark.parametrize('d_R,redundant,calls', [(2, 'gmm', N + 1), (2, 'normal', N), (0, 'gmm', N)])
def test_prior_rule_call_count(d_R, redundant, calls):
    "The rule is called once per informative token, plus once (n = N) for a 'gmm' redundant head."
    rec = Recorder(NaiveGuidance(1.0))
    make_prior(d_R, redundant).sample(LABELS, rule=rec, generator=torch.Generator().manual_seed(0))
    assert len(rec.calls) == calls
    assert [c[2] for c in rec.calls] == [None] * N + [N] * (calls - N)


def gmm_params(g): return g.logits, g.mu, g.log_sigma


@pytest.mark.parametrize('use_cache', [True, False])
def test_prior_streams_share_history(multinomial_calls, use_cache):
    "Each call sees p(·|z_<i, c) and p(·|z_<i, ∅) of the same sampled z_I; the redundant step draws N vectors from one pool."
    p, gamma, rule = make_prior(), 1.5, Resampling(1.0, 3, 2)
    rec = Recorder(rule)
    z_I, z_R = p.sample(LABELS, gamma=gamma, rule=rec, generator=torch.Generator().manual_seed(0), use_cache=use_cache)
    (gI_c, gR_c), (gI_u, gR_u) = p(z_I, LABELS), p(z_I, torch.full_like(LABELS, C))
    close = lambda a, b: [torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9) for x, y in zip(gmm_params(a), gmm_params(b))]
    for i, (g_c, g_u, n, out) in enumerate(rec.calls[:N]):
        close(g_c, gI_c[:, i]); close(g_u, gI_u[:, i])
        assert torch.equal(out, z_I[:, i])
    g_c, g_u, n, out = rec.calls[N]
    shift = lambda g: GMM(g.logits, g.mu, g.log_sigma + math.log(gamma))
    close(g_c, shift(gR_c)); close(g_u, shift(gR_u))
    assert n == N and torch.equal(out.transpose(0, 1), z_R)
    probs, k, _ = multinomial_calls[-1]                                # the redundant choice: N indices into one pool
    assert k == N and probs.shape == (B, (rule.s_c + rule.s_u) * N)


@pytest.mark.parametrize('d_R,redundant', PRIOR_KINDS)
@pytest.mark.parametrize('dtype,tol', [(F32, 1e-5), (F64, 1e-12)])
def test_prior_no_guidance_equals_no_rule(dtype, tol, d_R, redundant):
    "NoGuidance() makes the same draws as rule=None for the same seed (equal up to rounding: the transformer runs on 2B rows)."
    p = make_prior(d_R, redundant, dtype=dtype)
    a = p.sample(LABELS, generator=torch.Generator().manual_seed(5))
    b = p.sample(LABELS, rule=NoGuidance(), generator=torch.Generator().manual_seed(5))
    for x, y in zip(a, b): torch.testing.assert_close(x, y, rtol=tol, atol=tol)


def make_farmer(num_classes=4, seed=0):
    "A tiny random float64 Farmer on 4×4 images (N = 4, d = 4, d_I = 2)."
    torch.manual_seed(seed)
    m = Farmer(get_config('farmer-tiny', image_shape=(1, 4, 4), n_blocks=3, num_classes=num_classes))
    return randomize_model_(m, std=0.2, seed=seed).to(F64).eval()


@pytest.fixture(scope='module')
def farmer(): return make_farmer()


@pytest.mark.parametrize('rule', list(RULES))
def test_farmer_sample_with_guidance(farmer, rule):
    "Farmer.sample(labels, guidance=rule) returns uint8 images (B, 1, 4, 4)."
    x = farmer.sample(torch.tensor([0, 1, 3]), guidance=RULES[rule](), generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and x.shape == (3, 1, 4, 4)


def test_farmer_no_guidance_equals_no_rule(farmer):
    "Farmer.sample with NoGuidance() draws exactly the images of guidance=None for the same seed (float64: no rounding flips)."
    labels = torch.tensor([0, 1, 2, 3])
    la = farmer.sample_latent(labels, 4, generator=torch.Generator().manual_seed(3))
    lb = farmer.sample_latent(labels, 4, generator=torch.Generator().manual_seed(3), guidance=NoGuidance())
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-12)
    a = farmer.sample(labels, generator=torch.Generator().manual_seed(3))
    b = farmer.sample(labels, guidance=NoGuidance(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_farmer_guidance_needs_classes():
    "Guidance on an unconditional Farmer (num_classes = 0) raises ValueError."
    with pytest.raises(ValueError, match='guidance'):
        make_farmer(num_classes=0).sample(n=2, guidance=Resampling(1.0))


def test_temperatures_belong_to_the_rule():
    "With a guidance rule, sample-level temperatures are refused instead of silently ignored."
    from farmer_nb.ar import ARPrior
    p = ARPrior(N=3, d_I=2, d_R=2, num_classes=3, width=32, depth=1, head_dim=16, M=2, K_I=2, K_R=2)
    with pytest.raises(ValueError, match='set the sampling temperatures on the rule'):
        p.sample(torch.tensor([0, 1]), T_sigma=0.5, rule=NoGuidance())
