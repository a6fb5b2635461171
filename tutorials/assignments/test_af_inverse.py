"Autograder for assignment 1: the KV-cached inverse of an AF block."
import pytest, torch
from grader import load, notebook
from farmer_nb.flow import AutoregressiveFlow, randomize_

af_block_inverse = load(notebook('01_af_inverse.ipynb'), 'af_block_inverse')

@pytest.mark.parametrize('d, N, reverse', [(4, 6, False), (4, 6, True), (3, 9, False), (16, 5, True)])
def test_matches_exact_inverse(d, N, reverse):
    "Forward then your inverse gives back the input, for blocks reading the tokens in both orders."
    blk = randomize_(AutoregressiveFlow(d, N, n_blocks=2, width=32, depth=2, head_dim=16), seed=d + N).blocks[int(reverse)]
    x = torch.randn(3, N, d)
    with torch.no_grad(): z, _ = blk(x)
    got = af_block_inverse(blk, z)
    assert got.shape == x.shape, f"expected shape {tuple(x.shape)}, got {tuple(got.shape)}"
    err = (got - x).abs().amax((0, 2))                                   # (N,) per token
    bad = [i for i in range(N) if err[i] > 1e-5]
    assert not bad, (f"token(s) {bad} differ from the exact inverse (max error {err.max():.2e}). "
                     + ("Token 0 must pass through unchanged. " if 0 in bad else "")
                     + ("Did you apply the block's permutation on the way in and out? " if reverse else "")
                     + "The output at position i gives the parameters of token i + 1, and x = z·exp(a) + mu.")

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
    assert len(calls) == 6, f"expected N − 1 = 6 transformer calls, got {len(calls)}"
    assert all(t == 1 and cached for t, cached in calls), f"each call should push one token with the caches; got (tokens, cached) = {calls}"

def test_leaves_the_input_alone():
    "The latent you are given is not modified in place (clone before writing)."
    blk = randomize_(AutoregressiveFlow(4, 6, n_blocks=1, width=32, depth=1, head_dim=16)).blocks[0]
    z = torch.randn(2, 6, 4); z0 = z.clone()
    af_block_inverse(blk, z)
    assert torch.equal(z, z0), "your function changed its input z: write into a copy"
