"Tests of farmer_nb.metrics: Fréchet distance, KID, PRDC, the feature networks, class mix, stripe score, sample_quality, evaluate_bpd."
import importlib.resources
import json
import math
from pathlib import Path

import pytest
import torch

from farmer_nb.data import SyntheticImages
from farmer_nb.flow import randomize_
from farmer_nb.metrics import (FeatureNet, class_samples, evaluate_bpd, feature_net_name, frechet_distance, kid,
                               load_feature_net, matched_subset, predict, prdc, sample_quality, stripe_profile,
                               stripe_score, train_feature_net)
from farmer_nb.model import Farmer, get_config, write_tensors

FMNIST = Path('/usr/share/datasets/fashion-mnist')
HAVE_FMNIST = (FMNIST/'t10k-images-idx3-ubyte.gz').exists() and (FMNIST/'t10k-labels-idx1-ubyte.gz').exists()
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason=f"Fashion-MNIST test split not in {FMNIST}")
ASSETS = importlib.resources.files('farmer_nb')/'assets'
ASSET = Path(str(ASSETS/'fmnist_classifier.safetensors'))
EMOJI_ASSET = Path(str(ASSETS/'emoji64_classifier.safetensors'))
EPS64 = torch.finfo(torch.float64).eps


def gen(seed): return torch.Generator().manual_seed(seed)


def gauss(n, mu, sigma, seed):
    "n float64 samples of N(mu, diag(sigma²)): (n, k)."
    mu, sigma = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
    return mu + sigma * torch.randn(n, len(mu), generator=gen(seed), dtype=torch.float64)


def fd_closed_form(mu1, s1, mu2, s2, n):
    "Fréchet distance of two diagonal Gaussians, the delta-method standard error of its estimate from n + n samples, and its O(1/n) bias."
    mu1, s1, mu2, s2 = (torch.as_tensor(v, dtype=torch.float64) for v in (mu1, s1, mu2, s2))
    fd = ((mu1 - mu2) ** 2 + (s1 - s2) ** 2).sum()
    var = (4 * (mu1 - mu2) ** 2 * (s1 ** 2 + s2 ** 2) / n + 2 * (s1 - s2) ** 2 * (s1 ** 2 + s2 ** 2) / n).sum()
    bias = (1.5 * (s1 ** 2 + s2 ** 2) / n).sum()
    return fd.item(), var.sqrt().item(), bias.item()


def fd_numerical_tol(f):
    "Round-off bound of the eigenvalue-based trace term: k·sqrt(eps)·‖Σ‖₂ (square roots of tiny eigenvalues)."
    S = torch.cov(torch.as_tensor(f, dtype=torch.float64).T)
    return f.shape[1] * math.sqrt(EPS64) * torch.linalg.matrix_norm(S, 2).item()


