import pytest

# The chapters (nbs/) that the docs build of tests/test_docs.py executed without error in this run, with nbdev's
# runner and the same skip flags: tests/test_notebooks.py does not execute them a second time.
DOCS_EXECUTED = pytest.StashKey[set]()


NOTEBOOK_TESTS = ('test_docs.py', 'test_notebooks.py')   # one unit of work, in this order, run first


def pytest_collection_modifyitems(config, items):
    "The docs build and the notebook tests first (together the longest unit of work), in their own order."
    items.sort(key=lambda item: item.path.name not in NOTEBOOK_TESTS)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist with --dist loadfile (scripts/test.sh): each test file is a unit of work for one worker, and the
    docs build and the notebook tests are one unit, so that test_notebooks.py sees what the build executed.
    (xdist_group marks with --dist loadgroup would say the same, but under pytest 9.2 they no longer group.)"""
    if config.getvalue('dist') != 'loadfile': return None
    from xdist.scheduler import LoadFileScheduling
    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return 'notebooks' if scope.endswith(NOTEBOOK_TESTS) else scope
    return Scheduling(config, log)


def pytest_addoption(parser):
    parser.addoption("--nb-flags", default="", help="nbdev flags to run anyway in notebooks, e.g. 'slow cuda'")
