"""House style of the package: short lines, one statement per line, and methods that know their class.

`farmer_nb/*.py` is generated from the notebooks by nbdev; these checks read the generated files, so a
fix belongs in the notebook cell the line came from (its `# %% ../nbs/NN_name.ipynb #id` marker names it)."""
import importlib, inspect, io, tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINE = 100
PENDING = set()                                      # files not yet in house style (none now)
FILES = sorted(p for p in (ROOT/'farmer_nb').glob('*.py') if p.name != '_modidx.py')
CHECKED = [p for p in FILES if p.name not in PENDING]


def code_lines(path):
    "(line number, text) of the code we write: nbdev's generated header (docstring, `__all__`) is skipped."
    lines = path.read_text(encoding='utf-8').split('\n')
    first = next((i for i, l in enumerate(lines) if l.startswith('# %% ../')), 0)
    return [(i + 1, l) for i, l in enumerate(lines) if i >= first]


def statement_separators(path):
    "Line numbers of `;` operators (not inside strings or comments)."
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding='utf-8')).readline)
    return sorted({t.start[0] for t in tokens if t.type == tokenize.OP and t.string == ';'})


@pytest.mark.parametrize('path', CHECKED, ids=lambda p: p.name)
def test_lines_at_most_100_characters(path):
    "No line of exported code is longer than 100 characters."
    long = [f"{path.name}:{n}: {len(l)} characters" for n, l in code_lines(path) if len(l) > MAX_LINE]
    assert not long, '\n'.join(long)


@pytest.mark.parametrize('path', CHECKED, ids=lambda p: p.name)
def test_one_statement_per_line(path):
    "No `;` joins two statements on one line."
    found = statement_separators(path)
    assert not found, '\n'.join(f"{path.name}:{n}: statements joined by ';'" for n in found)


def test_the_checks_catch_what_they_should(tmp_path):
    "A long line and a `;` are found; a `;` inside a string or a comment is not a separator."
    f = tmp_path/'m.py'
    f.write_text("# %% ../nbs/02_flow.ipynb #0\nx = 1; y = 2\ns = 'a; b'  # c; d\n" + 'z = ' + '1' * 100 + '\n')
    assert statement_separators(f) == [2]
    assert [n for n, l in code_lines(f) if len(l) > MAX_LINE] == [4]


def own_methods():
    "(class, name, function) for every function in the body of every public class of the package."
    for path in FILES:
        if path.stem.startswith('__'): continue                  # __init__, __main__: no classes
        mod = importlib.import_module(f'farmer_nb.{path.stem}')
        for cname in getattr(mod, '__all__', []):
            cls = getattr(mod, cname)
            if not inspect.isclass(cls) or not cls.__module__.startswith('farmer_nb'): continue
            for name, obj in vars(cls).items():
                if inspect.isfunction(obj) and obj.__module__.startswith('farmer_nb'):
                    yield cls, name, obj


def test_methods_know_their_class():
    "Every method, including those added in later cells with `@patch`, is named `Class.method`."
    methods = list(own_methods())
    assert len(methods) > 50
    wrong = [f"{cls.__name__}.{name} calls itself {f.__qualname__}" for cls, name, f in methods
             if f.__qualname__ != f'{cls.__name__}.{name}']
    assert not wrong, '\n'.join(wrong)


def test_patched_methods_keep_signature_and_help():
    "A patched method shows its real parameters and docstring, also under @torch.no_grad()."
    from farmer_nb.ar import ARPrior
    from farmer_nb.flow import AFBlock, block_forward
    from farmer_nb.model import DensityModel, Farmer, GaussianFlow
    params = list(inspect.signature(Farmer.sample).parameters)
    assert params == ['self', 'labels', 'n', 'generator', 'inverse', 'max_redraws', 'seeds',
                      'guidance', 'T_pi', 'T_sigma', 'gamma', 'progress']
    assert 'temperature' in inspect.signature(GaussianFlow.sample).parameters
    for word in ('guidance', 'T_pi', 'T_sigma', 'gamma'): assert word in Farmer.sample.__doc__
    assert list(inspect.signature(ARPrior.sample).parameters)[:2] == ['self', 'c']    # no_grad-wrapped
    assert AFBlock.inverse.__wrapped__.__qualname__ == 'AFBlock.inverse'
    assert block_forward is AFBlock.forward
    assert DensityModel.__setattr__.__qualname__ == 'DensityModel.__setattr__'