def shapes28(n, seed, num_classes=3):
    "Synthetic uint8 images (n, 1, 28, 28) in `num_classes` classes (a jittered bright square at a class-specific place) and labels."
    g = gen(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    x = 40 * torch.rand(n, 1, 28, 28, generator=g)
    corners = [(3, 3), (17, 17), (3, 17), (17, 3)]
    jitter = torch.randint(-2, 3, (n, 2), generator=g)
    for i in range(n):
        r, c = corners[labels[i]]; r, c = r + jitter[i, 0], c + jitter[i, 1]
        x[i, 0, r:r + 8, c:c + 8] += 180
    return x.round().clamp(0, 255).to(torch.uint8), labels


@pytest.fixture(scope='module')
def fmnist_test():
    from farmer_nb.data import FashionMNIST
    return FashionMNIST('test', root=str(FMNIST), download=False)


@pytest.fixture(scope='module')
def net(): return load_feature_net()


# ---------------------------------------------------------------- Fréchet distance

def test_fd_identical_sets_zero_and_symmetric():
    "FD(a, a) = 0 up to round-off; FD(a, b) = FD(b, a) and > 0 for different sets."
    a, b = gauss(500, [0, 1, 2], [1, 2, 0.5], 0), gauss(400, [0.5, 1, 2], [1, 1, 1], 1)
    assert abs(frechet_distance(a, a)) <= fd_numerical_tol(a)
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert ab > 0.1 and ab == pytest.approx(ba, rel=1e-9)


def test_fd_diagonal_gaussians_closed_form():
    "For diagonal Gaussians FD ≈ |μ1−μ2|² + Σ(σ1−σ2)² within 5 standard errors plus the O(1/n) bias (n = 20000, k = 4)."
    n, mu1, s1, mu2, s2 = 20000, [0, 0, 0, 0], [1, 2, 0.5, 1], [1, -0.5, 0.25, 0], [1.5, 1, 0.5, 3]
    fd, se, bias = fd_closed_form(mu1, s1, mu2, s2, n)
    est = frechet_distance(gauss(n, mu1, s1, 0), gauss(n, mu2, s2, 1))
    assert fd == 6.5625 and abs(est - fd) < 5 * se + bias


def test_fd_one_dimensional_via_embedding():
    "1-D sets embedded as (n, 2) with a constant second feature: FD ≈ |μ1−μ2|² + (σ1−σ2)² within 5 SE + bias."
    n = 20000
    fd, se, bias = fd_closed_form([0.5], [1.0], [-1.0], [2.0], n)
    a, b = gauss(n, [0.5, 0.0], [1.0, 0.0], 0), gauss(n, [-1.0, 0.0], [2.0, 0.0], 1)
    assert fd == 3.25 and abs(frechet_distance(a, b) - fd) < 5 * se + bias


def test_fd_one_dimensional_features():
    "1-D feature sets (n, 1): FD ≈ |μ1−μ2|² + (σ1−σ2)² within 5 SE + bias."
    n = 20000
    fd, se, bias = fd_closed_form([0.5], [1.0], [-1.0], [2.0], n)
    assert abs(frechet_distance(gauss(n, [0.5], [1.0], 0), gauss(n, [-1.0], [2.0], 1)) - fd) < 5 * se + bias


def test_fd_invariant_to_translation_and_rotation():
    "FD is unchanged (to 1e-9 relative) by a common translation and by a common orthogonal rotation."
    a, b = gauss(600, [0, 1, 2, 3, 4], [1, 2, 0.5, 1, 1], 0), gauss(500, [1, 1, 0, 3, 4], [2, 1, 1, 0.5, 1], 1)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen(2), dtype=torch.float64))
    shift = 10 * torch.randn(5, generator=gen(3), dtype=torch.float64)
    ref = frechet_distance(a, b)
    assert frechet_distance(a + shift, b + shift) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(a @ Q.T, b @ Q.T) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize('seed', range(5))
def test_fd_non_negative(seed):
    "FD of two random sets (some nearly identical, rank-deficient) is never below −round-off."
    a = gauss(50, torch.zeros(8), torch.ones(8), seed)
    b = a + 1e-3 * torch.randn(a.shape, generator=gen(100 + seed), dtype=torch.float64) if seed % 2 else gauss(60, torch.zeros(8), torch.ones(8), 50 + seed)
    assert frechet_distance(a, b) >= -fd_numerical_tol(a)


# ---------------------------------------------------------------- KID

def test_kid_unbiased_under_the_null():
    "Over 40 independent pairs from one distribution, the mean KID is within 4 SE of 0 (a V-statistic would be ~15 SE off)."
    vals, v_stat = [], []
    for r in range(40):
        a, b = gauss(200, torch.ones(8), torch.ones(8), 2 * r), gauss(200, torch.ones(8), torch.ones(8), 2 * r + 1)
        vals.append(kid(a, b, subsets=2, subset_size=200)[0])
        x, y = a / a.pow(2).mean().sqrt(), b / a.pow(2).mean().sqrt()
        v_stat.append(((x @ x.T / 8 + 1) ** 3).mean() + ((y @ y.T / 8 + 1) ** 3).mean() - 2 * ((x @ y.T / 8 + 1) ** 3).mean())
    v, vb = torch.tensor(vals), torch.stack(v_stat)
    se = v.std().item() / math.sqrt(len(v))
    assert abs(v.mean().item()) < 4 * se
    assert (v < 0).any()                                                          # unbiased: some estimates are negative
    assert vb.mean().item() > 8 * se                                              # the test can see an O(1/m) bias


def test_kid_grows_with_mean_shift():
    "KID increases strictly with the shift between the two sets and is ≈ 0 (within 4 std) for none."
    a, b = gauss(2000, torch.zeros(8), torch.ones(8), 0), gauss(2000, torch.zeros(8), torch.ones(8), 1)
    res = [kid(a, b + s, subsets=20, subset_size=500) for s in (0.0, 0.25, 0.5, 1.0)]
    means = [m for m, _ in res]
    assert abs(means[0]) < 4 * res[0][1]
    assert all(y > x for x, y in zip(means, means[1:])) and means[1] > 4 * res[1][1]


