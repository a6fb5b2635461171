"Tests of farmer_nb.model: input checks, likelihoods, sampling and checkpoints."
import copy, json, math, os

import pytest
import torch

import safetensors.torch
from safetensors import safe_open

from farmer_nb.data import SyntheticImages, dequantize, quantize, unpatchify
from farmer_nb.flow import randomize_
from farmer_nb.metrics import evaluate_bpd
from farmer_nb.model import Farmer, GaussianFlow, GaussianFlowConfig, get_config, load_model, save_model


def tiny(num_classes=4, seed=0, std=0.1, **kw):
    "The 'tarflow-tiny' model (1×8×8 images, patch 2: N = 16, d = 4) with random weights."
    torch.manual_seed(seed)
    m = GaussianFlow(get_config('tarflow-tiny', num_classes=num_classes, **kw))
    if std: randomize_(m.flow, std=std, seed=seed)
    return m.eval()


@pytest.fixture(scope='module')
def models():
    return dict(cond=tiny(), uncond=tiny(num_classes=0))


PIX = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)       # a valid uint8 batch
Y = torch.zeros(2, 1, 8, 8)                             # a valid float batch
L = torch.tensor([0, 3])                                # valid labels

BAD_INPUTS = [  # (id, call on the models dict, exception, message substring naming the argument)
    ('rank 3', lambda m: m['cond'].nll(torch.zeros(2, 8, 8)), ValueError, 'y: expected images of shape (B, C, H, W), got rank 3'),
    ('rank 5', lambda m: m['cond'].bits_per_dim(PIX[None]), ValueError, 'x: expected images of shape (B, C, H, W), got rank 5'),
    ('channels', lambda m: m['cond'].nll(torch.zeros(2, 3, 8, 8)), ValueError, 'y: expected images (B, C, H, W) with (C, H, W) = (1, 8, 8), got (3, 8, 8)'),
    ('image size', lambda m: m['cond'].nll(torch.zeros(2, 1, 16, 16)), ValueError, 'y: expected images (B, C, H, W) with (C, H, W) = (1, 8, 8)'),
    ('image size bpd', lambda m: m['cond'].bits_per_dim(torch.zeros(2, 1, 8, 4, dtype=torch.uint8)), ValueError, 'x: expected images'),
    ('uint8 to nll', lambda m: m['cond'].nll(PIX), TypeError, 'y: expected float images in [-1, 1], got torch.uint8 (use dequantize()'),
    ('float to bits_per_dim', lambda m: m['cond'].bits_per_dim(Y), TypeError, 'x: expected uint8 pixels 0..255, got torch.float32'),
    ('0..255 floats', lambda m: m['cond'].nll(torch.full((2, 1, 8, 8), 255.0)), ValueError, "y: expected values in the model's [-1, 1] range"),
    ('NaN pixel', lambda m: m['cond'].nll(Y.clone().index_fill_(3, torch.tensor([2]), float('nan'))), ValueError, 'y: contains NaN or Inf'),
    ('Inf pixel', lambda m: m['cond'].nll(Y.clone().index_fill_(2, torch.tensor([5]), float('inf'))), ValueError, 'y: contains NaN or Inf'),
    ('label too big', lambda m: m['cond'].nll(Y, torch.tensor([0, 4])), ValueError, 'labels: expected values in [0, 4), got [0, 4]'),
    ('label negative', lambda m: m['cond'].bits_per_dim(PIX, torch.tensor([-1, 0])), ValueError, 'labels: expected values in [0, 4)'),
    ('float labels', lambda m: m['cond'].nll(Y, torch.tensor([0.0, 1.0])), TypeError, 'labels: expected integer class indices'),
    ('label batch size', lambda m: m['cond'].nll(Y, torch.tensor([0, 1, 2])), ValueError, 'labels: expected shape (2,), got (3,)'),
    ('labels not a tensor', lambda m: m['cond'].nll(Y, [0, 1]), TypeError, 'labels: expected a torch.Tensor'),
    ('empty batch nll', lambda m: m['cond'].nll(torch.zeros(0, 1, 8, 8)), ValueError, 'y: empty batch'),
    ('empty batch bpd', lambda m: m['cond'].bits_per_dim(PIX[:0]), ValueError, 'x: empty batch'),
    ('labels to unconditional', lambda m: m['uncond'].nll(Y, L), ValueError, 'labels: this model is unconditional (num_classes=0)'),
    ('sample labels out of range', lambda m: m['cond'].sample(torch.tensor([5])), ValueError, 'labels: expected values in [0, 4)'),
    ('sample int label', lambda m: m['cond'].sample(3), TypeError, 'labels: expected a torch.Tensor of class indices (B,), got int; e.g. torch.tensor([3])'),
    ('sample 0-d label', lambda m: m['cond'].sample(torch.tensor(3)), ValueError,
     'labels: expected shape (B,), got (); one label? labels[None]'),
    ('sample list labels', lambda m: m['cond'].sample([0, 1]), TypeError, 'got list; torch.as_tensor(labels)'),
    ('sample column of labels', lambda m: m['cond'].sample(torch.tensor([[0], [1]])), ValueError,
     'labels: expected shape (B,), got (2, 1); labels.flatten()'),
    ('bits/dim of int64 pixels', lambda m: m['cond'].bits_per_dim(torch.zeros(2, 1, 8, 8, dtype=torch.long)), TypeError,
     'got torch.int64 (pixels 0..255 in another integer type: x.to(torch.uint8))'),
    ('sample inverse typo', lambda m: m['cond'].sample(L, inverse='studnet'), ValueError, "inverse: expected None, 'student' or a callable, got 'studnet'"),
    ('sample float seeds', lambda m: m['cond'].sample(L, seeds=[1.5, 2]), TypeError, 'seeds: expected ints, got [1.5, 2]'),
    ('sample seeds string', lambda m: m['cond'].sample(L, seeds='ab'), ValueError, "seeds: expected 2 seeds, one per sample, got 'ab'"),
    ('half weights', lambda m: tiny().half().bits_per_dim(PIX, L), TypeError, 'model weights are torch.float16; likelihoods, sampling and training need float32'),
    ('bf16 weights sample', lambda m: tiny().to(torch.bfloat16).sample(L), TypeError, 'model weights are torch.bfloat16'),
    ('config name', lambda m: GaussianFlow('tarflow-tiny'), TypeError, "cfg: expected a GaussianFlowConfig, e.g. get_config('tarflow-fmnist'), got str; a shipped or saved model: GaussianFlow.from_pretrained('tarflow-tiny')"),
    ('config of the other model', lambda m: Farmer(get_config('tarflow-tiny')), TypeError, 'cfg: expected a FarmerConfig'),
    ('from_pretrained int', lambda m: Farmer.from_pretrained(3), TypeError, "name_or_path: expected a shipped name such as 'fmnist-small'"),
    ('sample without n', lambda m: m['uncond'].sample(), ValueError, 'n: expected a positive int when labels is None, got None'),
    ('sample n = 0', lambda m: m['uncond'].sample(n=0), ValueError, 'n: expected a positive int'),
    ('sample temperature', lambda m: m['uncond'].sample(n=1, temperature=0.0), ValueError, 'temperature: expected > 0'),
    ('unknown preset', lambda m: get_config('tarflow-huge'), ValueError, "preset: unknown 'tarflow-huge'"),
    ('unknown field', lambda m: get_config('tarflow-tiny', widht=64), ValueError, "overrides: ['widht'] are not fields"),
    ('width str', lambda m: get_config('tarflow-tiny', width='128'), TypeError, "GaussianFlowConfig.width: expected int, got str '128'"),
    ('patch float', lambda m: get_config('tarflow-tiny', patch=2.5), TypeError, 'GaussianFlowConfig.patch: expected int, got float 2.5'),
    ('depth bool', lambda m: get_config('tarflow-tiny', depth=True), TypeError, 'GaussianFlowConfig.depth: expected int, got bool'),
    ('clip str', lambda m: get_config('tarflow-tiny', clip='4'), TypeError, 'GaussianFlowConfig.clip: expected float'),
    ('patch does not divide', lambda m: get_config('tarflow-tiny', patch=3), ValueError, 'patch size 3 does not divide the image size 8×8'),
    ('width vs head_dim', lambda m: get_config('tarflow-tiny', width=40), ValueError, 'width 40 is not a multiple of head_dim 16'),
    ('n_blocks 0', lambda m: get_config('tarflow-tiny', n_blocks=0), ValueError, 'GaussianFlowConfig.n_blocks: expected >= 1, got 0'),
    ('label_drop 1', lambda m: get_config('tarflow-tiny', label_drop=1.0), ValueError, 'GaussianFlowConfig.label_drop: expected in [0, 1)'),
    ('image_shape rank', lambda m: get_config('tarflow-tiny', image_shape=(8, 8)), ValueError, 'image_shape: expected three positive ints'),
    ('num_classes < 0', lambda m: get_config('tarflow-tiny', num_classes=-1), ValueError, 'num_classes: expected >= 0'),
]


