"""The package as a new user gets it: installed without extras into a fresh virtual environment, the `farmer`
command trains, samples and scores; and the README's Python snippet runs from the folder that holds a clone."""
import os, re, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TORCH = torch.__version__.split('+')[0]                  # the same CPU build the project's environment uses


def sh(*cmd, cwd=None, env=None):
    "Run a command; on failure show its output."
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_core_install_trains_samples_and_scores(tmp_path):
    "pip install of the package without extras (no matplotlib): farmer train (with sample grids), sample and eval work."
    src = tmp_path/'src'                                           # a copy: the build must not write into the checkout
    shutil.copytree(ROOT/'farmer_nb', src/'farmer_nb', ignore=shutil.ignore_patterns('__pycache__'))
    for f in ('pyproject.toml', 'README.md', 'LICENSE'): shutil.copy(ROOT/f, src/f)
    venv = tmp_path/'venv'
    sh(sys.executable, '-m', 'venv', venv)                          # no system site-packages: every dependency is installed
    py, pip = venv/'bin'/'python', [venv/'bin'/'python', '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    sh(*pip, f'torch=={TORCH}')                                     # first, as the README says (the CPU wheel here)
    sh(*pip, src)                                                   # the package, no extras
    r = sh(py, '-c', 'import importlib.util as u; print(u.find_spec("matplotlib"), u.find_spec("PIL") is not None)')
    assert r.stdout.split() == ['None', 'True'], r.stdout          # Pillow is a core dependency, matplotlib is not
    imgs = tmp_path/'imgs'
    g = torch.Generator().manual_seed(0)
    for k in range(4):
        (imgs/f'c{k}').mkdir(parents=True)
        for i in range(6):
            Image.fromarray(torch.randint(0, 256, (8, 8), generator=g, dtype=torch.uint8).numpy()).save(imgs/f'c{k}'/f'{i}.png')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH',)}
    farmer, data = venv/'bin'/'farmer', ['--images', imgs, '--size', '8', '--channels', '1']
    run = tmp_path/'run'
    r = sh(farmer, 'train', '--preset', 'farmer-tiny', *data, '--steps', '4', '--batch-size', '8', '--sample-every', '2',
           '--test-n', '2', '--out', run, cwd=tmp_path, env=env)
    assert 'test bits/dim' in r.stdout
    assert {p.name for p in (run/'samples').iterdir()} == {'samples_0000002.png', 'samples_0000004.png'}
    assert Image.open(run/'samples.png').size == (2 * (10 * 9 + 1), 2 * (10 * 9 + 1))
    sh(farmer, 'sample', '--model', run/'model.safetensors', '--guidance', 'resampling', '--out', tmp_path/'g.png', cwd=tmp_path, env=env)
    assert Image.open(tmp_path/'g.png').size == (2 * (10 * 9 + 1), 2 * (4 * 9 + 1))
    r = sh(farmer, 'eval', '--model', run/'model.safetensors', *data, '--out', tmp_path/'r.json', cwd=tmp_path, env=env)
    assert '"bpd"' in r.stdout and (tmp_path/'r.json').exists()
    r = subprocess.run([farmer, 'sample', '--model', tmp_path/'none.safetensors'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"farmer sample: error: --model: no such file: {tmp_path/'none.safetensors'}\n"
    r = subprocess.run([py, '-c', 'import torch; from farmer_nb.viz import show_images; '
                        'show_images(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))'], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and 'ImportError: figures need matplotlib' in r.stderr and 'farmer_nb[plot]' in r.stderr


def test_readme_snippet_runs_beside_a_clone(tmp_path):
    "The README's Python snippet, run from a folder that holds a folder named farmer_nb (a clone), samples images."
    snippet = re.search(r'```python\n(.*?)```', (ROOT/'README.md').read_text(), re.S).group(1)
    clone = tmp_path/'farmer_nb'                                    # shadows the package as a namespace package
    (clone/'nbs').mkdir(parents=True)
    (clone/'README.md').write_text('a clone')
    check = snippet + "\nassert images.shape == (10, 1, 28, 28) and images.dtype == torch.uint8\nprint('ok')\n"
    env = {**os.environ, 'PYTHONPATH': ''}
    r = subprocess.run([sys.executable, '-c', check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]