def test_kid_invariant_to_common_rescaling():
    "Scaling both feature sets by one factor leaves KID (mean and std) unchanged: features are divided by the reference RMS."
    a, b = gauss(300, torch.zeros(6), torch.ones(6), 0), gauss(300, 0.3 * torch.ones(6), torch.ones(6), 1)
    m, s = kid(a, b, subsets=10, subset_size=100)
    for c in (1e-3, 7.0):
        mc, sc = kid(c * a, c * b, subsets=10, subset_size=100)
        assert mc == pytest.approx(m, rel=1e-9) and sc == pytest.approx(s, rel=1e-9)


# ---------------------------------------------------------------- precision / recall / density / coverage

def test_prdc_identical_sets():
    "A set against itself: precision = recall = coverage = 1 and density = 1 (each point is in exactly k balls, itself included)."
    r = torch.randn(500, 8, generator=gen(0))
    out = prdc(r, r.clone())
    assert out['precision'] == out['recall'] == out['coverage'] == 1.0
    assert out['density'] == pytest.approx(1.0, abs=1e-6)


def test_prdc_collapsed_generator():
    "Fakes collapsed near the real mode: high precision (and density), low recall and coverage."
    r = torch.randn(500, 8, generator=gen(0))
    out = prdc(r, 0.1 * torch.randn(500, 8, generator=gen(1)))
    assert out['precision'] > 0.95 and out['density'] > 1
    assert out['recall'] < 0.05 and out['coverage'] < 0.3


def test_prdc_far_away_set():
    "A disjoint, far-away fake set scores 0 on all four."
    r = torch.randn(300, 8, generator=gen(0))
    assert prdc(r, torch.randn(300, 8, generator=gen(1)) + 100) == dict(precision=0.0, recall=0.0, density=0.0, coverage=0.0)


def test_prdc_larger_k_larger_balls():
    "Radii grow with k, so precision, recall and coverage are non-decreasing in k and increase from k = 1 to 20."
    r, f = torch.randn(400, 8, generator=gen(0)), torch.randn(400, 8, generator=gen(1)) + 0.5
    outs = [prdc(r, f, k=k) for k in (1, 2, 3, 5, 10, 20)]
    for key in ('precision', 'recall', 'coverage'):
        vals = [o[key] for o in outs]
        assert all(y >= x for x, y in zip(vals, vals[1:])) and vals[-1] > vals[0], key


# ---------------------------------------------------------------- feature network

def test_feature_net_shapes(net):
    "uint8 (B, 1, 28, 28) → features (B, 128) ≥ 0 (after ReLU) and logits (B, 10)."
    x, _ = shapes28(5, 0)
    f = net.features(x)
    assert f.shape == (5, 128) and f.dtype == torch.float32 and (f >= 0).all()
    assert net(x).shape == (5, 10) and FeatureNet(num_classes=3)(x).shape == (5, 3)


