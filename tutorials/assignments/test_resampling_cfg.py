"Autograder for assignment 3: resampling-based classifier-free guidance (FARMER Algorithm 1)."
import functools
import torch
from grader import load, notebook
from farmer_nb.gmm import GMM
from farmer_nb.guidance import tv_to_target

resample_cfg = load(notebook('03_resampling_cfg.ipynb'), 'resample_cfg')

SHAPE = "return one draw per mixture, (B, d): candidate idx[b] of mixture b, e.g. cand[idx, torch.arange(B)]"
PICK = "return one of the candidates unchanged: resampling picks a candidate, it does not average them"
HINTS = {
    'sign': "Δ has the wrong sign: Δ = log p_c(z) − log p_u(z), so that guidance favours what the class makes likelier",
    'w_only': "candidates drawn from p_u need log-weight (w + 1)·Δ, not w·Δ (p'/p_u ∝ (p_c/p_u)^(w+1))",
    'w1_only': "candidates drawn from p_c need log-weight w·Δ, not (w + 1)·Δ (p'/p_c ∝ (p_c/p_u)^w)",
    'swapped': ("the two weights are swapped: w·Δ for the s_c candidates from p_c (the first ones), (w + 1)·Δ for "
                "the s_u candidates from p_u"),
    'per_group': "normalise the log-weights over all s_c + s_u candidates together, not within each group",
    'argmax': ("draw the index at random from the normalised weights (torch.multinomial): the argmax always picks "
               "the heaviest candidate"),
    'uniform': "the weights are not used: draw the index with probabilities softmax(log-weights), not uniformly",
    'all_c': "the s_u candidates must be drawn from p_u (g_u.sample), the s_c others from p_c (g_c.sample)",
}

def mix(logits, mu, sd):
    return GMM(torch.tensor(logits, dtype=torch.float64), torch.tensor(mu, dtype=torch.float64)[:, None],
               torch.log(torch.tensor(sd, dtype=torch.float64))[:, None])

P_C, P_U = mix([0.3, 0.0], [-1.0, 1.0], [0.8, 0.8]), mix([0.0, 0.0], [-0.5, 1.5], [1.0, 1.0])

class _Rule:                                           # adapts your function to tv_to_target's interface
    def __init__(self, **kw): self.kw = kw
    def __call__(self, g_c, g_u, n=None, generator=None): return resample_cfg(g_c, g_u, generator=generator, **self.kw)

# The probe: mixtures whose "draws" are fixed values, so the value returned says which candidate was picked.
PROBE_C, PROBE_U = mix([0.0], [1.0], [1.0]), mix([0.0], [-1.0], [1.0])     # Δ(z) = 2z
VALUES_C, VALUES_U, PROBE_W, PROBE_B = [-0.7, 1.0], [1.3, 0.9], 1.0, 20_000

class _Fixed(GMM):
    "A batch of B copies of the 1-D mixture g whose `sample` returns the given values (cycled) for every mixture."
    def __init__(self, g, values, B):
        super().__init__(g.logits.expand(B, -1), g.mu.expand(B, -1, -1), g.log_sigma.expand(B, -1, -1))
        self.values = torch.tensor(values, dtype=torch.float64)
    def sample(self, n=None, generator=None):
        v = self.values[torch.arange(1 if n is None else n) % len(self.values)]
        out = v[:, None, None].expand(len(v), self.logits.shape[0], 1)        # (n, B, 1)
        return out[0] if n is None else out

