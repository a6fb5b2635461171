"Tests of farmer_nb.flow and farmer_nb.transformer: invertibility, exact log-det, causality, KV-cached decoding."
import pytest
import torch
import torch.nn.functional as F

from farmer_nb.flow import AFBlock, AutoregressiveFlow, permute_tokens, randomize_, soft_clip, upcast
from farmer_nb.transformer import KVCache, Transformer

TINY = dict(width=32, head_dim=16)


def make_flow(d=4, N=6, n_blocks=2, depth=1, num_classes=0, std=0.05, seed=0, dtype=torch.float32):
    "A tiny flow with random (seeded) weights, including the zero-initialised output layers."
    torch.manual_seed(seed)
    flow = AutoregressiveFlow(d, N, n_blocks, depth=depth, num_classes=num_classes, **TINY)
    return randomize_(flow.to(dtype), std=std, seed=seed).eval()


def labels_for(flow, B, seed=0):
    "Random labels (B,) for a conditional flow, None for an unconditional one."
    nc = flow.blocks[0].num_classes
    return torch.randint(0, nc, (B,), generator=torch.Generator().manual_seed(seed)) if nc else None


def block_io(flow, x, c=None):
    "The input and output (B, N, d) of every block of `flow` on x, in token order (not block order)."
    io = []
    for blk in flow.blocks:
        z, _ = blk(x, c)
        io.append((x, z)); x = z
    return io


# ---------------------------------------------------------------- round trip and log-det

@pytest.mark.parametrize('d, N, n_blocks, depth, num_classes', [
    (4, 6, 2, 1, 0), (3, 5, 3, 2, 0), (8, 4, 4, 1, 0), (4, 16, 2, 1, 3), (12, 8, 3, 2, 5)])
def test_round_trip(d, N, n_blocks, depth, num_classes):
    "inverse(forward(x)) recovers x to max relative error < 1e-4 in fp32."
    flow = make_flow(d, N, n_blocks, depth, num_classes)
    x = torch.randn(3, N, d, generator=torch.Generator().manual_seed(1))
    c = labels_for(flow, 3)
    z, logdet = flow(x, c)
    assert z.shape == x.shape and logdet.shape == (3,)
    assert not torch.allclose(z, x, atol=1e-3)                                  # the flow does something
    x2 = flow.inverse(z, c)
    assert ((x2 - x).abs().max() / x.abs().max()).item() < 1e-4
    assert torch.allclose(flow(x2, c)[0], z, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('d, N, num_classes', [(3, 4, 0), (2, 6, 0), (4, 3, 3)])
def test_logdet_matches_autograd_jacobian(d, N, num_classes):
    "The returned log-det equals slogdet of the autograd Jacobian dZ/dX (float64, N·d ≈ 12)."
    flow = make_flow(d, N, n_blocks=3, depth=1, num_classes=num_classes, std=0.3, dtype=torch.float64)
    x = torch.randn(1, N, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    c = torch.tensor([1]) if num_classes else None
    J = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, N, d), c)[0].flatten(), x.flatten())
    sign, logabsdet = torch.linalg.slogdet(J)
    _, logdet = flow(x, c)
    assert sign.item() == 1.0
    assert abs(logdet.item()) > 0.05                                            # a non-trivial check
    assert logdet.item() == pytest.approx(logabsdet.item(), abs=1e-5)


def test_logdet_is_sum_of_block_logdets():
    "The flow's log-det is the sum over blocks of each block's log-det."
    flow = make_flow(num_classes=2)
    x, c = torch.randn(2, 6, 4), torch.tensor([0, 1])
    total, h = torch.zeros(2), x
    for blk in flow.blocks:
        h, ld = blk(h, c); total += ld
    assert torch.allclose(flow(x, c)[1], total, rtol=1e-6, atol=1e-6)


def test_zero_init_is_identity():
    "A freshly built flow (zero output layers) maps x to exactly x with log-det exactly 0, both ways."
    torch.manual_seed(0)
    flow = AutoregressiveFlow(4, 6, n_blocks=3, depth=1, num_classes=3, **TINY)
    x = torch.randn(2, 6, 4)
    z, logdet = flow(x, torch.tensor([0, 2]))
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(2))
    assert torch.equal(flow.inverse(x, torch.tensor([0, 2])), x)