def test_predict_batches_agree(net):
    "predict in batches of 7 equals one pass; probabilities sum to 1 and are softmax(logits)."
    x, _ = shapes28(30, 1)
    f1, p1 = predict(net, x, batch_size=7)
    f2, p2 = predict(net, x, batch_size=1000)
    assert f1.shape == (30, 128) and p1.shape == (30, 10)
    assert torch.allclose(f1, f2, rtol=1e-5, atol=1e-5) and torch.allclose(p1, p2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(p1.sum(1), torch.ones(30), atol=1e-6)
    with torch.no_grad(): assert torch.allclose(p2, torch.softmax(net(x), -1), atol=1e-6)


def test_load_feature_net_metadata(net):
    "The shipped network loads in eval mode and records its format, seed, epochs and a test accuracy ≥ 0.88."
    assert not net.training and net.meta['format'] == 'farmer_nb.featurenet/1'
    assert float(net.meta['test_accuracy']) >= 0.88
    assert {'seed', 'epochs', 'sha256'} <= set(net.meta)


def test_load_feature_net_refuses_bit_flip(tmp_path):
    "A copy with one bit flipped in the tensor data is refused with ValueError; an intact copy loads."
    raw = bytearray(ASSET.read_bytes())
    (tmp_path/'ok.safetensors').write_bytes(bytes(raw))
    assert isinstance(load_feature_net(tmp_path/'ok.safetensors'), FeatureNet)
    raw[-5] ^= 0x01                                                               # inside the last tensor's bytes
    (tmp_path/'bad.safetensors').write_bytes(bytes(raw))
    with pytest.raises(ValueError, match='checksum mismatch'):
        load_feature_net(tmp_path/'bad.safetensors')


@pytest.mark.parametrize('damage', ['no metadata', 'truncated'])
def test_load_feature_net_refuses_damaged_files_with_value_error(tmp_path, damage):
    "A safetensors file without metadata, or a truncated copy, is refused with ValueError like a bit flip."
    from safetensors.torch import save_file
    path = tmp_path/'net.safetensors'
    if damage == 'no metadata': save_file({k: v.contiguous() for k, v in FeatureNet().state_dict().items()}, str(path))
    else: path.write_bytes(ASSET.read_bytes()[:ASSET.stat().st_size // 2])
    with pytest.raises(ValueError):
        load_feature_net(path)


@needs_fmnist
def test_shipped_net_accuracy_matches_metadata(net, fmnist_test):
    "The recorded test accuracy is the network's actual accuracy on the 10k Fashion-MNIST test images."
    _, p = predict(net, fmnist_test.images)
    acc = (p.argmax(1) == fmnist_test.labels).double().mean().item()
    assert acc == pytest.approx(float(net.meta['test_accuracy']), abs=1e-4)


@pytest.fixture(scope='module')
def trained_tiny():
    "A FeatureNet trained for 200 steps (10 epochs × 20 batches of 32) on 3 synthetic classes."
    x, y = shapes28(640, 0)
    return train_feature_net(x, y, epochs=10, batch_size=32, lr=1e-3, seed=0, progress=False)


def test_train_feature_net_separates_classes(trained_tiny):
    "On held-out synthetic images of 3 classes the trained net is > 90% accurate (chance: 1/3), in eval mode."
    x, y = shapes28(300, 1)
    _, p = predict(trained_tiny, x)
    assert not trained_tiny.training and (p.argmax(1) == y).float().mean() > 0.9


def test_train_feature_net_deterministic():
    "Training twice with one seed gives identical weights; another seed gives different ones."
    x, y = shapes28(128, 2)
    a, b, c = (train_feature_net(x, y, epochs=1, batch_size=32, seed=s, progress=False) for s in (3, 3, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.out.weight, c.out.weight)


class OldFeatureNet(torch.nn.Module):
    "The Fashion-MNIST network as it was before the family: the reference for the shipped file's outputs."
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(64 * 7 * 7, 128)
        self.out = nn.Linear(128, 10)
    def features(self, x): return torch.relu(self.fc(self.conv(x.float() / 127.5 - 1).flatten(1)))


def test_fmnist_file_loads_with_identical_outputs(net):
    "The shipped Fashion-MNIST file (no 'arch' metadata) gives bit-identical features and logits to the original network."
    from safetensors.torch import load_file
    ref = OldFeatureNet()
    ref.load_state_dict(load_file(str(ASSET)))
    x, _ = shapes28(16, 4)
    with torch.no_grad():
        assert torch.equal(net.features(x), ref.features(x))
        assert torch.equal(net(x), ref.out(ref.features(x)))
    assert 'arch' not in net.meta and net.arch == FeatureNet().arch


def test_feature_net_default_init_unchanged():
    "With one seed, FeatureNet() initialises exactly like the original network (same parameters, same order)."
    torch.manual_seed(0); a = FeatureNet()
    torch.manual_seed(0); b = OldFeatureNet()
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_feature_net_family_shapes():
    "Colour 64×64 with four stages: features (B, 128), logits (B, 9); a wrong image shape is refused."
    net = FeatureNet(9, channels=3, size=64, widths=(16, 32, 64, 128))
    x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=gen(0))
    assert net.features(x).shape == (3, 128) and net(x).shape == (3, 9)
    assert net.fc.in_features == 128 * 4 * 4 and sum(p.numel() for p in net.parameters()) == 360873
    with pytest.raises(ValueError, match=r'\(C, H, W\) = \(3, 64, 64\)'):
        net.features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match='too small'):
        FeatureNet(size=8, widths=(8, 8, 8, 8))


def test_arch_metadata_round_trip(tmp_path):
    "A network written with its 'arch' metadata loads back (by path) with the same architecture and outputs."
    torch.manual_seed(1)
    net = FeatureNet(4, channels=3, size=16, widths=(8, 16), dim=32)
    meta = {'format': 'farmer_nb.featurenet/1', 'class': 'FeatureNet', 'arch': json.dumps(net.arch)}
    path = write_tensors(tmp_path/'net.safetensors', {k: v.contiguous() for k, v in net.state_dict().items()}, meta)
    back = load_feature_net(path=path)
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen(2))
    assert back.arch == net.arch and not back.training
    with torch.no_grad(): assert torch.equal(back(x), net.eval()(x))
    assert load_feature_net(str(path)).arch == net.arch                           # a path as the first argument


def test_load_feature_net_emoji64():
    "The shipped Emoji64 network: 3×64×64 → 128-d features and 9 logits, its metadata, a file under 2 MB."
    net = load_feature_net('emoji64')
    assert net.arch == dict(num_classes=9, channels=3, size=64, widths=[16, 32, 64, 128], dim=128)
    assert not net.training and net.meta['format'] == 'farmer_nb.featurenet/1' and net.meta['dataset'] == 'emoji64'
    assert {'seed', 'epochs', 'sha256', 'test_accuracy', 'test_accuracy_per_class'} <= set(net.meta)
    assert len(json.loads(net.meta['test_accuracy_per_class'])) == 9 and float(net.meta['test_accuracy']) > 0.7
    assert EMOJI_ASSET.stat().st_size < 2_000_000
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=gen(0))
    f, p = predict(net, x)
    assert f.shape == (4, 128) and p.shape == (4, 9)


