"Smoke tests of the measurement scripts: they run end to end on a few images and record the configurations they claim."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from scriptload import load_script

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path('/usr/share/datasets/fashion-mnist')
needs_fmnist = pytest.mark.skipif(not (FMNIST/'train-images-idx3-ubyte.gz').exists(), reason=f"Fashion-MNIST not in {FMNIST}")

@needs_fmnist
def test_farmer_ablation_options(tmp_path):
    "--patch applies to every variant, --d-I and --set to the FARMER variants only, and (b) keeps every channel informative."
    cmd = [sys.executable, str(ROOT/'scripts/farmer_ablation.py'), '--variants', 'a', 'b', 'd', '--patch', '4', '--d-I', '1',
           '--set', 'K_I=8', '--subset', '64', '--max-steps', '1', '--batch-size', '32', '--out', str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    runs = {r['variant']: r for r in json.loads((tmp_path/'results.json').read_text())['runs']}
    assert runs['a']['overrides'] == {'patch': 4}
    assert runs['b']['overrides'] == {'patch': 4, 'K_I': 8, 'd_I': 16}
    assert runs['d']['overrides'] == {'patch': 4, 'K_I': 8, 'd_I': 1}
    assert all(r['steps'] == 1 and r['test_bpd'] > 0 for r in runs.values())
    assert {p.name for p in tmp_path.glob('samples_*.png')} == {'samples_a.png', 'samples_b.png', 'samples_d.png'}


def test_mfu_variants_smoke(tmp_path):
    "The A/B script runs each variant in its own process and records one benchmark row per variant (eager, CPU, tiny preset)."
    cmd = [sys.executable, str(ROOT/'scripts/mfu_variants.py'), '--variants', 'folded', 'clip-pass', 'fp32-residual',
           '--compile', 'none', '--preset', 'tarflow-tiny', '--batch', '8', '--device', 'cpu', '--reps', '1', '--out', str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    rows = json.loads((tmp_path/'summary.json').read_text())
    assert [r['variant'] for r in rows] == ['folded', 'clip-pass', 'fp32-residual']
    assert all(r['status'] == 'ok' and r['batch'] == 8 and r['ms_per_step'] > 0 for r in rows)


def test_mfu_fp8_converts_only_the_transformer_layers():
    "The fp8 variant swaps the four Linear layers of each transformer layer; the flow's projections stay nn.Linear."
    pytest.importorskip('torchao')
    from farmer_nb.model import build_model, get_config
    from farmer_nb.transformer import Block
    from torchao.float8.float8_linear import Float8Linear
    model = load_script('mfu_variants').to_float8(build_model(get_config('tarflow-tiny')))
    n_blocks = sum(isinstance(m, Block) for m in model.modules())
    assert sum(isinstance(m, Float8Linear) for m in model.modules()) == 4 * n_blocks > 0
    assert all(type(b.proj_in) is type(b.proj_out) is torch.nn.Linear for b in model.flow.blocks)


def test_dim_nll_sums_to_the_nll():
    "The per-dimension NLL shares of the flow ablation add up to the model's NLL, image by image."
    import torch
    from farmer_nb.data import patchify
    from farmer_nb.flow import randomize_
    from farmer_nb.model import GaussianFlow, get_config
    bl = load_script('baseline_fmnist')
    torch.manual_seed(0)
    m = GaussianFlow(get_config('tarflow-tiny', final_norm=False)).eval()
    randomize_(m.flow, std=0.2)
    y, c = torch.rand(5, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3, 0])
    share = bl.dim_nll(m, patchify(y, m.cfg.patch), c)                                     # (B, N, d)
    assert share.shape == (5, m.cfg.N, m.cfg.d)
    assert torch.allclose(share.sum((1, 2)) / m.cfg.D, m.nll(y, c).float(), atol=1e-5)
    assert bl.parse_value('false') is False and bl.parse_value('inf') == float('inf') and bl.parse_value('3') == 3
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    x[:, :, :2] = 0                                                                      # a zero border
    r = bl.zero_pixel_bpd(m, x, c, torch.device('cpu'), batch=2)
    per = r['per_image']
    assert per['bpd'].shape == (5,) and (per['zero_count'] >= 16).all()
    bits = (per['zero_bits'] + per['other_bits']) / m.cfg.D                               # per image, bits/dim
    assert (abs(bits - per['bpd']) / per['bpd']).max() < 1e-5                            # fp32 sums
    assert abs(per['zero_bits'].sum() / per['zero_count'].sum() - r['zero_bpd']) < 1e-9


def test_flow_ablation_commands():
    "Each variant switches exactly its differences: config ones through --set, training ones through --fit."
    fa = load_script('flow_ablation')
    class A: epochs, lr, set, fit, subset, max_steps = 10, 2e-3, [], [], None, None
    ref = fa.command('reference', 1, A, 'out')
    assert ref[ref.index('--set') + 1:ref.index('--fit')] == ['clip=0', 'final_norm=false', 'class_std=0.01']
    assert ref[ref.index('--fit') + 1:] == ['grad_clip=inf', 'embed_decay=false']
    assert '--set' not in fa.command('defaults', 0, A, 'out') and '--fit' not in fa.command('defaults', 0, A, 'out')
    assert fa.command('no-norm', 0, A, 'out')[-2:] == ['--set', 'final_norm=false']
    assert all(set(v) <= set(fa.CHANGES) for v in fa.VARIANTS.values())


def test_flow_ablation_tails(tmp_path):
    "The tail report finds the images that carry the mean, and how much of it they carry."
    import numpy as np
    fa = load_script('flow_ablation')
    bpd = np.full(100, 3.0); bpd[7] = 103.0                                   # one image at 100 bits/dim more
    zero = np.full(100, 784 * 1.0); other = bpd * 784 - zero
    (tmp_path/'no-norm_s0').mkdir()
    np.savez(tmp_path/'no-norm_s0'/'per_image_10ep.npz', bpd=bpd, zero_bits=zero, other_bits=other,
             zero_count=np.full(100, 392), labels=np.arange(100) % 10)
    r = fa.tail_stats(dict(np.load(tmp_path/'no-norm_s0'/'per_image_10ep.npz')))
    assert abs(r['mean'] - 4.0) < 1e-9 and r['median'] == 3.0 and abs(r['mean_without_top'] - 3.0) < 1e-9
    assert r['worst'][0]['index'] == 7 and r['worst'][0]['label'] == 7 and r['above_median_plus_1'] == 1
    assert abs(r['worst'][0]['zero_share'] - 1 / 103) < 1e-9
    class A: out, figure = str(tmp_path), None
    fa.tails(A)
    assert json.loads((tmp_path/'tails.json').read_text())['no-norm_s0 (10ep)']['worst'][0]['index'] == 7


def test_flow_ablation_block_trace():
    "The block trace follows the flow's own forward pass: its last latents are the model's Z."
    import torch
    from farmer_nb.data import dequantize, patchify
    from farmer_nb.flow import randomize_
    from farmer_nb.model import GaussianFlow, get_config
    fa = load_script('flow_ablation')
    m = GaussianFlow(get_config('tarflow-tiny', final_norm=False)).eval()
    randomize_(m.flow, std=0.2)
    x, c = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 2])
    import numpy as np
    tr = fa.block_trace(m, x, c, seed=1)
    assert tr['z_in'].shape == (m.cfg.n_blocks, 3) and tr['z_out'].shape == (1, 3)
    X = patchify(dequantize(x, 'uniform', generator=torch.Generator().manual_seed(1)), m.cfg.patch)
    with torch.no_grad(): Z, _ = m.flow(X, c)
    assert np.allclose(tr['z_out'][0], Z.abs().amax((1, 2)).numpy(), rtol=1e-5)
    assert np.allclose(tr['z_in'][0], X.abs().amax((1, 2)).numpy()) and (tr['a_min'] <= tr['a_max']).all()


