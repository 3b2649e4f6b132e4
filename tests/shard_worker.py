"""Run ``sparse-tune`` command lines one after another in this process, as each torchrun rank does.

``tests/test_sharded_inference.py`` starts this file under torchrun with two gloo ranks and
compares what rank 0 writes with the same command lines run in one process. Usage:
``shard_worker.py COMMANDS.json`` (a JSON list of argument lists; each must exit 0).
"""

from __future__ import annotations

import json
import sys

import torch

from sparse_tune.cli.__main__ import main


def run_all(commands: list[list[str]]) -> None:
    for argv in commands:
        code = main(argv)
        if code != 0:
            raise SystemExit(f"{argv[0]} exited {code}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    with open(sys.argv[1], encoding="utf-8") as fh:
        run_all(json.load(fh))
