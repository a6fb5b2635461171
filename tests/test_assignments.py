"""Classroom assignments: each reference solution passes its autograder, each unfilled starter fails it with a
short report of the cell and line, typical wrong answers get the hint meant for them, and starters are in sync."""
import importlib.util, itertools, os, re, subprocess, sys
from pathlib import Path

import nbformat
import pytest
from nbdev.test import test_nb as _run_nb

ROOT = Path(__file__).resolve().parents[1]
ASG = ROOT/'tutorials'/'assignments'
CASES = [('01_af_inverse', 'test_af_inverse.py'), ('02_gmm_logprob', 'test_gmm_logprob.py'),
         ('03_resampling_cfg', 'test_resampling_cfg.py'), ('04_distill_loss', 'test_distill_loss.py'),
         ('05_channel_split', 'test_channel_split.py')]
GRADER = dict(CASES)


def _grade(notebook, test):
    env = {**os.environ, 'FARMER_NOTEBOOK': str(notebook), 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(ASG/test)],
                          cwd=ASG, env=env, capture_output=True, text=True)


def _no_raw_json(out):
    "No line of the notebook file's JSON in pytest's output."
    return not any(s in out for s in ('"cell_type"', '"source": [', '"nbformat"', '"metadata": {'))


@pytest.mark.parametrize('name, test', CASES, ids=[c[0] for c in CASES])
def test_solution_passes_and_starter_fails(name, test):
    "The autograder accepts the reference solution and rejects the starter with a short report of its gap."
    ok = _grade(ASG/'solutions'/f'{name}.ipynb', test)
    assert ok.returncode == 0, ok.stdout[-3000:]
    starter = _grade(ASG/f'{name}.ipynb', test)
    out = starter.stdout
    assert starter.returncode == 1 and 'NotImplementedError' in out, out[-3000:]
    assert _no_raw_json(out), out[-3000:]
    assert len(out.splitlines()) < 120, f"{len(out.splitlines())} lines of output:\n{out[-3000:]}"
    assert f'of {name}.ipynb, line ' in out, out[-3000:]                              # names the cell and the line
    assert re.search(r">\s*\d+ \| +raise NotImplementedError\('your code here'\)", out), out[-3000:]   # marks the line


def _variant(tmp_path, name, subs):
    "The reference solution `name` with the text substitutions `subs` [(old, new)] in its code cells, written to tmp_path."
    nb = nbformat.read(ASG/'solutions'/f'{name}.ipynb', as_version=4)
    for old, new in subs:
        hits = [c for c in nb.cells if c.cell_type == 'code' and old in c.source]
        assert len(hits) == 1, f"{old!r} should occur in exactly one code cell of {name}"   # the variant follows the solution
        hits[0].source = hits[0].source.replace(old, new, 1)
    path = tmp_path/f'{name}.ipynb'
    nbformat.write(nb, path)
    return path


def test_a_bug_is_reported_with_its_line(tmp_path):
    "A student's bug is reported by cell and line with that line's source; nothing of the notebook's JSON."
    bad = _variant(tmp_path, '02_gmm_logprob', [('    u = (z[..., None, :] - mu)', '    scale = 1 / 0\n    u = (z[..., None, :] - mu)')])
    r = _grade(bad, GRADER['02_gmm_logprob'])
    out = r.stdout
    assert r.returncode == 1 and 'ZeroDivisionError' in out, out[-3000:]
    assert 'in cell 3 of 02_gmm_logprob.ipynb, line 8, in gmm_log_prob' in out, out[-3000:]
    assert '>   8 |     scale = 1 / 0' in out, out[-3000:]
    assert _no_raw_json(out) and len(out.splitlines()) < 60, out[-3000:]


_fresh = itertools.count()

def _run_checks(test, nb_path, monkeypatch):
    "Import the autograder `test` grading `nb_path` and run each of its checks: {check: failure message or None}."
    monkeypatch.setenv('FARMER_NOTEBOOK', str(nb_path))
    monkeypatch.syspath_prepend(str(ASG))
    spec = importlib.util.spec_from_file_location(f'_grader_{next(_fresh)}', ASG/test)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = {}
    for fname, f in vars(mod).items():
        if not fname.startswith('test_') or not callable(f): continue
        cases = [{}]
        for mark in getattr(f, 'pytestmark', []):
            if mark.name != 'parametrize': continue
            names = [n.strip() for n in mark.args[0].split(',')]
            rows = [v if len(names) > 1 else (v,) for v in mark.args[1]]
            cases = [{**c, **dict(zip(names, v))} for c in cases for v in rows]
        for kw in cases:
            key = fname + (f"[{'-'.join(map(str, kw.values()))}]" if kw else '')
            try: f(**kw); results[key] = None
            except (AssertionError, pytest.fail.Exception) as e: results[key] = getattr(e, 'msg', None) or str(e)
    return results


