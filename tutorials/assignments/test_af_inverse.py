"Autograder for assignment 1: the KV-cached inverse of an AF block."
import pytest, torch
import farmer_nb.flow as flow
from grader import load, notebook, close
from farmer_nb.flow import AutoregressiveFlow, randomize_, permute_tokens

af_block_inverse = load(notebook('01_af_inverse.ipynb'), 'af_block_inverse')

PERMUTATION = ("apply the block's token order: permute_tokens(·, blk.reverse) on z on the way in and on the "
               "result on the way out")
TOKEN0 = "token 0 (the first in the block's order) passes through unchanged"
AFFINE = "invert the affine map: the block computed z = (x − mu)·exp(−a), so x = z·exp(a) + mu"
FEED = ("feed the transformer the tokens you have recovered (x), not the latent z: the block computed each "
        "token's parameters from the earlier tokens of x")
POSITION = "the output at position i gives the parameters of token i + 1, and x = z·exp(a) + mu"
CACHE = "push one token per call with the caches: blk.transformer(blk.embed(x[:, i:i + 1], i, None), caches)"
COPY = "your function changed its input z: write into a copy (clone it first)"

def _without_permutation(blk, z):
    "What the library's inverse gives when the block's token order is left out."
    keep = flow.permute_tokens
    flow.permute_tokens = lambda x, reverse: x
    try: return blk.inverse(z)
    finally: flow.permute_tokens = keep

@torch.no_grad()
def _diagnose(blk, z, x, got):
    "The hint for a wrong inverse `got` of z (x is the right one)."
    if blk.reverse:
        unperm = _without_permutation(blk, z)
        if any(close(got, v) for v in (unperm, unperm.flip(1), x.flip(1))): return PERMUTATION
    zb, xb, gb = (permute_tokens(t, blk.reverse) for t in (z, x, got))               # the block's order
    if not close(gb[:, 0], xb[:, 0]): return TOKEN0
    a, mu = blk.params(blk.transformer(blk.embed(xb[:, :1], 0, None)))                # parameters of token 1
    z1 = zb[:, 1:2]
    if any(close(gb[:, 1:2], v) for v in ((z1 - mu) * torch.exp(-a), z1 * torch.exp(-a) + mu,
                                         (z1 - mu) * torch.exp(a), z1 * torch.exp(a) - mu)): return AFFINE
    a, mu = blk.params(blk.transformer(blk.embed(zb, 0, None)))                       # all parameters from z instead of x
    fed_z = torch.cat([zb[:, :1], zb[:, 1:] * torch.exp(a[:, :-1]) + mu[:, :-1]], 1)
    if close(gb, fed_z): return FEED
    return POSITION

@pytest.mark.parametrize('d, N, reverse', [(4, 6, False), (4, 6, True), (3, 9, False), (16, 5, True)])
def test_matches_exact_inverse(d, N, reverse):
    "Forward then your inverse gives back the input, for blocks reading the tokens in both orders."
    blk = randomize_(AutoregressiveFlow(d, N, n_blocks=2, width=32, depth=2, head_dim=16), seed=d + N).blocks[int(reverse)]
    x = torch.randn(3, N, d)
    with torch.no_grad(): z, _ = blk(x)
    got = af_block_inverse(blk, z)
    assert torch.is_tensor(got) and got.shape == x.shape, (
        f"expected shape {tuple(x.shape)}, got {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}")
    err = (got - x).abs().amax((0, 2))                                   # (N,) per token
    bad = [i for i in range(N) if err[i] > 1e-5]
    assert not bad, (f"token(s) {bad} differ from the exact inverse (max error {err.max():.2e}) for a block with "
                     f"reverse={reverse}: {_diagnose(blk, z, x, got)}")

def test_uses_the_cache_one_token_per_step():
    "The transformer is called N − 1 times, each on a single new token (the KV cache holds the rest)."
    blk = randomize_(AutoregressiveFlow(4, 7, n_blocks=1, width=32, depth=1, head_dim=16)).blocks[0]
    calls, orig = [], blk.transformer.forward
    def spy(h, caches=None, temperature=1.0):
        calls.append((h.shape[1], caches is not None)); return orig(h, caches, temperature)
    blk.transformer.forward = spy
    with torch.no_grad(): z, _ = blk(torch.randn(2, 7, 4))
    calls.clear()
    af_block_inverse(blk, z)
    assert all(t == 1 and cached for t, cached in calls), f"{CACHE}; got (tokens, cached) = {calls}"
    assert len(calls) == 6, (f"expected N − 1 = 6 transformer calls, got {len(calls)}: token 0 passes through, and "
                             "the output after token i gives the parameters of token i + 1, for i = 0 .. N − 2")

def test_leaves_the_input_alone():
    "The latent you are given is not modified in place (clone before writing)."
    blk = randomize_(AutoregressiveFlow(4, 6, n_blocks=1, width=32, depth=1, head_dim=16)).blocks[0]
    z = torch.randn(2, 6, 4); z0 = z.clone()
    af_block_inverse(blk, z)
    assert torch.equal(z, z0), COPY