# ---------------------------------------------------------------- causality

@pytest.mark.parametrize('b', [0, 1, 2])
def test_block_causality(b):
    "Perturbing token i (in the block's own order) leaves outputs < i unchanged and changes outputs i and i+1."
    flow = make_flow(d=3, N=5, n_blocks=3, std=0.3)
    blk = flow.blocks[b]
    assert blk.reverse == (b % 2 == 1)                                          # blocks alternate order
    x = block_io(flow, torch.randn(1, 5, 3))[b][0]
    z = permute_tokens(blk(x)[0], blk.reverse)                                  # outputs in block order
    for i in range(5):
        xp = permute_tokens(x, blk.reverse).clone()
        xp[:, i] += 0.5                                                         # perturb token i of the block order
        zi = permute_tokens(blk(permute_tokens(xp, blk.reverse))[0], blk.reverse)
        assert torch.equal(zi[:, :i], z[:, :i]), f'token {i} leaked into earlier outputs'
        assert (zi[:, i] - z[:, i]).abs().min() > 1e-3                          # every dim of output i moves
        if i + 1 < 5: assert (zi[:, i + 1] - z[:, i + 1]).abs().max() > 1e-4    # the next token is conditioned on it


def test_reversed_block_order():
    "A reversed block's first token (passed through unchanged) is the last token in image order."
    flow = make_flow(d=3, N=5, n_blocks=2, std=0.3)
    x = torch.randn(2, 5, 3)
    z0, _ = flow.blocks[0](x)
    z1, _ = flow.blocks[1](x)
    assert torch.equal(z0[:, 0], x[:, 0]) and not torch.allclose(z0[:, -1], x[:, -1])
    assert torch.equal(z1[:, -1], x[:, -1]) and not torch.allclose(z1[:, 0], x[:, 0])


# ---------------------------------------------------------------- sequential inverse

@torch.no_grad()
def reference_block_inverse(blk, z, c):
    "Uncached inverse of one block: recover token i by re-running the whole transformer on tokens < i."
    zp = permute_tokens(z, blk.reverse)                                         # block order
    x = zp.clone()                                                              # token 0: a = mu = 0 (shift right)
    for i in range(1, blk.N):
        h = blk.transformer(blk.embed(x[:, :i], 0, c))                          # (B, i, width), no cache
        a, mu = blk.params(h)                                                   # output i−1 parametrises token i
        x[:, i] = zp[:, i] * torch.exp(a[:, -1]) + mu[:, -1]
    return permute_tokens(x, blk.reverse)


@pytest.mark.parametrize('num_classes, depth', [(0, 1), (0, 2), (3, 2)])
def test_cached_inverse_matches_uncached_reference(num_classes, depth):
    "Each block's KV-cached inverse equals a from-scratch uncached inverse within 1e-5."
    flow = make_flow(d=4, N=7, n_blocks=2, depth=depth, num_classes=num_classes, std=0.1)
    z = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(3))
    c = torch.tensor([0, 2, 1]) if num_classes else None
    for blk in flow.blocks:
        ref = reference_block_inverse(blk, z, c if num_classes else None)
        assert (blk.inverse(z, c) - ref).abs().max().item() < 1e-5
        assert (blk(ref, c)[0] - z).abs().max().item() < 1e-5                  # the reference really inverts


def test_null_label_is_default():
    "A conditional flow given no labels uses the null label (index num_classes)."
    flow = make_flow(num_classes=3, std=0.3)
    x = torch.randn(2, 6, 4)
    assert torch.equal(flow(x)[0], flow(x, torch.tensor([3, 3]))[0])
    assert not torch.allclose(flow(x)[0], flow(x, torch.tensor([0, 0]))[0])


@pytest.mark.parametrize('n_blocks', [1, 2])
def test_inverse_does_not_modify_latent(n_blocks):
    "inverse leaves the caller's latent tensor unchanged (identity-order and reversed blocks)."
    flow = make_flow(n_blocks=n_blocks, std=0.3)
    z = torch.randn(2, 6, 4)
    before = z.clone()
    flow.inverse(z)
    for blk in flow.blocks: blk.inverse(z)
    assert torch.equal(z, before)


# ---------------------------------------------------------------- transformer and KV cache

