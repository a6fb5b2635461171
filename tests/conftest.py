def pytest_addoption(parser):
    parser.addoption("--nb-flags", default="", help="nbdev flags to run anyway in notebooks, e.g. 'slow cuda'")
