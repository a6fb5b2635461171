#!/usr/bin/env bash
# The whole test suite from a fresh clone, in one command: scripts/test.sh [pytest args]
# Sets up what it needs (Debian's Fashion-MNIST package when apt is usable, a virtual environment,
# the CPU build of torch first, then the project), checks that the notebooks are clean and the
# library is in sync with them, and runs pytest: unit tests plus every notebook.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 1-2. Data, Chromium for the docs tests, a C++ compiler (torch.compile on a CPU), and the Python
#      environment (with the docs tools).
APT_PACKAGES="dataset-fashion-mnist chromium g++" EXTRAS="dev,docs" . scripts/setup.sh

# 2b. Emoji64, the colour dataset (two npm tarballs, 136 MB, fetched once with npm and decoded into a cache, ~30 s);
#     without npm the tests that need the real images are skipped.
if command -v npm >/dev/null; then
  python -c "from farmer_nb.data import load_emoji64; load_emoji64()" \
    || echo "note: could not fetch Emoji64; tests that need it are skipped"
fi

# 3. Notebooks are the source: they must be clean, and the library exactly what nbdev exports.
if git rev-parse --git-dir >/dev/null 2>&1; then
  nbdev-clean; if compgen -G "tutorials/*.ipynb" >/dev/null; then nbdev-clean --fname tutorials; fi
  [[ -z "$(git status --porcelain -uno)" ]] || { git status -uno; echo "notebooks not clean: run nbdev-clean and commit"; exit 1; }
  nbdev-export
  [[ -z "$(git status --porcelain -uno)" ]] || { git diff --stat; echo "library out of sync: run nbdev-export and commit"; exit 1; }
fi

# 4. Tests: unit tests, every notebook (cells flagged #| slow, #| cuda, #| notest are skipped), and the docs
#    site built from the notebooks and checked in headless Chromium; on two worker processes (pytest-xdist), a
#    test file at a time (tests/conftest.py keeps the docs build and the notebook tests together, first).
set +e; python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"; rc=$?; set -e
[[ $rc -eq 5 ]] && { echo "pytest collected no tests"; exit 1; }
exit $rc
