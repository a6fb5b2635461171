"""Run every notebook in nbs/ and tutorials/ through nbdev's runner, honouring #| slow, #| cuda and #| notest.
A chapter that the docs build (tests/test_docs.py, earlier in the same run) executed without error with the same
runner and flags is not run again, unless it branches on IN_TEST (the docs build runs it outside test mode) or
--nb-flags forces cells the build skipped."""
from pathlib import Path
import pytest
from conftest import DOCS_EXECUTED
from nbdev.config import get_config
from nbdev.test import test_nb as _run_nb      # aliased: a bare `test_nb` would be collected as a test

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for d in ("nbs", "tutorials") for p in (ROOT/d).rglob("*.ipynb")
             if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts
             and not any((q/".notest").exists() for q in p.parents if ROOT in q.parents or q == ROOT))

@pytest.mark.parametrize("nb", NBS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook(nb, request):
    skip = str(get_config(ROOT).tst_flags).split()
    force = request.config.getoption("--nb-flags").split()
    if not force and nb in request.config.stash.get(DOCS_EXECUTED, set()) and 'IN_TEST' not in nb.read_text():
        pytest.skip("executed without error by the docs build in this run (tests/test_docs.py)")
    ok, secs = _run_nb(nb, skip_flags=[f for f in skip if f not in force], force_flags=force, basepath=ROOT)
    assert ok, f"{nb.relative_to(ROOT)} failed (the cell traceback is printed above)"