def _expected():
    "How often each of the 2 + 2 probe candidates is picked: by Algorithm 1 and by each typical mistake."
    dc, du = (2 * torch.tensor(v, dtype=torch.float64) for v in (VALUES_C, VALUES_U))
    w, sm = PROBE_W, lambda *xs: torch.softmax(torch.cat(xs), 0)
    e = {'right': sm(w * dc, (w + 1) * du), 'sign': sm(-w * dc, -(w + 1) * du), 'w_only': sm(w * dc, w * du),
         'w1_only': sm((w + 1) * dc, (w + 1) * du), 'swapped': sm((w + 1) * dc, w * du),
         'per_group': torch.cat([torch.softmax(w * dc, 0), torch.softmax((w + 1) * du, 0)]) / 2,
         'uniform': torch.full((4,), 0.25, dtype=torch.float64)}
    e['argmax'] = torch.nn.functional.one_hot(e['right'].argmax(), 4).double()
    pc = sm(w * dc, (w + 1) * dc)                                          # p_u's candidates drawn from p_c
    e['all_c'] = torch.cat([pc[:2] + pc[2:], pc.new_zeros(2)])
    return e

@functools.lru_cache(maxsize=None)
def _probe():
    "(frequencies of the 4 probe candidates in your draws, hint); hint None when the picking is right."
    g = torch.Generator().manual_seed(0)
    out = resample_cfg(_Fixed(PROBE_C, VALUES_C, PROBE_B), _Fixed(PROBE_U, VALUES_U, PROBE_B), w=PROBE_W, s_c=2, s_u=2, generator=g)
    if not torch.is_tensor(out) or out.shape != (PROBE_B, 1): return None, SHAPE
    hit = (out.double().reshape(-1, 1) - torch.tensor(VALUES_C + VALUES_U, dtype=torch.float64)).abs() < 1e-6   # (B, 4)
    if not hit.any(1).all(): return None, PICK
    freq = hit.double().mean(0)
    exp = _expected()
    dist = {k: (v - freq).abs().sum().item() for k, v in exp.items()}
    best = min(dist, key=dist.get)
    if best == 'right' and dist[best] < 0.05: return freq, None
    if dist[best] < 0.1: return freq, HINTS.get(best)
    return freq, (f"the candidates are picked with frequencies {[round(f, 3) for f in freq.tolist()]} instead of "
                  f"{[round(f, 3) for f in exp['right'].tolist()]}: the softmax of the log-weights over all candidates")

def _diagnosis():
    freq, hint = _probe()
    return hint or ("picking among given candidates works (checked on fixed candidates), so look at the candidates: "
                    "s_c draws from g_c and s_u from g_u, each with g.sample(n=s, generator=generator)")

def test_shapes():
    "One draw of d channels per mixture of the batch."
    g = lambda: GMM(torch.randn(4, 3), torch.randn(4, 3, 2), torch.zeros(4, 3, 2))
    out = resample_cfg(g(), g(), w=1.5, s_c=5, s_u=5, generator=torch.Generator().manual_seed(0))
    assert torch.is_tensor(out) and out.shape == (4, 2), (
        f"expected (B, d) = (4, 2), got {tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}: {SHAPE}")

def test_picks_candidates_by_their_weights():
    "Given fixed candidates (2 from p_c, 2 from p_u), each is picked as often as Algorithm 1's weights say."
    freq, hint = _probe()
    assert hint is None, hint

def test_reaches_the_target():
    "With 5 + 5 candidates and w = 2 the draws are within total variation 0.07 of p_c^3 p_u^-2."
    test_shapes()
    tv = tv_to_target(_Rule(w=2.0, s_c=5, s_u=5), P_C, P_U, 2.0, n=200_000)
    assert tv < 0.07, f"total variation to the guided target is {tv:.3f} (plain p_c draws: 0.31): {_diagnosis()}"

def test_weights_for_unconditional_candidates():
    "All candidates from p_u (s_c = 0): only the right weight (w + 1)·Δ for them reaches the target."
    test_shapes()
    tv = tv_to_target(_Rule(w=2.0, s_c=0, s_u=50), P_C, P_U, 2.0, n=200_000)      # right weight: 0.016; w·Δ instead: 0.16
    assert tv < 0.03, f"total variation {tv:.3f} with all 50 candidates from p_u: {_diagnosis()}"
