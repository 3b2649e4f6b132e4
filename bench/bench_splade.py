"""SPLADE head side by side: ours vs sentence-transformers vs a plain MLM head (and the dense model).

The documented entry point, ``python bench/bench_splade.py [--quick] [--sections ...]``; the
benchmark itself is the ``splade`` package next to this file (see ``bench/splade/__init__.py``).
Training-step workers are started through this file as well.
"""

import sys

from splade.cli import main  # this file's folder, bench/, is first on sys.path

if __name__ == "__main__":
    sys.exit(main())