@pytest.mark.parametrize('case, call, exc, match', [pytest.param(*c, id=c[0]) for c in BAD_INPUTS])
def test_bad_inputs(models, case, call, exc, match):
    "Each bad input raises the documented exception type with a message naming the argument."
    with pytest.raises(exc) as e:
        call(models)
    assert match in str(e.value)


def test_config_derived_sizes():
    "N, d and D follow from image_shape and patch; presets load and accept int for float fields."
    cfg = get_config('tarflow-tiny', clip=3, image_shape=[3, 8, 4])
    assert cfg.image_shape == (3, 8, 4) and (cfg.N, cfg.d, cfg.D) == (8, 12, 96)
    assert get_config('tarflow-fmnist') == GaussianFlowConfig()


# ---------------------------------------------------------------- likelihoods

def test_zero_init_nll_is_standard_normal():
    "A zero-initialised model is the identity flow, so nll is the N(0, 1) NLL of y averaged per dimension."
    m = tiny(std=0)
    y = dequantize(SyntheticImages(n=6).images, generator=torch.Generator().manual_seed(0))
    expected = (0.5 * y.double()**2 + 0.5 * math.log(2 * math.pi)).flatten(1).mean(1)
    for labels in (None, torch.tensor([0, 1, 2, 3, 0, 1])):
        nll = m.nll(y, labels)
        assert nll.shape == (6,) and nll.dtype == torch.float32
        assert torch.allclose(nll.double(), expected, rtol=1e-6, atol=0)


