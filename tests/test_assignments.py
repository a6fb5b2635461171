"Classroom assignments: each reference solution passes its autograder, each unfilled starter fails it, starters are in sync."
import os, subprocess, sys
from pathlib import Path

import pytest
from nbdev.test import test_nb as _run_nb

ROOT = Path(__file__).resolve().parents[1]
ASG = ROOT/'tutorials'/'assignments'
CASES = [('01_af_inverse', 'test_af_inverse.py'), ('02_gmm_logprob', 'test_gmm_logprob.py'),
         ('03_resampling_cfg', 'test_resampling_cfg.py'), ('04_distill_loss', 'test_distill_loss.py')]


def _grade(notebook, test):
    env = {**os.environ, 'FARMER_NOTEBOOK': str(notebook), 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(ASG/test)],
                          cwd=ASG, env=env, capture_output=True, text=True)


@pytest.mark.parametrize('name, test', CASES, ids=[c[0] for c in CASES])
def test_solution_passes_and_starter_fails(name, test):
    "The autograder accepts the reference solution and rejects the starter with its gaps."
    ok = _grade(ASG/'solutions'/f'{name}.ipynb', test)
    assert ok.returncode == 0, ok.stdout[-3000:]
    starter = _grade(ASG/f'{name}.ipynb', test)
    assert starter.returncode == 1 and 'NotImplementedError' in starter.stdout, starter.stdout[-3000:]


@pytest.mark.parametrize('name', [c[0] for c in CASES])
def test_solution_notebook_runs(name):
    "Each reference notebook runs top to bottom (the lesson and its own check)."
    ok, _ = _run_nb(ASG/'solutions'/f'{name}.ipynb', skip_flags=['slow', 'cuda', 'notest'], basepath=ROOT)
    assert ok


def test_starters_are_made_from_the_solutions():
    "The committed starters are exactly what make_starters.py writes from the solutions."
    r = subprocess.run([sys.executable, str(ASG/'make_starters.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