def test_redundant_token_weights():
    "The refit's redundant term recombines to the model's exact bits/dim; refits only gain on their data; zero refits draw FARMER's samples."
    import torch
    from farmer_nb.model import Farmer, get_config, randomize_model_
    rt = load_script('redundant_tokens')
    torch.manual_seed(0)
    m = Farmer(get_config('farmer-tiny', coupling=8)).eval()
    randomize_model_(m, std=0.2)
    x, c = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8), torch.arange(40) % 4
    cache = rt.cache(m, x, c, batch=40, seed=3)
    assert cache['L'].shape == (40, m.cfg.N, m.cfg.K_R)
    exact = m.bits_per_dim(x, c, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(rt.bpd(m, cache), exact, atol=1e-5)               # same dequantization, same numbers
    for content in (False, True):
        w = rt.fit(cache, content, steps=50)
        assert torch.allclose(w(cache['log_pi'], cache['z_I']).logsumexp(-1), torch.zeros(40, m.cfg.N), atol=1e-5)
        assert rt.bpd(m, cache, w).mean() <= rt.bpd(m, cache).mean() + 1e-6
    zero = rt.TokenWeights(m.cfg.N, m.cfg.K_R, m.cfg.d_I, content=True)
    fakes = rt.draw(m, c[:6], {'shared': None, 'zero': zero}, batch=3)
    assert fakes['shared'].dtype == torch.uint8 and fakes['shared'].shape == (6, 1, 8, 8)
    assert torch.equal(fakes['shared'], fakes['zero'])


def test_gmm_bench_smoke(tmp_path):
    "The redundant log-density benchmark times both paths alone and in a training step, and they agree."
    out = tmp_path/'bench.json'
    cmd = [sys.executable, str(ROOT/'scripts/gmm_bench.py'), '--preset', 'farmer-tiny', '--batch', '3', '--device', 'cpu',
           '--reps', '1', '--step', '--out', str(out)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    res = json.loads(out.read_text())
    assert [(r['what'], r['path']) for r in res['rows']] == [('log-density', 'per-vector'), ('log-density', 'matmul'),
                                                             ('training step (fp32)', 'per-vector'), ('training step (fp32)', 'matmul')]
    assert all(r['ms'] > 0 for r in res['rows']) and res['max_rel_diff'] < 1e-5
    cmd = [sys.executable, str(ROOT/'scripts/gmm_bench.py'), '--guided', str(ROOT/'farmer_nb/assets/emoji64_p8.safetensors'),
           '--batch', '2', '--s', '2', '--device', 'cpu', '--out', str(out)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    res = json.loads(out.read_text())
    assert [r['path'] for r in res['rows']] == ['per-vector', 'matmul'] and res['same_images']


@pytest.mark.parametrize('redundant', ['gmm', 'gmm-token'])
def test_emoji_latent_panels(redundant):
    "The latents picture: the images, their exact decoding, Z^I alone, and redrawn redundant channels that differ."
    import torch
    from farmer_nb.model import Farmer, get_config, randomize_model_
    ec = load_script('emoji_compare')
    torch.manual_seed(0)
    m = Farmer(get_config('farmer-tiny', coupling=8, redundant=redundant)).eval()
    randomize_model_(m)
    x, c = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8), torch.arange(4)
    rows = ec.latent_panels(m, x, c, redraws=2)
    assert len(rows) == 5 and all(r.shape == x.shape and r.dtype == torch.uint8 for r in rows)
    assert (rows[1].int() - x.int()).abs().max() <= 1                                     # encode → decode
    assert not torch.equal(rows[3], rows[4])                                              # two draws of Z^R


def test_emoji_train_for_a_number_of_steps():
    "train_for(steps=n) takes exactly n optimizer steps, whatever the clock says, and refuses n < 1."
    import torch
    from farmer_nb.model import Farmer, get_config
    ec = load_script('emoji_compare')
    torch.manual_seed(0)
    m = Farmer(get_config('farmer-tiny'))
    x, c = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8), torch.randint(0, 4, (16,))
    res = ec.train_for(m, x, c, minutes=1e-9, batch_size=4, steps=3, log_every=1)
    assert res['steps'] == 3 and [r['step'] for r in res['log']] == [1, 2, 3]
    assert [r['tau'] for r in res['log']] == [0.0, round(1 / 3, 4), round(2 / 3, 4)]
    with pytest.raises(SystemExit, match='--steps'): ec.train_for(m, x, c, minutes=1, steps=0)


def test_emoji_paired_bpd_uses_the_same_noise(tmp_path, monkeypatch):
    "paired: one model listed twice differs from itself by exactly 0 (same images, same noise); diffs are of the means."
    import torch
    from types import SimpleNamespace
    from farmer_nb.model import Farmer, get_config, randomize_model_, save_model
    ec = load_script('emoji_compare')
    stub = SimpleNamespace(images=torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8), labels=torch.arange(12) % 4)
    monkeypatch.setattr(ec, 'Emoji64', lambda split: stub)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = Farmer(get_config('farmer-tiny'))
        randomize_model_(m, seed=seed)
        paths.append(str(tmp_path / f'm{seed}.safetensors'))
        save_model(m, paths[-1])
    out = tmp_path / 'paired.json'
    ec.cmd_paired(SimpleNamespace(models=[paths[0], paths[1], paths[0]], out=str(out)), torch.device('cpu'))
    rows = json.loads(out.read_text())['rows']
    assert rows[2]['diff'] == 0 and rows[2]['diff_se'] == 0 and rows[2]['bpd'] == rows[0]['bpd']
    assert rows[1]['diff'] == pytest.approx(rows[1]['bpd'] - rows[0]['bpd'], abs=1e-9) and rows[1]['diff'] != 0