# Typical wrong answers: (assignment, what is wrong, substitutions in the solution, the hint it must get). Every
# hint of the same assignment is a wrong diagnosis for the other wrong answers and must not appear for them.
WRONG = [
    ('01_af_inverse', 'token order left out',
     [('zp = permute_tokens(z, blk.reverse).float()', 'zp = z.float()'), ('return permute_tokens(x, blk.reverse)', 'return x')],
     "apply the block's token order"),
    ('01_af_inverse', 'forward formula instead of its inverse',
     [('zp[:, i + 1:i + 2] * torch.exp(a) + mu', '(zp[:, i + 1:i + 2] - mu) * torch.exp(-a)')],
     'invert the affine map'),
    ('01_af_inverse', 'parameters from the latent z instead of the recovered x',
     [('blk.embed(x[:, i:i + 1], i, None)', 'blk.embed(zp[:, i:i + 1], i, None)')],
     'feed the transformer the tokens you have recovered'),
    ('01_af_inverse', 'no KV cache: the whole prefix at every step',
     [('h = blk.transformer(blk.embed(x[:, i:i + 1], i, None), caches)', 'h = blk.transformer(blk.embed(x[:, :i + 1], 0, None))[:, -1:]')],
     'push one token per call with the caches'),
    ('01_af_inverse', 'writes into its input',
     [('x = zp.clone()', 'x = zp')],
     'write into a copy'),
    ('02_gmm_logprob', 'raw logits as log-weights',
     [('torch.log_softmax(logits, -1) + log_comp', 'logits + log_comp')],
     'normalise the logits with log_softmax'),
    ('02_gmm_logprob', 'no -log(2 pi)/2 per channel',
     [(' - 0.5 * math.log(2 * math.pi)).sum(-1)', ').sum(-1)')],
     'the constant −½·log(2π)'),
    ('02_gmm_logprob', 'exp, sum and log instead of logsumexp',
     [('return torch.logsumexp(torch.log_softmax(logits, -1) + log_comp, -1)',
       'return torch.log((torch.softmax(logits, -1) * torch.exp(log_comp)).sum(-1))')],
     'then torch.logsumexp over the components'),
    ('02_gmm_logprob', 'a mixture per channel',
     [('log_comp = (-0.5 * u**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)',
       'log_comp = (-0.5 * u**2 - log_sigma - 0.5 * math.log(2 * math.pi))'),
      ('return torch.logsumexp(torch.log_softmax(logits, -1) + log_comp, -1)',
       'return torch.logsumexp(torch.log_softmax(logits, -1)[..., None] + log_comp, -2).sum(-1)')],
     'not a mixture per channel'),
    ('03_resampling_cfg', 'sign of Delta flipped, (w + 1) right',
     [('delta = g_c.log_prob(cand) - g_u.log_prob(cand)', 'delta = g_u.log_prob(cand) - g_c.log_prob(cand)')],
     'Δ has the wrong sign'),
    ('03_resampling_cfg', 'w Delta for every candidate',
     [('w + 1.0', 'w')],
     'need log-weight (w + 1)·Δ'),
    ('03_resampling_cfg', 'weights swapped between the groups',
     [('delta.new_full((s_c,), w), delta.new_full((s_u,), w + 1.0)', 'delta.new_full((s_c,), w + 1.0), delta.new_full((s_u,), w)')],
     'the two weights are swapped'),
    ('03_resampling_cfg', 'argmax instead of a random draw',
     [('idx = torch.multinomial(logw.exp().T, 1, generator=generator)[:, 0]', 'idx = logw.argmax(0)')],
     'draw the index at random'),
    ('03_resampling_cfg', 'normalised within each group',
     [('logw = torch.log_softmax(scale[:, None] * delta, 0)',
       'logw = torch.cat([torch.log_softmax(w * delta[:s_c], 0), torch.log_softmax((w + 1.0) * delta[s_c:], 0)])')],
     'over all s_c + s_u candidates together'),
    ('04_distill_loss', 'noise drawn before the scale',
     [('    s = s_max * torch.rand(X.shape[0], 1, 1, generator=generator)\n'
       '    z = path[-1] + s * torch.randn(path[-1].shape, generator=generator)',
       '    eps = torch.randn(path[-1].shape, generator=generator)\n'
       '    s = s_max * torch.rand(X.shape[0], 1, 1, generator=generator)\n'
       '    z = path[-1] + s * eps')],
     'draw s = s_max·rand(B, 1, 1) first'),
    ('04_distill_loss', "student fed the teacher's latents",
     [('z = student.block_inverse(t, z)', 'z = student.block_inverse(t, z if t == len(path) - 2 else path[t + 1])')],
     'its own previous output'),
    ('04_distill_loss', 'sum over blocks, not the mean',
     [('return loss / len(teacher_flow.blocks)', 'return loss')],
     'average the per-block mean squared errors'),
    ('04_distill_loss', "teacher's path with gradients",
     [('    with torch.no_grad():\n        path = [X]\n        for blk in teacher_flow.blocks: path.append(blk(path[-1])[0])',
       '    path = [X]\n    for blk in teacher_flow.blocks: path.append(blk(path[-1])[0])')],
     'without gradients (torch.no_grad)'),
    ('05_channel_split', 'strided channels k (d // d_I)',
     [('torch.arange(d_I) * d // d_I', 'torch.arange(d_I) * (d // d_I)')],
     'k * d // d_I (multiply first, then divide)'),
    ('05_channel_split', 'the shared mixture without moving the token axis',
     [('g_R.log_prob(z_R.transpose(0, 1)).sum(0)', 'g_R.log_prob(z_R).sum(-1)')],
     'move the token axis to the front'),
    ('05_channel_split', 'mean over the tokens instead of the sum',
     [('g_R.log_prob(z_R.transpose(0, 1)).sum(0)', 'g_R.log_prob(z_R.transpose(0, 1)).mean(0)')],
     "add the N tokens' log-densities"),
    ('05_channel_split', 'G_i read at the position of z^I_i',
     [('prior.head_I(h[:, M - 1:M - 1 + N])', 'prior.head_I(h[:, M:M + N])')],
     "token i's mixture G_i comes from the position before z^I_i"),
    ('05_channel_split', 'G_{N+1} read before any informative token',
     [('prior.head_R(h[:, -1])', 'prior.head_R(h[:, M - 1])')],
     'read at the last position'),
    ('05_channel_split', 'the split detached from z',
     [('return z[..., idx_I.to(z.device)], z[..., rest.to(z.device)]',
       'return z[..., idx_I.to(z.device)].detach(), z[..., rest.to(z.device)].detach()')],
     'must stay differentiable in z'),
    ('05_channel_split', 'the library does the work',
     [('    z_I, z_R = split_channels(z, prior.d_I, mode)                  # (B, N, d_I), (B, N, d_R)\n',
       '    z_I, z_R = split_channels(z, prior.d_I, mode)                  # (B, N, d_I), (B, N, d_R)\n'
       '    return prior.log_prob(z_I, z_R, c)\n')],
     'compute the mixtures yourself'),
]
WRONG_HINTS = {}
for _name, _, _, _hint in WRONG: WRONG_HINTS.setdefault(_name, []).append(_hint)