def make_transformer(depth=2, causal=True):
    torch.manual_seed(0)
    return Transformer(32, depth, head_dim=16, causal=causal).eval()


@pytest.mark.parametrize('chunks', [[1] * 7, [3, 4], [2, 1, 3, 1], [7]])
@pytest.mark.parametrize('temperature', [1.0, 0.7])
@torch.no_grad()
def test_cached_decoding_matches_full_pass(chunks, temperature):
    "Feeding the sequence through the KV cache token by token or in chunks equals one full causal pass."
    tr = make_transformer()
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(4))
    full = tr(x, temperature=temperature)
    caches, outs, s = tr.make_caches(2, 7), [], 0
    for c in chunks:
        outs.append(tr(x[:, s:s + c], caches, temperature)); s += c
    assert (torch.cat(outs, 1) - full).abs().max().item() < 1e-5
    assert all(cache.pos == 7 for cache in caches)


@torch.no_grad()
def test_transformer_causal_vs_bidirectional():
    "A causal transformer's output i ignores tokens after i; a bidirectional one does not."
    x = torch.randn(1, 5, 32)
    x2 = x.clone(); x2[:, 3] += torch.randn(32)                                 # (a constant shift would be normalised away)
    causal, bidir = make_transformer(1, True), make_transformer(1, False)
    assert torch.equal(causal(x)[:, :3], causal(x2)[:, :3])
    assert not torch.allclose(bidir(x)[:, :3], bidir(x2)[:, :3])


def test_kv_cache_capacity():
    "Appending past the cache capacity raises RuntimeError; reset rewinds the write index."
    cache = KVCache(1, 2, 3, 4)
    k = torch.randn(1, 2, 2, 4)
    keys, values = cache.append(k, 2 * k)
    assert torch.equal(keys, k) and torch.equal(values, 2 * k) and cache.pos == 2
    with pytest.raises(RuntimeError, match=r'KV cache full: 2 \+ 2 positions > capacity 3'):
        cache.append(k, k)
    cache.reset()
    assert cache.pos == 0 and cache.append(k, k)[0].shape == (1, 2, 2, 4)


def test_width_must_be_multiple_of_head_dim():
    "Attention refuses a width that is not a multiple of head_dim."
    with pytest.raises(ValueError, match='width 40 is not a multiple of head_dim 16'):
        Transformer(40, 1, head_dim=16)


# ---------------------------------------------------------------- precision and shapes

def test_bf16_autocast_forward_is_fp32():
    "Under CPU bf16 autocast the flow still returns fp32 z and log-det, close to the fp32 result."
    flow = make_flow(num_classes=3)
    x, c = torch.randn(2, 6, 4), torch.tensor([0, 1])
    z32, ld32 = flow(x, c)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        z, logdet = flow(x, c)
        x_back = flow.inverse(z, c)
    assert z.dtype == torch.float32 and logdet.dtype == torch.float32 and x_back.dtype == torch.float32
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1)).item()
    assert rel(z, z32) < 2**-6 and rel(logdet, ld32) < 2**-6                   # bf16 eps is 2^-8: allow 4 ulps