def test_load_feature_net_names():
    "The default is 'fmnist'; feature_net_name picks by image shape; unknown names and shapes are refused."
    assert load_feature_net().arch['channels'] == 1 and load_feature_net(None).arch['size'] == 28
    assert feature_net_name((1, 28, 28)) == 'fmnist' and feature_net_name(torch.Size([3, 64, 64])) == 'emoji64'
    with pytest.raises(FileNotFoundError, match='shipped feature networks'):
        load_feature_net('emoji')
    with pytest.raises(ValueError, match='no shipped feature network'):
        feature_net_name((3, 32, 32))


def test_train_feature_net_colour_balanced():
    "Colour 16×16 images, 3 imbalanced classes: trains a matching network; balanced weights change the result."
    ds = SyntheticImages(n=192, size=16, channels=3, num_classes=3, seed=0)
    keep = (ds.labels != 2) | (torch.arange(192) % 4 == 0)                        # class 2 rare
    x, y = ds.images[keep], ds.labels[keep]
    kw = dict(epochs=2, batch_size=32, num_classes=3, widths=(8, 16), progress=False)
    a, b = train_feature_net(x, y, **kw), train_feature_net(x, y, balanced=True, **kw)
    assert a.arch == dict(num_classes=3, channels=3, size=16, widths=[8, 16], dim=128)
    assert not torch.equal(a.out.weight, b.out.weight)
    assert torch.equal(b.out.weight, train_feature_net(x, y, balanced=True, **kw).out.weight)   # deterministic
    with pytest.raises(ValueError, match='square'):
        train_feature_net(torch.zeros(64, 1, 16, 8, dtype=torch.uint8), torch.zeros(64, dtype=torch.long), **kw)


# ---------------------------------------------------------------- sample_quality

KEYS = {'n_fake', 'n_real', 'fid', 'kid', 'kid_std', 'precision', 'recall', 'density', 'coverage', 'label_entropy', 'confidence'}


def test_sample_quality_synthetic_self(net):
    "Without labels: all keys but cond_accuracy; a set against itself has FID ≈ 0 and P = R = C = 1."
    x, _ = shapes28(120, 3)
    out = sample_quality(x, x, net=net, kid_subsets=5)
    assert set(out) == KEYS and out['n_fake'] == out['n_real'] == 120
    f, p = predict(net, x)
    assert abs(out['fid']) <= fd_numerical_tol(f)
    assert out['precision'] == out['recall'] == out['coverage'] == 1.0
    assert out['confidence'] == pytest.approx(p.max(1).values.mean().item(), rel=1e-6)
    assert 0 <= out['label_entropy'] <= math.log(10) + 1e-6


