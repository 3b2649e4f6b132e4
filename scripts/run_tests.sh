#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run): install the package with its test
# extras (CPU PyTorch pinned: an unpinned torch pulls several GB of CUDA packages), then run
# the test suite. Extra arguments go to pytest (e.g. `-k teachers`, `-x`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test]"

exec python3 -m pytest -q "$@"
