"Tests of FARMER as a whole (farmer_nb.model.Farmer, farmer_nb.split): exact likelihood, gradients, sampling, configs, checkpoints, training."
import inspect, math, re

import pytest
import torch

from farmer_nb.data import SyntheticImages, dequantize, patchify
from farmer_nb.flow import permute_tokens
from farmer_nb.model import (Farmer, FarmerConfig, GaussianFlow, PRESETS, get_config, load_model, randomize_model_,
                             save_model)
from farmer_nb.split import ChannelMixing, ChannelSplit, split_indices
from farmer_nb.train import fit


def make_farmer(std=0.2, seed=0, dtype=torch.float64, image_shape=(1, 4, 4), n_blocks=3, **overrides):
    "A tiny Farmer ('farmer-tiny' on 4×4 images by default: N = 4, d = 4) with every layer random, heads included."
    torch.manual_seed(seed)
    m = Farmer(get_config('farmer-tiny', image_shape=image_shape, n_blocks=n_blocks, **overrides))
    randomize_model_(m, std=std, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():   # randomize_model_ skips the heads' weights (only their logit/scale rows are zero)
        for head in (m.prior.head_I, m.prior.head_R):
            if head is not None: head.proj.weight.copy_(std * torch.randn(head.proj.weight.shape, generator=g))
    return m.to(dtype).eval()


def images(B=2, shape=(1, 4, 4), seed=0, dtype=torch.float64):
    "Random model-space images in [-1, 1]."
    return (2 * torch.rand(B, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) - 1)


LABELS = torch.tensor([1, 3])


def latent_logabsdet(m, X):
    "log|det| of the autograd Jacobian of one sample's tokens X (1, N, d) → its latent (Z^I, Z^R), flattened."
    f = lambda x: torch.cat(m.latent(x)[:2], -1).flatten()
    J = torch.autograd.functional.jacobian(f, X).reshape(X.numel(), X.numel())
    return torch.linalg.slogdet(J).logabsdet


# --- exact likelihood ---------------------------------------------------------------------------

@pytest.mark.parametrize('redundant', ['gmm', 'normal'])
@pytest.mark.parametrize('split', ['contiguous', 'strided'])
@pytest.mark.parametrize('final_permute', [True, False])
def test_nll_is_exact_change_of_variables(final_permute, split, redundant):
    "model.nll = −(log p_prior(Z^I, Z^R | c) + log|det ∂Z/∂X| from autograd) / D, in float64, with mixing on."
    m = make_farmer(mixing=True, final_permute=final_permute, split=split, redundant=redundant)
    assert m.final_reverse == final_permute                                          # n_blocks = 3: the flag matters
    y = images()
    X = patchify(y, m.cfg.patch)
    z_I, z_R, _ = m.latent(X)
    logabsdet = torch.stack([latent_logabsdet(m, X[b:b + 1]) for b in range(len(y))])
    brute = -(m.prior.log_prob(z_I, z_R, LABELS) + logabsdet) / m.cfg.D
    torch.testing.assert_close(m.nll(y, LABELS).detach(), brute.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize('redundant, detail_layers, basis, patch', [('gmm', 0, 'dct', 2), ('gmm-token', 0, 'dct', 2),
                                                                    ('gmm', 3, 'dct', 2), ('gmm', 0, 'haar', 2),
                                                                    ('gmm', 0, 'haar1', 4)])
def test_nll_is_exact_with_a_context_coupling(redundant, detail_layers, basis, patch):
    """DCT, Haar or one-level Haar basis + a coupling that reads every token's Z^I (coupling_depth) + either redundant
    prior (+ couplings among Z^R's channels): nll is exact, float64, and unlatent inverts latent."""
    shape = (3, 2 * patch, 2 * patch)                                              # 4 tokens
    m = make_farmer(image_shape=shape, patch=patch, d_I=5, basis=basis, coupling=16, coupling_depth=1,
                    redundant=redundant, detail_layers=detail_layers)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        m.coupling.mlp[-1].weight.normal_(0, 0.2, generator=g)
        for mlp in (m.detail.mlp if detail_layers else []): mlp[-1].weight.normal_(0, 0.2, generator=g)
    assert m.coupling.context is not None                                     # a random coupling, not the identity
    y = images(shape=shape)
    X = patchify(y, m.cfg.patch)
    z_I, z_R, _ = m.latent(X)
    logabsdet = torch.stack([latent_logabsdet(m, X[b:b + 1]) for b in range(len(y))])
    brute = -(m.prior.log_prob(z_I, z_R, LABELS) + logabsdet) / m.cfg.D
    torch.testing.assert_close(m.nll(y, LABELS).detach(), brute.detach(), rtol=0, atol=1e-12)
    with torch.no_grad():                                  # the inverse of the stored Q: exact in float64
        torch.testing.assert_close(m.unlatent(z_I, z_R), m.flow(X)[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize('kw, match', [(dict(coupling_depth=1), 'coupling_depth'), (dict(coupling_depth=-1, coupling=16), 'coupling_depth'),
                                       (dict(coupling_depth=1, coupling=24), 'head_dim'), (dict(redundant='jet'), 'redundant'),
                                       (dict(detail_layers=2), 'detail_layers'), (dict(detail_layers=-1, coupling=8), 'detail_layers'),
                                       (dict(detail_layers=1, coupling=8, d_I=3), 'detail_layers'),
                                       (dict(basis='haar', image_shape=(1, 6, 6), patch=3), 'power of 2'),
                                       (dict(basis='haar2'), 'Haar levels'), (dict(basis='haar0'), 'Haar levels'),
                                       (dict(basis='haar1', patch=1, d_I=1), 'Haar levels'),
                                       (dict(basis='wavelet'), 'basis')])
def test_bad_coupling_depth_or_redundant_is_refused(kw, match):
    """A context coupling without a width, a negative depth, a width not a multiple of head_dim, an unknown prior; detail
    couplings without a coupling width, a negative count, fewer than 2 redundant channels; a Haar basis on a patch size
    that is not a power of 2, more Haar levels than the patch has (patch 2: one) or none, an unknown basis: ValueError."""
    with pytest.raises(ValueError, match=match): get_config('farmer-tiny', **kw)


@pytest.mark.parametrize('n_blocks', [1, 2, 3, 4, 8])
def test_final_permute_matters_for_every_number_of_blocks(n_blocks):
    "final_permute=True: the AR reads opposite to the last AF block; False: in its direction; the same weights give other NLLs."
    on = make_farmer(mixing=False, n_blocks=n_blocks, final_permute=True)
    off = make_farmer(mixing=False, n_blocks=n_blocks, final_permute=False)
    off.load_state_dict(on.state_dict())
    assert on.final_reverse == (not on.flow.blocks[-1].reverse) and off.final_reverse == on.flow.blocks[-1].reverse
    assert (on.nll(images(), LABELS) - off.nll(images(), LABELS)).abs().min() > 1e-6


def test_final_permute_true_keeps_shipped_checkpoint():
    "The pretrained fmnist-small (8 blocks, final_permute=True) reads its latent unreversed, as it was trained."
    from farmer_nb.model import load_pretrained
    m = load_pretrained()
    assert m.cfg.n_blocks == 8 and m.cfg.final_permute and not m.final_reverse


def test_single_gaussian_prior_is_one_more_affine_block():
    "K_I = 1, d_I = d: NLL = Gaussian NLL of u = (Z − μ)/σ with log-det = flow log-det − Σ log σ (= autograd's, X → u)."
    m = make_farmer(n_blocks=4, K_I=1, d_I=4)
    assert m.prior.head_R is None and m.prior.d_R == 0
    y = images(B=3, seed=1)
    labels = torch.tensor([0, 2, 4])                                                 # 4: the null label
    X = patchify(y, m.cfg.patch)

    def u_of(x, c):
        z_I, _, logdet = m.latent(x)
        g, _ = m.prior(z_I, c)
        mu, log_sigma = g.mu[:, :, 0], g.log_sigma[:, :, 0]                          # the single component
        return (z_I - mu) * torch.exp(-log_sigma), logdet - log_sigma.sum((1, 2))

    u, logdet = u_of(X, labels)
    gauss = -0.5 * (u ** 2 + math.log(2 * math.pi)).sum((1, 2))
    torch.testing.assert_close(m.nll(y, labels, validate=False).detach(), (-(gauss + logdet) / m.cfg.D).detach(),
                               rtol=0, atol=1e-12)
    for b in range(3):
        J = torch.autograd.functional.jacobian(lambda x: u_of(x, labels[b:b + 1])[0].flatten(), X[b:b + 1])
        ld = torch.linalg.slogdet(J.reshape(16, 16)).logabsdet
        assert ld.item() == pytest.approx(logdet[b].item(), abs=1e-10)


@pytest.mark.parametrize('mixing', [False, True])
def test_prior_gradient_reaches_every_flow_block(mixing):
    "The prior's log-prob alone back-propagates through Z into every parameter of every flow block (and the mixing)."
    m = make_farmer(mixing=mixing, n_blocks=3)
    z_I, z_R, _ = m.latent(patchify(images(), m.cfg.patch))
    m.prior.log_prob(z_I, z_R, LABELS).sum().backward()
    for t, blk in enumerate(m.flow.blocks):
        for name, p in blk.named_parameters():
            assert p.grad is not None and p.grad.abs().max() > 0, f"block {t}: {name} gets no gradient"
    if mixing:
        for name, p in m.mixing.named_parameters():
            assert p.grad is not None and p.grad.abs().max() > 0, f"mixing.{name} gets no gradient"


def test_flow_is_unconditional_but_nll_depends_on_labels():
    "The AF inside Farmer ignores labels (no class embedding, same Z); the prior makes the NLL label-dependent."
    m = make_farmer()
    assert all(blk.class_emb is None for blk in m.flow.blocks)
    assert list(inspect.signature(m.latent).parameters) == ['X']
    y = images()
    X = patchify(y, m.cfg.patch)
    with torch.no_grad():
        z1, ld1 = m.flow(X, LABELS)
        z2, ld2 = m.flow(X, torch.tensor([0, 0]))
        assert torch.equal(z1, z2) and torch.equal(ld1, ld2)
        a, b, null = m.nll(y, LABELS), m.nll(y, torch.tensor([0, 0])), m.nll(y, None)
    assert (a != b).all() and (a != null).all()


def test_label_drop_near_one_gives_null_label_nll():
    "With label_drop close to 1 every label is replaced by the null label: the NLL equals nll(y, None)."
    m = make_farmer()
    y = images(B=4)
    with torch.no_grad():
        dropped = m.nll(y, torch.tensor([0, 1, 2, 3]), label_drop=1 - 1e-9)
        null, cond = m.nll(y, None), m.nll(y, torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(dropped, null, rtol=0, atol=0)
    assert (cond != null).all()


def test_label_drop_half_draws_null_labels_at_that_rate():
    "label_drop = 0.5 replaces about half the labels (binomial, 4σ) by the null label, the rest stay conditional."
    m = make_farmer()
    B = 400
    y = images(B=1).expand(B, -1, -1, -1)
    torch.manual_seed(0)
    with torch.no_grad():
        out = m.nll(y, torch.zeros(B, dtype=torch.long), label_drop=0.5)
        cond, null = m.nll(y[:1], torch.tensor([0])).item(), m.nll(y[:1], None).item()
    is_null, is_cond = (out - null).abs() < 1e-12, (out - cond).abs() < 1e-12
    assert abs(cond - null) > 1e-6 and (is_null ^ is_cond).all()
    assert abs(is_null.double().mean().item() - 0.5) < 4 * math.sqrt(0.25 / B)


def test_randomize_model_randomizes_head_logits_and_scales():
    "After randomize_model_, the informative mixtures' logits and scales vary with the context (the heads are randomized)."
    torch.manual_seed(0)
    m = randomize_model_(Farmer(get_config('farmer-tiny')), std=0.2)
    z_I = torch.randn(2, m.cfg.N, m.cfg.d_I)
    with torch.no_grad(): g, _ = m.prior(z_I, torch.tensor([0, 1]))
    assert (g.logits != g.logits[:1, :1]).any() and (g.log_sigma != g.log_sigma[:1, :1]).any()


# --- latent round trip and sampling -------------------------------------------------------------

@pytest.mark.parametrize('mixing, final_permute, split, redundant', [
    (False, True, 'contiguous', 'gmm'), (True, True, 'strided', 'gmm'),
    (True, False, 'contiguous', 'normal'), (False, False, 'strided', 'normal')])
def test_sample_latent_round_trips_through_the_flow(mixing, final_permute, split, redundant):
    "latent(flow.inverse(sample_latent)) recovers the prior's (Z^I, Z^R): merge/split, permutation and mixing are inverses."
    m = make_farmer(std=0.1, dtype=torch.float32, image_shape=(1, 8, 8), mixing=mixing, final_permute=final_permute,
                    split=split, redundant=redundant)
    c = torch.tensor([0, 3, 4])
    z_I, z_R = m.prior.sample(c, generator=torch.Generator().manual_seed(7))
    Z = m.sample_latent(c, 3, generator=torch.Generator().manual_seed(7))
    assert Z.shape == (3, m.cfg.N, m.cfg.d)
    with torch.no_grad(): r_I, r_R, _ = m.latent(m.flow.inverse(Z))
    torch.testing.assert_close(r_I, z_I, rtol=0, atol=1e-4)
    torch.testing.assert_close(r_R, z_R, rtol=0, atol=1e-4)


@pytest.fixture(scope='module')
def sampler():
    return make_farmer(std=0.05, dtype=torch.float32, image_shape=(1, 8, 8), n_blocks=2)


def test_sample_shape_dtype_and_reproducibility(sampler):
    "sample(labels) returns uint8 images (B, C, H, W), identical for equally seeded generators."
    labels = torch.tensor([0, 1, 2])
    a = sampler.sample(labels, generator=torch.Generator().manual_seed(0))
    b = sampler.sample(labels, generator=torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.shape == (3, 1, 8, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, sampler.sample(labels, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize('n', [None, 0, 2.0])
def test_unconditional_sampling_needs_n(sampler, n):
    "Without labels, sample() requires a positive int n."
    with pytest.raises(ValueError, match='n:'):
        sampler.sample(None, n=n)


def test_unconditional_sampling_and_temperature_keywords(sampler):
    "sample(n=…) works without labels, and T_pi / T_sigma / gamma are accepted."
    g = lambda: torch.Generator().manual_seed(0)
    x = sampler.sample(n=2, generator=g())
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.uint8
    y = sampler.sample(torch.tensor([1, 2]), generator=g(), T_pi=2.0, T_sigma=0.5, gamma=0.0)
    assert y.shape == (2, 1, 8, 8) and y.dtype == torch.uint8
    assert not torch.equal(y, sampler.sample(torch.tensor([1, 2]), generator=g()))   # the keywords take effect


def test_unconditional_model_samples():
    "A model with num_classes = 0 samples from its (single, null) class with labels=None."
    m = make_farmer(dtype=torch.float32, num_classes=0)
    x = m.sample(n=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 4, 4) and x.dtype == torch.uint8
    assert torch.isfinite(m.nll(images(dtype=torch.float32))).all()


# --- channel mixing and split -------------------------------------------------------------------

def random_mixing(d=4, seed=0):
    torch.manual_seed(seed)
    mix = ChannelMixing(d).double()
    with torch.no_grad():
        for p in mix.parameters(): p.normal_(0, 0.5)
    return mix


def test_mixing_identity_at_init():
    "A fresh ChannelMixing is the identity with zero log-det."
    mix = ChannelMixing(5)
    z = torch.randn(2, 3, 5)
    out, ld = mix(z)
    assert torch.equal(out, z) and torch.equal(ld, torch.zeros(2))


def test_mixing_inverse_and_logdet_match_autograd():
    "ChannelMixing.inverse undoes forward, and its log-det equals slogdet of the autograd Jacobian (all N tokens)."
    mix = random_mixing()
    z = torch.randn(2, 3, 4, dtype=torch.float64)
    out, ld = mix(z)
    torch.testing.assert_close(mix.inverse(out), z, rtol=0, atol=1e-12)
    J = torch.autograd.functional.jacobian(lambda x: mix(x)[0].flatten(), z[:1]).reshape(12, 12)
    assert ld.shape == (2,) and ld[0].item() == pytest.approx(torch.linalg.slogdet(J).logabsdet.item(), abs=1e-12)
    assert ld[0].item() == ld[1].item() and abs(ld[0].item()) > 0.1
    torch.testing.assert_close(J[:4, :4], mix.weight(), rtol=0, atol=1e-14)           # one W per token


SPLITS = [(4, 2, 'contiguous'), (4, 2, 'strided'), (4, 4, 'strided'), (4, 1, 'contiguous'), (7, 3, 'strided'),
          (16, 5, 'strided'), (192, 128, 'strided'), (768, 128, 'contiguous'), (768, 128, 'strided')]


@pytest.mark.parametrize('d, d_I, mode', SPLITS)
def test_split_indices_partition(d, d_I, mode):
    "split_indices gives d_I sorted informative indices and the sorted rest: together a partition of range(d)."
    idx_I, idx_R = split_indices(d, d_I, mode)
    assert len(idx_I) == d_I and len(idx_R) == d - d_I
    assert sorted(torch.cat([idx_I, idx_R]).tolist()) == list(range(d))
    assert torch.equal(idx_I, idx_I.sort().values) and torch.equal(idx_R, idx_R.sort().values)
    if mode == 'contiguous': assert torch.equal(idx_I, torch.arange(d_I))
    else: assert torch.equal(idx_I, torch.arange(d_I) * d // d_I)                 # spread evenly from 0


@pytest.mark.parametrize('d, d_I, mode', SPLITS)
def test_channel_split_merge_round_trip(d, d_I, mode):
    "ChannelSplit.merge(split(z)) = z, and split(merge(z_I, z_R)) = (z_I, z_R)."
    cs = ChannelSplit(d, d_I, mode)
    z = torch.randn(2, 3, d)
    assert torch.equal(cs.merge(*cs.split(z)), z)
    z_I, z_R = torch.randn(2, 3, d_I), torch.randn(2, 3, d - d_I)
    a, b = cs.split(cs.merge(z_I, z_R))
    assert torch.equal(a, z_I) and torch.equal(b, z_R)


@pytest.mark.parametrize('d, d_I, mode, match', [(4, 0, 'contiguous', 'd_I'), (4, 5, 'strided', 'd_I'),
                                                 (4, -1, 'contiguous', 'd_I'), (4, 2, 'random', 'mode')])
def test_split_indices_rejects_bad_arguments(d, d_I, mode, match):
    "d_I outside [1, d] and unknown modes raise ValueError naming the argument."
    with pytest.raises(ValueError, match=match):
        split_indices(d, d_I, mode)


# --- configs and presets ------------------------------------------------------------------------

BAD_CONFIGS = [  # (id, overrides of 'farmer-tiny' (d = 4, head_dim 16), exception, field named in the message)
    ('d_I > d', dict(d_I=5), ValueError, 'FarmerConfig.d_I'),
    ('d_I = 0', dict(d_I=0), ValueError, 'FarmerConfig.d_I'),
    ('K_I = 0', dict(K_I=0), ValueError, 'FarmerConfig.K_I'),
    ('K_R = 0', dict(K_R=0), ValueError, 'FarmerConfig.K_R'),
    ('M = 0', dict(M=0), ValueError, 'FarmerConfig.M'),
    ('ar_depth = 0', dict(ar_depth=0), ValueError, 'FarmerConfig.ar_depth'),
    ('ar_width % head_dim', dict(ar_width=40), ValueError, 'ar_width'),
    ('unknown split', dict(split='random'), ValueError, 'FarmerConfig.split'),
    ('unknown redundant', dict(redundant='jet'), ValueError, 'FarmerConfig.redundant'),
    ('mixing str', dict(mixing='yes'), TypeError, 'FarmerConfig.mixing'),
    ('mixing int', dict(mixing=1), TypeError, 'FarmerConfig.mixing'),
    ('d_I float', dict(d_I=2.0), TypeError, 'FarmerConfig.d_I'),
    ('final_permute None', dict(final_permute=None), TypeError, 'FarmerConfig.final_permute'),
]


@pytest.mark.parametrize('overrides, exc, field', [b[1:] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS])
def test_config_validation(overrides, exc, field):
    "Invalid FarmerConfig fields raise the right exception with a message naming the field."
    with pytest.raises(exc, match=re.escape(field)):
        get_config('farmer-tiny', **overrides)


FARMER_PRESETS = ['fmnist-small', 'fmnist-cmp', 'fmnist-base', 'farmer-tiny', 'imagenet256-p16', 'imagenet256-p8']


@pytest.mark.parametrize('name', FARMER_PRESETS)
def test_presets_build_valid_configs(name):
    "Every FARMER preset builds a FarmerConfig with 1 <= d_I <= d and ar_width a multiple of head_dim."
    cfg = get_config(name)
    assert isinstance(cfg, FarmerConfig) and PRESETS[name][0] is FarmerConfig
    assert 1 <= cfg.d_I <= cfg.d and cfg.ar_width % cfg.head_dim == 0
    assert cfg.D == cfg.N * cfg.d == math.prod(cfg.image_shape)


@pytest.mark.parametrize('name, N, d', [('imagenet256-p16', 256, 768), ('imagenet256-p8', 1024, 192),
                                        ('fmnist-small', 49, 16), ('farmer-tiny', 16, 4)])
def test_preset_sizes(name, N, d):
    "Presets have the expected token count N and token size d; ImageNet presets keep d_I = 128 < d."
    cfg = get_config(name)
    assert (cfg.N, cfg.d) == (N, d)
    if name.startswith('imagenet'): assert cfg.d_I == 128 < cfg.d


def test_fmnist_cmp_matches_tarflow_parameter_count():
    "The 'fmnist-cmp' Farmer has within 10% of the parameters of the 'tarflow-fmnist' GaussianFlow."
    count = lambda m: sum(p.numel() for p in m.parameters())
    farmer, tarflow = count(Farmer(get_config('fmnist-cmp'))), count(GaussianFlow(get_config('tarflow-fmnist')))
    assert abs(farmer / tarflow - 1) < 0.10


# --- checkpoints --------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    "save_model/load_model restore a Farmer: class, config and an identical state dict (and the same NLL)."
    m = make_farmer(dtype=torch.float32, mixing=True, split='strided')
    path = save_model(m, tmp_path / 'farmer.safetensors')
    r = load_model(path, expect_config=m.cfg)
    assert type(r) is Farmer and r.cfg == m.cfg
    a, b = m.state_dict(), r.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    y = images(dtype=torch.float32)
    with torch.no_grad(): torch.testing.assert_close(r.eval().nll(y, LABELS), m.nll(y, LABELS), rtol=0, atol=0)


def test_load_refuses_other_config(tmp_path):
    "load_model with expect_config from a different config raises ValueError naming the differing field."
    m = make_farmer(dtype=torch.float32)
    path = save_model(m, tmp_path / 'farmer.safetensors')
    other = get_config('farmer-tiny', image_shape=(1, 4, 4), n_blocks=3, K_I=5)
    with pytest.raises(ValueError, match='K_I'):
        load_model(path, expect_config=other)


# --- training -----------------------------------------------------------------------------------

def test_fit_lowers_the_loss():
    "fit() on SyntheticImages (8×8, 4 classes) with 'farmer-tiny' lowers the NLL within 30 steps."
    ds = SyntheticImages(n=256, size=8, num_classes=4)
    torch.manual_seed(0)
    m = Farmer(get_config('farmer-tiny'))
    y = dequantize(ds.images[:128], 'center')
    with torch.no_grad(): before = m.nll(y, ds.labels[:128]).mean().item()
    out = fit(m, ds.images, ds.labels, epochs=10, batch_size=32, max_steps=30, noise='uniform', log_every=10,
              progress=False)
    with torch.no_grad(): after = m.nll(y, ds.labels[:128]).mean().item()
    assert out['steps'] == 30 and out['skipped'] == 0
    losses = [e['loss'] for e in out['log']]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.3
    assert after < before - 0.5


def test_detail_flow_under_bf16_autocast_is_fp32_and_inverts():
    "The couplings among Z^R's channels: under CPU bf16 autocast z and log-det are fp32, close to fp32, and the inverse holds."
    from farmer_nb.split import DetailFlow
    torch.manual_seed(0)
    df = DetailFlow(N=4, d_I=6, d_R=20, layers=4, hidden=32)
    with torch.no_grad():
        for mlp in df.mlp: mlp[-1].weight.normal_(0, 0.05)
    z_I, z_R = torch.randn(3, 4, 6), torch.randn(3, 4, 20)
    ref, ld_ref = df(z_I, z_R)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        z, ld = df(z_I, z_R)
        back = df.inverse(z_I, z)
    assert z.dtype == ld.dtype == back.dtype == torch.float32
    torch.testing.assert_close(z, ref, rtol=0, atol=0.1)            # the MLPs run in bf16, the affine maps in fp32
    torch.testing.assert_close(ld, ld_ref, rtol=0, atol=0.5)
    torch.testing.assert_close(back, z_R, rtol=0, atol=1e-5)      # same bf16 parameters both ways: the inverse is exact


def test_detail_flow_indices_move_with_the_model():
    "DetailFlow's channel indices are buffers: on a GPU, indexing with host tensors would wait for the device at every layer."
    from farmer_nb.split import DetailFlow
    df = DetailFlow(N=2, d_I=3, d_R=7, layers=4, hidden=8)
    idx = {n: b for n, b in df.named_buffers()}
    assert len(idx) == 8 and all(b.dtype == torch.long for b in idx.values())
    assert sorted(torch.cat(df.halves(3)).tolist()) == list(range(7))
    assert all(b.device.type == 'meta' for b in df.to('meta').buffers())