@needs_fmnist
def test_sample_quality_real_self(net, fmnist_test):
    "Real test images against themselves: FID ≈ 0, P = R = C = 1 and cond_accuracy = the classifier's accuracy."
    x, y = fmnist_test.images[:2000], fmnist_test.labels[:2000]
    out = sample_quality(x, x, y, net=net, kid_subsets=5)
    assert set(out) == KEYS | {'cond_accuracy'}
    f, p = predict(net, x)
    assert abs(out['fid']) <= fd_numerical_tol(f)
    assert out['precision'] == out['recall'] == out['coverage'] == 1.0
    assert out['cond_accuracy'] == pytest.approx((p.argmax(1) == y).float().mean().item(), abs=1e-7)
    assert out['cond_accuracy'] > 0.85


@needs_fmnist
def test_sample_quality_label_entropy(net, fmnist_test):
    "A set with 50 images per predicted class has label entropy log 10; a single predicted class has 0."
    x = fmnist_test.images[:3000]
    pred = predict(net, x)[1].argmax(1)
    balanced = torch.cat([x[pred == c][:50] for c in range(10)])
    one = x[pred == 1][:100]
    assert sample_quality(balanced, x[:500], net=net, kid_subsets=2)['label_entropy'] == pytest.approx(math.log(10), abs=1e-6)
    assert sample_quality(one, x[:500], net=net, kid_subsets=2)['label_entropy'] == pytest.approx(0.0, abs=1e-6)


def test_sample_quality_stripe_key(net):
    "patch= adds only the 'stripe' key (1.0 for a set against itself); without it the keys are unchanged."
    x, _ = shapes28(60, 5)
    out = sample_quality(x, x, net=net, kid_subsets=2, patch=7)
    assert set(out) == KEYS | {'stripe'} and out['stripe'] == 1.0
    assert set(sample_quality(x, x, net=net, kid_subsets=2)) == KEYS


def test_sample_quality_default_net_by_shape():
    "Without net=, colour 64×64 images are scored with the emoji64 network (9 classes: entropy ≤ log 9)."
    x = torch.randint(0, 256, (30, 3, 64, 64), dtype=torch.uint8, generator=gen(0))
    out = sample_quality(x, x, kid_subsets=2)
    assert out['precision'] == 1.0 and out['label_entropy'] <= math.log(9) + 1e-6


# ---------------------------------------------------------------- class mix

def test_matched_subset_matches_class_counts():
    "matched_subset returns distinct indices whose labels equal `like` position by position; deterministic per seed."
    labels = torch.randint(0, 5, (400,), generator=gen(0))
    like = torch.randint(0, 5, (60,), generator=gen(1))
    idx = matched_subset(labels, like, seed=3)
    assert torch.equal(labels[idx], like) and len(set(idx.tolist())) == 60
    assert torch.equal(idx, matched_subset(labels, like, seed=3)) and not torch.equal(idx, matched_subset(labels, like, seed=4))
    with pytest.raises(ValueError, match='class 1 has 2 items, 3 wanted'):
        matched_subset(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 1]))


@pytest.fixture(scope='module')
def tiny_farmer(): return Farmer(get_config('farmer-tiny')).eval()


def test_class_samples_given_labels(tiny_farmer):
    "labels= draws one sample per label, in order; the default's labels given explicitly give the same images."
    imgs, labels = class_samples(tiny_farmer, 8, batch_size=3)
    again, lab2 = class_samples(tiny_farmer, labels=labels, batch_size=3)
    assert torch.equal(imgs, again) and torch.equal(labels, lab2)
    like = torch.tensor([3, 1, 1, 0, 2, 3, 3])
    x, y = class_samples(tiny_farmer, labels=like, batch_size=4, seed=2)
    assert x.shape == (7, 1, 8, 8) and x.dtype == torch.uint8 and torch.equal(y, like)
    with pytest.raises(ValueError, match='does not match'):
        class_samples(tiny_farmer, 5, labels=like)
    with pytest.raises(ValueError):
        class_samples(tiny_farmer, labels=torch.tensor([0, 7]))
    with pytest.raises(ValueError, match='multiple'):
        class_samples(tiny_farmer, 6)


# ---------------------------------------------------------------- stripe score

def smooth(n, seed, size=32):
    "uint8 images (n, 3, size, size) of blurred noise in [0, 200]."
    x = torch.rand(n, 3, size + 8, size + 8, generator=gen(seed))
    return (200 * torch.nn.functional.avg_pool2d(x, 9, 1) ** 2).round().to(torch.uint8)