def test_nll_fp32_matches_fp64():
    "nll in fp32 and in fp64 (model.double()) agree to 1e-6 relative on the same y."
    m = tiny(std=0.3)
    x, labels = SyntheticImages(n=8).images, torch.arange(8) % 4
    y = dequantize(x, generator=torch.Generator().manual_seed(1))
    n32 = m.nll(y, labels)
    n64 = copy.deepcopy(m).double().nll(y.double(), labels)
    assert n64.dtype == torch.float64
    assert ((n32.double() - n64).abs() / n64.abs()).max().item() < 1e-6


def test_bits_per_dim_fp32_matches_fp64():
    "bits_per_dim agrees to 1e-6 relative in fp32 and fp64 with the same dequantization noise."
    m = tiny(std=0.3)
    x, labels = SyntheticImages(n=8).images, torch.arange(8) % 4
    b32 = m.bits_per_dim(x, labels, generator=torch.Generator().manual_seed(1))
    b64 = copy.deepcopy(m).double().bits_per_dim(x, labels, generator=torch.Generator().manual_seed(1))
    assert ((b32.double() - b64).abs() / b64.abs()).max().item() < 1e-6


def test_sample_float64_model():
    "A float64 model samples like a float32 one."
    m = copy.deepcopy(tiny(num_classes=0)).double()
    assert m.sample(n=2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)


