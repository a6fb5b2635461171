"Smoke tests of the measurement scripts: they run end to end on a few images and record the configurations they claim."
import json, subprocess, sys
from pathlib import Path
import pytest

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
