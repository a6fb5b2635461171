"Autograder for assignment 5: the channel split and the log-likelihood of FARMER's prior (paper §3.3)."
import pytest, torch
from grader import load, notebook, close, diagnose, hint_on_error
from farmer_nb.ar import ARPrior
from farmer_nb.gmm import GMM
from farmer_nb.split import ChannelSplit

split_channels, redundant_log_prob, split_log_prob = load(
    notebook('05_channel_split.ipynb'), 'split_channels', 'redundant_log_prob', 'split_log_prob')

STRIDED = "strided: informative channel k is ⌊k·d / d_I⌋, i.e. k * d // d_I (multiply first, then divide)"
MODE = "follow `mode`: 'contiguous' takes the first d_I channels, 'strided' spreads d_I channels over the token"
REST = "z_R holds all the other channels, in increasing order"
ORDER = "return (z_I, z_R): the d_I informative channels first, then the d − d_I redundant ones"
TRANSPOSE = ("the shared mixture has batch shape (B,): move the token axis to the front, z_R.transpose(0, 1) of "
             "shape (N, B, d_R), so that every token of image b is scored under image b's mixture")
SUM_TOKENS = ("add the N tokens' log-densities (sum over the token axis): the redundant vectors are independent "
              "draws from the one mixture, so their log-densities add")
SHIFT = ("token i's mixture G_i comes from the position before z^I_i, h[:, M − 1 : M − 1 + N]: at its own position "
         "the transformer has already read z^I_i")
LAST = ("the shared mixture G_{N+1} is read at the last position, h[:, −1], the only one that has read all of Z^I "
        "(use prior.head_R there)")
NO_R = "add the redundant term: the log-density of Z^R under the shared mixture (your redundant_log_prob)"
NO_I = "add the informative term: the sum over the tokens of log G_i(z^I_i)"
GRAD = ("the log-likelihood must stay differentiable in z: training backpropagates it into the flow; no "
        "torch.no_grad, .detach(), .item() or tensors rebuilt from values")
OWN = ("compute the mixtures yourself from prior.transformer, prior.head_I and prior.head_R: prior(...) and "
       "prior.log_prob(...) are what you are rewriting")

# ---------------------------------------------------------------- 1. split_channels
def _numbered(d):
    "Tokens (2, 3, d) whose value is 1000·token + channel: the channel of any value is value % 1000."
    return torch.arange(d, dtype=torch.float64) + 1000.0 * torch.arange(6, dtype=torch.float64).view(2, 3, 1)

@pytest.mark.parametrize('d, d_I, mode', [(16, 4, 'contiguous'), (16, 4, 'strided'), (12, 5, 'strided'),
                                          (7, 3, 'strided'), (6, 1, 'strided'), (5, 4, 'contiguous')])