def test_emoji_guidance_names_each_setting(tmp_path, monkeypatch):
    "guidance: one samples file per setting, named by rule, w, γ and (where not 1) T_σ; T_σ changes the draws."
    import numpy as np
    import torch
    from types import SimpleNamespace
    from farmer_nb.model import Farmer, get_config, randomize_model_, save_model
    ec = load_script('emoji_compare')
    stub = SimpleNamespace(images=torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8), labels=torch.arange(8) % 4)
    monkeypatch.setattr(ec, 'Emoji64', lambda split: stub)
    monkeypatch.setattr(ec, 'feature_net', lambda dev: None)                  # samples only, no scores
    torch.manual_seed(0)
    m = randomize_model_(Farmer(get_config('farmer-tiny')))
    save_model(m, tmp_path/'m.safetensors')
    out = tmp_path/'g'
    ec.cmd_guidance(SimpleNamespace(model=str(tmp_path/'m.safetensors'), rules=[], w=[], gamma=[1.0], T_sigma=[1.5],
                                    s=5, T_pi_v=1.0, T_sigma_v=1.0, T_s=1.0, batch=750, repeats=1, seed=0,
                                    out=str(out)), torch.device('cpu'))
    files = sorted(p.name for p in out.glob('samples_*.npz'))
    assert files == ['samples_none_w0_g1.npz', 'samples_none_w0_g1_t1.5.npz']
    a, b = (np.load(out/f)['images'] for f in files)
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert [r['T_sigma'] for r in json.loads((out/'results.json').read_text())['rows']] == [1.0, 1.5]
