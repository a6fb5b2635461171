# Sourced by scripts/test.sh and scripts/main.sh: set up a fresh machine and activate the environment.
# Debian's Fashion-MNIST package when apt is usable, a virtual environment, the CPU build of torch first
# (a bare `torch` requirement would pull a multi-GB CUDA build), then the project.
if [[ ! -d /usr/share/datasets/fashion-mnist ]] && command -v apt-get >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo="sudo -n"
  if [[ $(id -u) -eq 0 || -n $sudo ]]; then
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; } \
      || echo "note: could not install dataset-fashion-mnist; cells that need the real data are skipped"
  fi
fi
[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
fi
pip install -q --disable-pip-version-check -e ".[dev]"
