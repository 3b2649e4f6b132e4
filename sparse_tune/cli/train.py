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
    add_run_folder_args(p)
    p.set_defaults(func=run, accepts_overrides=True)


def add_run_folder_args(p: argparse.ArgumentParser) -> None:
    """``--no-resume`` (``--overwrite_output_dir`` is a recipe key like any other: ``--overwrite_output_dir true``)."""
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="an interrupted run in output_dir (checkpoints, no final model) is resumed by default; this deletes "
        "its checkpoints and starts over. A finished run is never replaced without --overwrite_output_dir true",
    )


def overrides_of(args: argparse.Namespace) -> dict:
    """The ``--key value`` overrides, with ``--no-resume`` as the recipe key ``resume: false``."""
    from sparse_tune.config import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.no_resume:
        overrides["resume"] = False
    return overrides


def run(args: argparse.Namespace) -> int:
    from sparse_tune.config import load_train_config
    from sparse_tune.training.run import train

    cfg = load_train_config(args.config, overrides_of(args))
    out = train(cfg)
    if cfg.training.should_save:
        print(f"saved model to {out}")
        if cfg.eval.enabled:  # the run ends with one line: base vs best, and which model was saved
            from sparse_tune.training.summary import summary_from_folder

            line = summary_from_folder(out)
            if line:
                print(line)
    return 0