@pytest.mark.parametrize('name, what, subs, hint', WRONG, ids=[f'{w[0][:2]}-{w[1]}' for w in WRONG])
def test_wrong_answer_gets_its_hint(name, what, subs, hint, tmp_path, monkeypatch):
    "The autograder's checks reject a typical wrong answer, say what is wrong, and blame nothing else."
    results = _run_checks(GRADER[name], _variant(tmp_path, name, subs), monkeypatch)
    failed = {k: m for k, m in results.items() if m is not None}
    text = '\n'.join(f'{k}: {m}' for k, m in failed.items())
    assert failed, f"{name}, {what}: every check passed"
    assert hint in text, f"{name}, {what}: expected the hint {hint!r}; the checks said:\n{text}"
    wrong = [h for h in WRONG_HINTS[name] if h != hint and h in text]
    assert not wrong, f"{name}, {what}: also got the hint(s) {wrong} meant for other mistakes:\n{text}"


@pytest.mark.parametrize('name, test', CASES, ids=[c[0] for c in CASES])
def test_solution_passes_every_check(name, test, monkeypatch):
    "The in-process runner of the checks above accepts the reference solutions (so it runs the checks for real)."
    results = _run_checks(test, ASG/'solutions'/f'{name}.ipynb', monkeypatch)
    assert len(results) >= 3 and all(m is None for m in results.values()), results


@pytest.mark.parametrize('name', [c[0] for c in CASES])
def test_solution_notebook_runs(name):
    "Each reference notebook runs top to bottom (the lesson and its own check)."
    ok, _ = _run_nb(ASG/'solutions'/f'{name}.ipynb', skip_flags=['slow', 'cuda', 'notest'], basepath=ROOT)
    assert ok


def test_starters_are_made_from_the_solutions():
    "The committed starters are exactly what make_starters.py writes from the solutions."
    r = subprocess.run([sys.executable, str(ASG/'make_starters.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
