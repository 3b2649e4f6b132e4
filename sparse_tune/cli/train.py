"""``sparse-tune train recipe.yaml [--key value ...]`` (also ``torchrun scripts/train_ir.py recipe.yaml``)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a retriever from a YAML recipe",
        description="Train from a YAML recipe; any config key can be overridden with --key value "
        "(e.g. --train_file x.jsonl --max_steps 5 --output_dir out).",
    )
    p.add_argument("config", nargs="?", help="YAML recipe (configs/*.yaml)")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.config import load_train_config, parse_overrides
    from sparse_tune.training.run import train

    cfg = load_train_config(args.config, parse_overrides(args.overrides))
    out = train(cfg)
    if cfg.training.should_save:
        print(f"saved model to {out}")
        if cfg.eval.enabled:  # the run ends with one line: base vs best, and which model was saved
            from sparse_tune.training.summary import summary_from_folder

            line = summary_from_folder(out)
            if line:
                print(line)
    return 0
