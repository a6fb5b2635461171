# Sourced by scripts/test.sh and scripts/main.sh: set up a fresh machine and activate the environment.
# APT_PACKAGES (Debian packages, installed when apt is usable) and EXTRAS (pip extras) are set by the caller.
# Torch comes first: a bare `torch` requirement would pull a multi-GB CUDA build instead of the CPU wheel.
# Every Python package is pinned by constraints.txt (pip-compile's output; the README says how to refresh it).
APT_PACKAGES=${APT_PACKAGES:-dataset-fashion-mnist}
EXTRAS=${EXTRAS:-dev}
missing=()
for pkg in $APT_PACKAGES; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [[ ${#missing[@]} -gt 0 ]] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian packages ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo="sudo -n"
  if [[ $(id -u) -eq 0 || -n $sudo ]]; then
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"; } >/dev/null \
      || echo "note: could not install ${missing[*]}; tests that need them are skipped"
  fi
fi
# OpenMP threads sleep instead of busy-waiting: on a CPU shared with other busy processes, spinning threads make
# PyTorch 10-40x slower (a 2-core machine running two jobs); on an idle machine the difference is small.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[[ -x .venv/bin/python ]] || { echo "setup: creating the virtual environment .venv"; "${PYTHON:-python3}" -m venv .venv; }
. .venv/bin/activate
# the pins without torch's own: torch is installed first, at TORCH_VERSION, and must not be swapped afterwards
pins=()
if [[ -f constraints.txt ]]; then
  pinfile=$(mktemp); grep -v '^torch==' constraints.txt > "$pinfile"; pins=(-c "$pinfile")
fi
if ! python -c "import torch" 2>/dev/null; then
  echo "setup: installing torch ${TORCH_VERSION:-2.13.0} (CPU build)"
  pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
fi
echo "setup: installing farmer_nb in editable mode with the extras [$EXTRAS]${pins:+, versions pinned by constraints.txt}"
pip install -q --disable-pip-version-check "${pins[@]}" -e ".[$EXTRAS]"