def test_bits_per_dim_is_nll_in_bits():
    "bits_per_dim(x) = (nll(y) + ln 128)/ln 2 for y the uniform dequantization drawn from the same generator."
    m = tiny()
    x, labels = SyntheticImages(n=4).images, torch.tensor([0, 1, 2, 3])
    bpd = m.bits_per_dim(x, labels, generator=torch.Generator().manual_seed(5))
    y = dequantize(x, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(bpd, (m.nll(y, labels) + math.log(128)) / math.log(2), rtol=1e-6, atol=0)


def test_evaluate_bpd():
    "evaluate_bpd averages per-image bits/dim over batches and is reproducible for a seed."
    m, ds = tiny(), SyntheticImages(n=10)
    a = evaluate_bpd(m, ds.images, ds.labels, batch_size=4, seed=3, progress=False)
    b = evaluate_bpd(m, ds.images, ds.labels, batch_size=10, seed=3, progress=False)
    assert a['n'] == 10 and a['per_image'].shape == (10,)
    assert a['bpd'] == pytest.approx(a['per_image'].mean().item(), rel=1e-12) and a['se'] > 0
    assert a['bpd'] == b['bpd']          # batching does not change the noise: one generator drawn in order


# ---------------------------------------------------------------- sampling

@pytest.mark.parametrize('num_classes', [4, 0])
def test_sample_shape_and_reproducibility(num_classes):
    "Samples are uint8 (B, C, H, W), identical for the same generator seed and different for another."
    m = tiny(num_classes=num_classes)
    kw = dict(labels=torch.tensor([0, 1, 3])) if num_classes else dict(n=3)
    s1 = m.sample(**kw, generator=torch.Generator().manual_seed(7))
    s2 = m.sample(**kw, generator=torch.Generator().manual_seed(7))
    s3 = m.sample(**kw, generator=torch.Generator().manual_seed(8))
    assert s1.shape == (3, 1, 8, 8) and s1.dtype == torch.uint8
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert m.last_redrawn == 0


def test_sample_inverts_latent():
    "A sample is quantize(unpatchify(inverse(temperature · z))) for the z drawn from the generator."
    m = tiny(num_classes=0)
    s = m.sample(n=2, temperature=0.5, generator=torch.Generator().manual_seed(1))
    z = 0.5 * torch.randn(2, 16, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, quantize(unpatchify(m.flow.inverse(z), 2, (1, 8, 8))))


def test_sample_conditional_without_labels_uses_null_label():
    "A conditional model sampled with n and no labels uses the null label."
    m = tiny()
    a = m.sample(n=2, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 16, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, quantize(unpatchify(m.flow.inverse(z, torch.tensor([4, 4])), 2, (1, 8, 8))))


# ---------------------------------------------------------------- checkpoints

def state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_round_trip(tmp_path):
    "save_model then load_model gives the same config and bit-identical tensors."
    m = tiny()
    path = save_model(m, tmp_path / 'sub' / 'm.safetensors', step=12)
    assert path == tmp_path / 'sub' / 'm.safetensors'
    m2 = load_model(path, expect_config=m.cfg)
    assert m2.cfg == m.cfg and state_equal(m, m2)
    assert sorted(p.name for p in path.parent.iterdir()) == ['m.safetensors']          # no temp file left


def test_checkpoint_is_plain_safetensors(tmp_path):
    "The file is a plain safetensors file: safe_open reads every tensor and the metadata holds the config JSON."
    m = tiny()
    path = save_model(m, tmp_path / 'm.safetensors', note='hello')
    with safe_open(str(path), framework='pt') as f:
        meta = f.metadata()
        assert set(f.keys()) == set(m.state_dict())
        for k, v in m.state_dict().items(): assert torch.equal(f.get_tensor(k), v)
    assert json.loads(meta['config']) == json.loads(json.dumps(m.cfg.__dict__))
    assert meta['class'] == 'GaussianFlow' and meta['note'] == 'hello' and len(meta['sha256']) == 64


def test_checkpoint_config_mismatch(tmp_path):
    "Loading with a different expected config is refused, naming the differing field and both values."
    path = save_model(tiny(), tmp_path / 'm.safetensors')
    with pytest.raises(ValueError, match="checkpoint is from another config") as e:
        load_model(path, expect_config=get_config('tarflow-tiny', depth=2))
    assert 'depth: expected 2, checkpoint has 1' in str(e.value)


@pytest.mark.parametrize('where', [-1, -1000, 'middle'])
def test_checkpoint_bit_flip_detected(tmp_path, where):
    "Flipping one bit in the tensor data is caught by the checksum: a ValueError saying the file is corrupted."
    path = save_model(tiny(), tmp_path / 'm.safetensors')
    raw = bytearray(path.read_bytes())
    i = len(raw) // 2 if where == 'middle' else len(raw) + where
    raw[i] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match='checksum mismatch: the file is corrupted or was modified'):
        load_model(path)


