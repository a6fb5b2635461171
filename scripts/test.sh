#!/usr/bin/env bash
# The whole test suite from a fresh clone, in one command: scripts/test.sh [pytest args]
# Sets up what it needs (Debian's Fashion-MNIST package when apt is usable, a virtual environment,
# the CPU build of torch first, then the project), checks that the notebooks are clean and the
# library is in sync with them, and runs pytest: unit tests plus every notebook.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 1. Data: Debian's dataset-fashion-mnist puts the IDX files in /usr/share/datasets/fashion-mnist.
if [[ ! -d /usr/share/datasets/fashion-mnist ]] && command -v apt-get >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo="sudo -n"
  if [[ $(id -u) -eq 0 || -n $sudo ]]; then
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; } \
      || echo "note: could not install dataset-fashion-mnist; cells that need the real data are skipped"
  fi
fi

# 2. Python: a virtual environment; torch before the project, or pip resolves a multi-GB CUDA build.
[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
pip install -q --disable-pip-version-check -e ".[dev]"

# 3. Notebooks are the source: they must be clean, and the library exactly what nbdev exports.
if git rev-parse --git-dir >/dev/null 2>&1; then
  nbdev-clean; if compgen -G "tutorials/*.ipynb" >/dev/null; then nbdev-clean --fname tutorials; fi
  [[ -z "$(git status --porcelain -uno)" ]] || { git status -uno; echo "notebooks not clean: run nbdev-clean and commit"; exit 1; }
  nbdev-export
  [[ -z "$(git status --porcelain -uno)" ]] || { git diff --stat; echo "library out of sync: run nbdev-export and commit"; exit 1; }
fi

# 4. Tests: unit tests and every notebook (cells flagged #| slow, #| cuda, #| notest are skipped).
set +e; python -m pytest -q "$@"; rc=$?; set -e
[[ $rc -eq 5 ]] && { echo "pytest collected no tests"; exit 1; }
exit $rc
