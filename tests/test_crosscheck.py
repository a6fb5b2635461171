"""Cross-checks against well-kept libraries (test-only dependencies): FID against torchmetrics with the same
features, patchify against einops, training FLOPs against PyTorch's own FLOP counter."""
import pytest
import torch
import torch.nn as nn

from farmer_nb.data import patchify, unpatchify
from farmer_nb.metrics import FeatureNet, frechet_distance, predict, train_flops
from farmer_nb.model import Farmer, GaussianFlow, get_config


class _Features(nn.Module):
    "Our feature network as torchmetrics' feature extractor: uint8 images (B, C, S, S) → features (B, dim)."
    def __init__(self, net):
        super().__init__()
        self.net, self.num_features = net, net.arch['dim']

    def forward(self, x):
        return self.net.features(x)


def test_fid_matches_torchmetrics():
    "Our Fréchet distance equals torchmetrics' FID computed from the same feature network on the same images."
    fid_mod = pytest.importorskip('torchmetrics.image.fid')
    torch.manual_seed(0)
    net = FeatureNet(num_classes=10, channels=1, size=28, dim=32).eval()
    real = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    fake = (real.float() * 0.7 + 40 * torch.rand(300, 1, 28, 28)).clamp(0, 255).to(torch.uint8)
    metric = fid_mod.FrechetInceptionDistance(feature=_Features(net), normalize=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs = metric.compute().item()
    fr, _ = predict(net, real)
    ff, _ = predict(net, fake)
    ours = frechet_distance(fr, ff)
    assert theirs > 1e-3                                             # the two sets differ
    assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize('C, H, W, p', [(1, 28, 28, 4), (3, 64, 64, 8), (3, 32, 48, 16), (2, 6, 9, 3)])
def test_patchify_matches_einops(C, H, W, p):
    "patchify is einops' 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)': patches in raster order, (row, column, colour)."
    einops = pytest.importorskip('einops')
    x = torch.randn(2, C, H, W)
    ref = einops.rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=p, p2=p)
    assert torch.equal(patchify(x, p), ref)
    back = einops.rearrange(ref, 'b (h w) (p1 p2 c) -> b c (h p1) (w p2)', h=H // p, p1=p, p2=p)
    assert torch.equal(unpatchify(ref, p, (C, H, W)), back)


@pytest.mark.parametrize('preset, cls', [('tarflow-fmnist', GaussianFlow), ('fmnist-small', Farmer),
                                        ('emoji64-p8', Farmer)])
def test_train_flops_matches_flop_counter(preset, cls):
    "train_flops (3 × the forward matmuls) against torch.utils.flop_counter on one forward + backward pass."
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = cls(get_config(preset))
    B = 4
    y = torch.rand(B, *model.cfg.image_shape) * 2 - 1
    labels = torch.arange(B) % model.cfg.num_classes
    # the math backend spells attention out as matmuls the counter sees (the fused CPU kernel it does not)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.nll(y, labels).mean().backward()
    counted, ours = counter.get_total_flops(), train_flops(model, B)
    # they differ only by the input gradient of the first layer, which autograd skips
    assert ours == pytest.approx(counted, rel=0.01), (ours, counted)