def test_checkpoint_header_corruption_detected(tmp_path):
    "Damage in the JSON header makes a ValueError, not a crash or a silently wrong model."
    path = save_model(tiny(), tmp_path / 'm.safetensors')
    raw = bytearray(path.read_bytes())
    raw[9] = ord('!')                                                              # inside the JSON header
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match='not a readable safetensors checkpoint'):
        load_model(path)


@pytest.mark.parametrize('keep', [0, 5, 100, -10])
def test_checkpoint_truncated_detected(tmp_path, keep):
    "A truncated file is detected with a ValueError saying it may be truncated."
    path = save_model(tiny(), tmp_path / 'm.safetensors')
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep >= 0 else raw[:keep])
    with pytest.raises(ValueError, match=r'not a readable safetensors checkpoint \(truncated or corrupted\?\)'):
        load_model(path)


@pytest.mark.parametrize('key', ['config', 'sha256', 'format'])
def test_checkpoint_extra_cannot_clobber_reserved_metadata(tmp_path, key):
    "An extra metadata string named like a reserved key is refused at save time, and nothing is written."
    with pytest.raises(ValueError, match='reserved metadata keys'):
        save_model(tiny(), tmp_path / 'm.safetensors', **{key: 'user value'})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_foreign_file(tmp_path):
    "A safetensors file not written by save_model is refused; a missing file is a FileNotFoundError."
    safetensors.torch.save_file({'w': torch.zeros(2)}, str(tmp_path / 'other.safetensors'))
    with pytest.raises(ValueError, match='not a farmer_nb model checkpoint'):
        load_model(tmp_path / 'other.safetensors')
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / 'missing.safetensors')


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    "A write that dies half-way leaves the previous checkpoint loadable and no temp file behind."
    old, new = tiny(seed=0), tiny(seed=1)
    path = save_model(old, tmp_path / 'm.safetensors')

    def crash(tensors, filename, metadata=None):
        with open(filename, 'wb') as f: f.write(b'\x08\x00\x00\x00\x00\x00\x00\x00{"__')   # partial file
        raise OSError('disk full')
    monkeypatch.setattr(safetensors.torch, 'save_file', crash)
    with pytest.raises(OSError, match='disk full'):
        save_model(new, path)
    assert os.listdir(tmp_path) == ['m.safetensors']
    assert state_equal(load_model(path), old)


def test_sample_progress_counts_the_sequential_steps(capsys):
    "model.sample(progress=True) draws a bar over its sequential steps: N − 1 per flow block, N + 1 for the prior."
    from farmer_nb.model import Farmer, sampling_progress
    m = Farmer(get_config('farmer-tiny')).eval()
    with sampling_progress(m) as bar:
        m.sample(torch.tensor([0, 1]))
    assert bar.n == bar.total == m.cfg.n_blocks * (m.cfg.N - 1) + m.cfg.N + 1
    images = m.sample(torch.tensor([0, 1]), progress=True, seeds=[1, 2])
    assert 'sampling' in capsys.readouterr().err
    assert torch.equal(images, m.sample(torch.tensor([0, 1]), seeds=[1, 2]))     # same images
    assert all(not net._forward_hooks for net in [m.prior.transformer, *(b.transformer for b in m.flow.blocks)])