def test_stripe_profile_by_hand():
    "A 1×1×4×4 image with p = 2: the row and column profiles are the mean squared in-patch differences."
    x = torch.tensor([[0, 1, 5, 5], [2, 1, 5, 9], [0, 0, 3, 3], [0, 4, 3, 3]], dtype=torch.float64)[None, None]
    prof = stripe_profile(x, 2)
    rows = ((x[..., 1, :] - x[..., 0, :]) ** 2).sum() + ((x[..., 3, :] - x[..., 2, :]) ** 2).sum()
    cols = ((x[..., 1] - x[..., 0]) ** 2).sum() + ((x[..., 3] - x[..., 2]) ** 2).sum()
    assert prof.shape == (2, 1) and prof[0, 0] == rows / 8 and prof[1, 0] == cols / 8


def test_stripe_profile_batches_and_pairs_across_patches():
    "Batching does not change the profile; jumps between patches (rows p−1, p) are not counted."
    x = smooth(50, 0)
    assert torch.allclose(stripe_profile(x, 8, batch_size=7), stripe_profile(x, 8), rtol=1e-12)
    border = x.clone()
    border.unflatten(2, (4, 8))[:, :, 1::2] += 40                                 # every other patch row brighter
    assert torch.allclose(stripe_profile(border, 8), stripe_profile(x, 8), rtol=1e-12)


def test_stripe_score_detects_horizontal_stripes():
    "A jump between rows 2 and 3 of every 8×8 patch scores > 2 at profile[0, 2]; all other ratios are exactly 1."
    real = smooth(64, 0)
    fake = real.clone()
    fake.unflatten(2, (4, 8))[:, :, :, 3:] += 30
    r = stripe_score(fake, real, 8)
    assert r['profile'].shape == (2, 7) and r['score'] > 2 and r['score'] == r['profile'][0, 2]
    mask = torch.ones(2, 7, dtype=torch.bool); mask[0, 2] = False
    assert torch.allclose(r['profile'][mask], torch.ones(13, dtype=torch.float64), rtol=1e-12)


def test_stripe_score_detects_vertical_stripes():
    "A jump between columns 1 and 2 of every 4×4 patch shows in the column profile."
    real = smooth(32, 1)
    fake = real.clone()
    fake.unflatten(3, (8, 4))[..., 2:] += 30
    r = stripe_score(fake, real, 4)
    assert r['score'] > 2 and r['profile'].argmax().item() == 3 + 1


def test_stripe_score_real_vs_real_near_one():
    "Two independent sets of the same kind score within 10 % of 1 at every position; a set against itself is 1."
    a, b = smooth(128, 2), smooth(128, 3)
    r = stripe_score(a, b, 8)
    assert (r['profile'] - 1).abs().max() < 0.1
    assert stripe_score(a, a, 8)['score'] == 1.0


def test_stripe_score_errors():
    "A patch size not dividing H and W, p < 2, non-image input, or mixed units are refused."
    x = smooth(4, 0)
    for p in (5, 1):
        with pytest.raises(ValueError, match='dividing'):
            stripe_profile(x, p)
    with pytest.raises(ValueError, match='B, C, H, W'):
        stripe_profile(x[0], 8)
    with pytest.raises(TypeError, match='same units'):
        stripe_score(x.float() / 128 - 1, x, 8)


# ---------------------------------------------------------------- evaluate_bpd

@pytest.fixture(scope='module')
def bpd_model():
    "The 'farmer-tiny' model with a seeded random flow, and 64 synthetic 8×8 images with labels."
    torch.manual_seed(0)
    m = Farmer(get_config('farmer-tiny'))
    randomize_(m.flow, std=0.1, seed=0)
    ds = SyntheticImages(n=64)
    return m, ds.images, ds.labels


def test_evaluate_bpd_per_image_and_se(bpd_model):
    "per_image has one float64 entry per image; bpd is its mean, se = std/√n; training mode is restored."
    m, x, y = bpd_model
    m.train()
    r = evaluate_bpd(m, x, y, batch_size=16, seed=0, progress=False)
    assert m.training
    b = r['per_image']
    assert r['n'] == 64 and b.shape == (64,) and b.dtype == torch.float64 and torch.isfinite(b).all()
    assert r['bpd'] == pytest.approx(b.mean().item(), rel=1e-12)
    assert r['se'] == pytest.approx(b.std(unbiased=True).item() / 8, rel=1e-12) and r['se'] > 0
    assert math.isnan(evaluate_bpd(m, x[:1], y[:1], progress=False)['se'])


