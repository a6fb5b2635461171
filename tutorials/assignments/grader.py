"""Autograder helpers: load a student's functions from a notebook (the code cells marked `#| export`), report
an error in the student's code by cell and line with the cell's source, and name the typical mistake a wrong
result matches."""
import contextlib, functools, json, linecache, os, traceback
from pathlib import Path
import pytest
import torch

HERE = Path(__file__).resolve().parent
_CELLS = {}                                                     # '<cell k of NOTEBOOK>' → the cell's lines
_SHOWN = set()                                                  # errors already shown in full in this session


class StudentError(pytest.fail.Exception):
    "A failure in the student's code. pytest prints only its message: the error, the cell, the line."
    def __init__(self, msg, original=None):
        super().__init__(msg, pytrace=False)
        self.original = original                                 # the exception the student's code raised


def notebook(default):
    "The notebook to grade: $FARMER_NOTEBOOK, or the starter `default` next to the tests."
    return Path(os.environ.get('FARMER_NOTEBOOK') or HERE/default)


def _register(name, src):
    "Make the source of a cell compiled as `name` known to tracebacks (linecache) and to `report`."
    lines = src.splitlines(True)
    _CELLS[name] = lines
    linecache.cache[name] = (len(src), None, lines, name)       # mtime None: checkcache keeps it


def _excerpt(name, lineno, before=6, after=2):
    "Numbered lines of a cell around `lineno`, which is marked with '>'."
    lines = _CELLS.get(name) or linecache.getlines(name)
    if not lines or not lineno: return ''
    lo, hi = max(1, lineno - before), min(len(lines), lineno + after)
    return '\n'.join(f"  {'>' if i == lineno else ' '}{i:4d} | {lines[i - 1].rstrip()}" for i in range(lo, hi + 1))


def report(exc, what='your code raised', callee=None):
    "The exception, then every frame of it in the student's cells: cell, line inside the cell, and source."
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename in _CELLS]
    msg = str(exc).strip()
    if not frames and callee: what = f"calling {callee} raised"    # the call itself failed
    parts = [f"{what} {type(exc).__name__}" + (f": {msg}" if msg else '')]
    key = (type(exc).__name__, msg, tuple((f.filename, f.lineno) for f in frames))
    if key in _SHOWN:                                            # the same error again: one line
        where = f"in {frames[-1].filename.strip('<>')}, line {frames[-1].lineno}, " if frames else ''
        return parts[0] + f"\n  ({where}shown in full above)"
    _SHOWN.add(key)
    if not frames:
        parts.append("  (before its first line: keep the name and the arguments the starter gives the function)")
    for f in frames:
        parts.append(f"  in {f.filename.strip('<>')}, line {f.lineno}, in {f.name}:\n{_excerpt(f.filename, f.lineno)}")
    if frames and tb[-1].filename not in _CELLS:
        parts.append(f"  (raised inside {Path(tb[-1].filename).name}, line {tb[-1].lineno}, "
                     "called from the line marked '>' above)")
    return '\n'.join(parts)


def _guard(fn):
    "`fn`, with an exception from its body turned into a `StudentError` that shows the student's line."
    @functools.wraps(fn)
    def call(*args, **kw):
        try: return fn(*args, **kw)
        except Exception as e: raise StudentError(report(e, callee=fn.__name__), e) from None
    return call


def load(nb_path, *names):
    "Run the notebook's `#| export` cells in a fresh namespace and return the functions `names`."
    nb_path = Path(nb_path)
    try: cells = json.loads(nb_path.read_text())['cells']
    except FileNotFoundError:
        raise StudentError(f"{nb_path}: no such notebook (set FARMER_NOTEBOOK to the path of your copy)") from None
    except (ValueError, KeyError, TypeError):
        raise StudentError(f"{nb_path}: not a notebook file (is it saved from Jupyter?)") from None
    ns = {'__name__': 'student_notebook'}
    for k, c in enumerate(cells, 1):                             # k: the cell's place in the notebook, from 1
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] != 'code' or not src.lstrip().startswith('#| export'): continue
        name = f"<cell {k} of {nb_path.name}>"
        _register(name, src)
        try: code = compile(src, name, 'exec')
        except SyntaxError as e:
            raise StudentError(f"{type(e).__name__} in cell {k} of {nb_path.name}, line {e.lineno}: {e.msg}\n"
                               f"{_excerpt(name, e.lineno)}", e) from None
        try: exec(code, ns)
        except Exception as e: raise StudentError(report(e, f"running cell {k} raised"), e) from None
    missing = [n for n in names if n not in ns]
    if missing:
        raise StudentError(f"{nb_path}: define {', '.join(missing)} in a code cell that starts with '#| export'")
    fns = [_guard(ns[n]) if callable(ns[n]) else ns[n] for n in names]
    return fns[0] if len(fns) == 1 else fns


@contextlib.contextmanager
def hint_on_error(hint, *types):
    "Add `hint` to the report when the student's code raises an exception of one of `types` inside the block."
    try: yield
    except StudentError as e:
        if not isinstance(e.original, types): raise
        raise StudentError(f"{e.msg}\n{hint}", e.original) from None


def close(a, b, rtol=1e-5):
    "Same shape and values within `rtol` (relative, with a floor of 1 on the scale); False for non-tensors."
    if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape: return False
    a, b = a.detach().double(), b.detach().double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()): return False
    return bool(((a - b).abs() / b.abs().clamp_min(1.0)).max() < rtol) if a.numel() else True


def diagnose(got, variants, rtol=1e-5):
    "The hint of the first typical mistake whose result `got` reproduces; `variants`: (value, hint) pairs."
    return next((hint for value, hint in variants if close(got, value, rtol)), None)
