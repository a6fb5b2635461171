import pytest

# The chapters (nbs/) that the docs build of tests/test_docs.py executed without error in this run, with nbdev's
# runner and the same skip flags: tests/test_notebooks.py does not execute them a second time.
DOCS_EXECUTED = pytest.StashKey[set]()


def pytest_addoption(parser):
    parser.addoption("--nb-flags", default="", help="nbdev flags to run anyway in notebooks, e.g. 'slow cuda'")