def test_evaluate_bpd_names_its_likelihood(bpd_model):
    "kind: 'conditional' with labels, 'null label' without them, 'unconditional' for a model without classes."
    m, x, y = bpd_model
    assert evaluate_bpd(m, x[:4], y[:4], progress=False)['kind'] == 'conditional'
    assert evaluate_bpd(m, x[:4], progress=False)['kind'] == 'null label'
    assert evaluate_bpd(Farmer(get_config('farmer-tiny', num_classes=0)), x[:4], progress=False)['kind'] == 'unconditional'


def test_evaluate_bpd_matches_bits_per_dim(bpd_model):
    "One batch with seed s equals model.bits_per_dim with a generator seeded s."
    m, x, y = bpd_model
    r = evaluate_bpd(m.eval(), x, y, batch_size=64, seed=5, progress=False)
    with torch.no_grad(): ref = m.bits_per_dim(x, y, generator=gen(5)).double()
    assert torch.allclose(r['per_image'], ref, rtol=1e-6, atol=0)


def test_evaluate_bpd_batch_size(bpd_model):
    "batch_size n and n/2 (same seed) agree within the paired standard error and well within the bpd's se."
    m, x, y = bpd_model
    a = evaluate_bpd(m, x, y, batch_size=64, seed=1, progress=False)
    b = evaluate_bpd(m, x, y, batch_size=32, seed=1, progress=False)
    d = a['per_image'] - b['per_image']
    assert abs(d.mean().item()) <= 4 * d.std().item() / math.sqrt(len(d))
    assert abs(a['bpd'] - b['bpd']) <= a['se']
    c = evaluate_bpd(m, x, y, batch_size=32, seed=2, progress=False)                  # another seed: other noise
    assert not torch.equal(c['per_image'], b['per_image']) and abs(c['bpd'] - b['bpd']) <= 4 * c['se']


# ---------------------------------------------------------------- Emoji64 (real data, where present)

@pytest.fixture(scope='module')
def emoji():
    from farmer_nb.data import Emoji64
    try: return Emoji64('train', fetch=False), Emoji64('test', fetch=False)
    except FileNotFoundError: pytest.skip("Emoji64 not available (no cache or tarballs)")


def test_emoji64_net_accuracy_matches_metadata(emoji):
    "The recorded test accuracy (overall and per class) is the network's actual accuracy on the 750 test images."
    net, (_, test) = load_feature_net('emoji64'), emoji
    pred = predict(net, test.images)[1].argmax(1)
    assert (pred == test.labels).double().mean().item() == pytest.approx(float(net.meta['test_accuracy']), abs=1e-4)
    per_class = [(pred[test.labels == k] == k).double().mean().item() for k in range(9)]
    assert per_class == pytest.approx(json.loads(net.meta['test_accuracy_per_class']), abs=1e-4)


def test_emoji64_stripe_floor(emoji):
    "Training images with the test split's class mix score 0.95–1.2 against the test split (p = 8)."
    train, test = emoji
    idx = matched_subset(train.labels, test.labels, seed=0)
    assert 0.95 < stripe_score(train.images[idx], test.images, 8)['score'] < 1.2


# ---------------------------------------------------------------- progress bars

def test_progress_bars_of_predict_and_class_samples(net, tiny_farmer, capsys):
    "predict and class_samples draw a bar over their batches on stderr (progress=True, the default); progress=False draws none and changes nothing."
    x, _ = shapes28(30, 1)
    f1, p1 = predict(net, x, batch_size=10)
    err = capsys.readouterr().err
    assert 'features' in err and '3/3' in err
    f2, p2 = predict(net, x, batch_size=10, progress=False)
    assert capsys.readouterr().err == '' and torch.equal(f1, f2) and torch.equal(p1, p2)
    imgs, labels = class_samples(tiny_farmer, 8, batch_size=3)
    err = capsys.readouterr().err
    assert 'samples' in err and '3/3' in err
    again, _ = class_samples(tiny_farmer, 8, batch_size=3, progress=False)
    assert capsys.readouterr().err == '' and torch.equal(imgs, again)
    sample_quality(x, x, net=net, kid_subsets=2)                                # its feature passes stay quiet
    assert capsys.readouterr().err == ''
