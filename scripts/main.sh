#!/usr/bin/env bash
# The main job in one command: scripts/main.sh [options of `farmer train`]
# Sets up a fresh machine (as scripts/test.sh does), trains a small FARMER on Fashion-MNIST on the device
# present (2 minutes on a CPU, 10 epochs on a GPU), writes a sample grid PNG and prints test bits/dim.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
exec farmer train "$@"