def test_upcast_and_soft_clip():
    "upcast lifts half precision to fp32 and keeps fp64; soft_clip bounds |a| < bound and is ≈ identity near 0."
    assert upcast(torch.zeros(1, dtype=torch.bfloat16)).dtype == torch.float32
    assert upcast(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64
    a = torch.tensor([-100.0, -1e-3, 0.0, 1e-3, 100.0])
    c = soft_clip(a, 4.0)
    assert c.abs().max() <= 4.0 and torch.allclose(c[1:4], a[1:4], atol=1e-9)
    assert torch.equal(soft_clip(a, 0), a)                                      # bound 0: no clipping


@pytest.mark.parametrize('shape', [(2, 6, 5), (2, 7, 4), (6, 4), (2, 6, 4, 1)])
def test_wrong_token_shape(shape):
    "forward and inverse refuse tokens whose shape is not (B, N, d), naming the expected shape."
    flow = make_flow(d=4, N=6)
    with pytest.raises(ValueError, match=r'x: expected tokens \(B, 6, 4\)'):
        flow(torch.zeros(shape))
    with pytest.raises(ValueError, match=r'z: expected tokens \(B, 6, 4\)'):
        flow.inverse(torch.zeros(shape))


def test_block_stats():
    "block_stats reports one E[z²] and one log-det per dimension for every block."
    flow = make_flow(n_blocks=3)
    x = torch.randn(4, 6, 4)
    stats = flow.block_stats(x)
    assert stats['z2'].shape == (3,) and stats['logdet_per_dim'].shape == (3,)
    assert torch.allclose(stats['logdet_per_dim'].sum() * 6 * 4, flow(x)[1].mean(), rtol=1e-5, atol=1e-6)


def test_residual_stream_in_autocast_dtype():
    "Under autocast the transformer's input (its residual stream) is in the autocast dtype; without autocast it stays fp32."
    flow = make_flow(num_classes=3)
    blk, x, c = flow.blocks[0], torch.randn(2, 6, 4), torch.tensor([0, 1])
    assert blk.embed(x, 0, c).dtype == torch.float32
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert blk.embed(x, 0, c).dtype == torch.bfloat16
        z, logdet = flow(x, c)
    assert z.dtype == logdet.dtype == torch.float32


# ---------------------------------------------------------------- switches measured against the plain TarFlow choices

def test_without_final_norm_round_trip_and_logdet():
    "final_norm=False (no LayerNorm before the output projection) keeps an exact inverse and log-det."
    torch.manual_seed(0)
    flow = AutoregressiveFlow(3, 4, 3, depth=1, num_classes=2, final_norm=False, **TINY)
    flow = randomize_(flow.double(), std=0.3, seed=0).eval()
    assert all(isinstance(b.transformer.norm, torch.nn.Identity) for b in flow.blocks)
    assert isinstance(AFBlock(3, 4, **TINY).transformer.norm, torch.nn.LayerNorm)            # the default keeps it
    x, c = torch.randn(1, 4, 3, dtype=torch.float64), torch.tensor([1])
    z, logdet = flow(x, c)
    assert ((flow.inverse(z, c) - x).abs().max() / x.abs().max()).item() < 1e-10
    J = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 4, 3), c)[0].flatten(), x.flatten())
    assert abs(logdet.item()) > 0.05
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(J)[1].item(), abs=1e-8)


def test_input_clip_keeps_the_flow_exact():
    """in_clip bounds what each block's transformer reads, s·tanh(z/s), not the affine map: the inverse and the
    log-det stay exact, and huge inputs no longer reach the transformer."""
    torch.manual_seed(0)
    flow = AutoregressiveFlow(3, 4, 3, depth=1, num_classes=2, final_norm=False, in_clip=2.0, **TINY)
    flow = randomize_(flow.double(), std=0.3, seed=0).eval()
    x, c = 3 * torch.randn(1, 4, 3, dtype=torch.float64), torch.tensor([1])              # many values beyond s
    z, logdet = flow(x, c)
    assert ((flow.inverse(z, c) - x).abs().max() / x.abs().max()).item() < 1e-10
    J = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 4, 3), c)[0].flatten(), x.flatten())
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(J)[1].item(), abs=1e-8)
    blk = flow.blocks[0]
    far = blk.embed(torch.full((1, 1, 3), 1e6, dtype=torch.float64), 0, c)
    near = blk.embed(torch.full((1, 1, 3), 1e2, dtype=torch.float64), 0, c)
    assert torch.allclose(far, near)                                     # 10⁶ and 100 both read as s = 2
    assert AutoregressiveFlow(3, 4, 1, **TINY).blocks[0].in_clip == 0.0                  # off by default


def test_class_std_scales_the_class_embeddings():
    "class_std multiplies the N(0, 1) init without drawing other random numbers: the rest of the init is unchanged."
    torch.manual_seed(3); a = AFBlock(4, 6, num_classes=5, **TINY)
    torch.manual_seed(3); b = AFBlock(4, 6, num_classes=5, class_std=0.01, **TINY)
    assert torch.allclose(b.class_emb.weight, 0.01 * a.class_emb.weight)
    assert torch.equal(a.pos_emb, b.pos_emb) and torch.equal(a.proj_in.weight, b.proj_in.weight)
    big = AFBlock(4, 6, width=64, head_dim=16, num_classes=200, class_std=0.01)
    assert big.class_emb.weight.std().item() == pytest.approx(0.01, rel=0.05)