def test_split_channels(d, d_I, mode):
    "The informative and redundant channels of `ChannelSplit(d, d_I, mode)`, for every token."
    z = _numbered(d)
    want_I, want_R = ChannelSplit(d, d_I, mode).split(z)
    out = split_channels(z, d_I, mode)
    assert isinstance(out, tuple) and len(out) == 2 and all(torch.is_tensor(t) for t in out), ORDER
    got_I, got_R = out
    what = f"d = {d}, d_I = {d_I}, mode = {mode!r}"
    if got_I.shape == want_R.shape and got_R.shape == want_I.shape and d_I != d - d_I: pytest.fail(f"{what}: {ORDER}", pytrace=False)
    assert got_I.shape == want_I.shape and got_R.shape == want_R.shape, (
        f"{what}: expected z_I {tuple(want_I.shape)} and z_R {tuple(want_R.shape)}, got {tuple(got_I.shape)} and {tuple(got_R.shape)}")
    ch = lambda t: (t[0, 0].double() % 1000).round().long().tolist()          # the channels picked (first token)
    if ch(got_I) != ch(want_I):
        strided_wrong = torch.arange(d_I) * (d // d_I)
        hint = (STRIDED if mode == 'strided' and ch(got_I) == strided_wrong.tolist() else
                MODE if ch(got_I) == ch(ChannelSplit(d, d_I, 'strided' if mode == 'contiguous' else 'contiguous').split(z)[0]) else
                STRIDED if mode == 'strided' else MODE)
        pytest.fail(f"{what}: informative channels {ch(got_I)}, expected {ch(want_I)}: {hint}", pytrace=False)
    if ch(got_R) != ch(want_R):
        pytest.fail(f"{what}: redundant channels {ch(got_R)}, expected {ch(want_R)}: {REST}", pytrace=False)
    assert torch.equal(got_I.double(), want_I) and torch.equal(got_R.double(), want_R), (
        f"{what}: the right channels, but not of every token: index the last axis only, z[..., idx]")

# ---------------------------------------------------------------- 2. redundant_log_prob
def _mixture(B, K, d, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    return GMM(r(B, K), r(B, K, d), 0.3 * r(B, K, d)), g

def _unless_error(f):
    "f(), or None where it raises (a mistake that only broadcasts for some shapes)."
    try: return f()
    except RuntimeError: return None

@pytest.mark.parametrize('B, N, K, d_R', [(3, 3, 2, 2), (2, 5, 3, 4), (4, 1, 1, 3), (5, 7, 4, 1)])
def test_redundant_log_prob(B, N, K, d_R):
    "The N redundant vectors of each image under that image's shared mixture, summed: (B,)."
    g_R, gen = _mixture(B, K, d_R, B * N + K)
    z_R = torch.randn(B, N, d_R, generator=gen, dtype=torch.float64)
    want = g_R.log_prob(z_R.transpose(0, 1)).sum(0)                              # (B,)
    what = f"B = {B} images, N = {N} tokens, K_R = {K}, d_R = {d_R}"
    with hint_on_error(f"A shape mismatch here usually means: {TRANSPOSE}", RuntimeError):
        got = redundant_log_prob(g_R, z_R)
    assert torch.is_tensor(got), f"{what}: return a tensor of shape (B,) = ({B},)"
    if got.shape == (N,) and N != B: pytest.fail(f"{what}: got shape ({N},): sum over the tokens and keep the images, (B,)", pytrace=False)
    assert got.shape == want.shape, f"{what}: expected shape (B,) = ({B},), got {tuple(got.shape)}"
    if close(got, want): return
    hint = diagnose(got, [(_unless_error(lambda: g_R.log_prob(z_R).sum(-1)), TRANSPOSE),
                          (_unless_error(lambda: g_R.log_prob(z_R).sum(0)), TRANSPOSE),
                          (g_R.log_prob(z_R.transpose(0, 1)).mean(0), SUM_TOKENS)]) or "score every z^R_i under G_{N+1} and add"
    pytest.fail(f"{what}: got {got.tolist()[:3]}, expected {want.tolist()[:3]}: {hint}", pytrace=False)

# ---------------------------------------------------------------- 3. split_log_prob
def _prior(N, d, d_I, M, seed=0):
    "A small AR prior with random heads (so every mixture differs), and labels including the null label."
    torch.manual_seed(seed)
    prior = ARPrior(N, d_I, d - d_I, num_classes=3, width=32, depth=2, head_dim=16, M=M, K_I=3, K_R=4)
    with torch.no_grad():
        for head in (prior.head_I, prior.head_R): head.proj.weight.normal_(0, 0.3); head.proj.bias.normal_(0, 0.3)
    return prior, torch.tensor([0, 2, 3])

def _call_own(prior, *args):
    "Your split_log_prob, with prior(...) and prior.log_prob(...) refused."
    def refuse(*a, **k): raise RuntimeError(OWN)
    prior.forward, prior.log_prob = refuse, refuse
    try: return split_log_prob(prior, *args)
    finally: del prior.forward, prior.log_prob

@torch.no_grad()
def _mistakes(prior, z, c, mode):
    "What typical wrong answers give, with the hint for each."
    d = z.shape[-1]
    z_I, z_R = ChannelSplit(d, prior.d_I, mode).split(z)
    h = prior.transformer(prior.inputs(z_I, c))
    M, N = prior.M, prior.N
    I = lambda hs: prior.head_I(hs).log_prob(z_I).sum(1)
    R = lambda hr: prior.head_R(hr).log_prob(z_R.transpose(0, 1))                 # (N, B)
    i_ok, r_ok = I(h[:, M - 1:M - 1 + N]), R(h[:, -1]).sum(0)
    other = 'strided' if mode == 'contiguous' else 'contiguous'
    return [(I(h[:, M:M + N]) + r_ok, SHIFT), (i_ok + R(h[:, M - 1]).sum(0), LAST), (i_ok + R(h[:, -2]).sum(0), LAST),
            (i_ok, NO_R), (r_ok, NO_I), (i_ok + R(h[:, -1]).mean(0), SUM_TOKENS),
            (prior.log_prob(*ChannelSplit(d, prior.d_I, other).split(z), c), MODE)]

@pytest.mark.parametrize('mode, N, d, d_I, M', [('contiguous', 5, 6, 2, 2), ('strided', 5, 6, 2, 2), ('strided', 4, 7, 3, 3)])
def test_split_log_prob(mode, N, d, d_I, M):
    "log p(Z | c) of random latents under a random prior equals the library's, for both splits."
    prior, c = _prior(N, d, d_I, M)
    z = torch.randn(3, N, d)
    what = f"mode = {mode!r}, N = {N}, d = {d}, d_I = {d_I}, M = {M}"
    sI, sR = split_channels(z, d_I, mode)
    wI, wR = ChannelSplit(d, d_I, mode).split(z)
    if not (torch.equal(sI, wI) and torch.equal(sR, wR)):
        pytest.fail(f"{what}: your split_channels is wrong here: fix it first (test_split_channels says how)", pytrace=False)
    with torch.no_grad():
        want = prior.log_prob(wI, wR, c)
        got = _call_own(prior, z, c, mode)
    assert torch.is_tensor(got) and got.shape == want.shape, (
        f"{what}: expected shape (B,) = {tuple(want.shape)}, got {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}")
    if close(got, want): return
    hint = diagnose(got, _mistakes(prior, z, c, mode)) or f"compare with the two sums of the formula: {SHIFT}; {LAST}"
    pytest.fail(f"{what}: got {got.tolist()}, expected {want.tolist()}: {hint}", pytrace=False)

def test_gradients_reach_every_channel_and_both_heads():
    "Backward through your log-likelihood gives the library's gradient in z, and reaches both heads."
    prior, c = _prior(5, 6, 2, 2)
    z = torch.randn(3, 5, 6)
    z_ref = z.clone().requires_grad_(True)
    prior.log_prob(*ChannelSplit(6, 2, 'strided').split(z_ref), c).sum().backward()
    prior.zero_grad(set_to_none=True)
    z.requires_grad_(True)
    lp = _call_own(prior, z, c, 'strided')
    assert torch.is_tensor(lp) and lp.requires_grad, GRAD
    lp.sum().backward()
    assert z.grad is not None, f"no gradient reached z: {GRAD}"
    idx_I, idx_R = ChannelSplit(6, 2, 'strided').idx_I, ChannelSplit(6, 2, 'strided').idx_R
    for name, idx in (('informative', idx_I), ('redundant', idx_R)):
        assert z.grad[..., idx].abs().sum() > 0, f"no gradient reached the {name} channels of z: {GRAD}"
    for name, head in (('head_I', prior.head_I), ('head_R', prior.head_R)):
        assert head.proj.weight.grad is not None and head.proj.weight.grad.abs().sum() > 0, f"no gradient reached prior.{name}: {GRAD}"
    assert close(z.grad, z_ref.grad, 1e-4), "the gradient in z differs from the library's: is the value right (test_split_log_prob)?"
