"""``python -m bench.splade`` (from the repository root): the same command line as bench/bench_splade.py."""

import sys

from .cli import main

sys.exit(main())
