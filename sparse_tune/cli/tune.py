"""``sparse-tune tune recipe.yaml --space space.yaml --trials N``: an Optuna study over a recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_tune.cli.argtypes import folder, positive_int, seed_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search hyper-parameters of a recipe with Optuna (TPE + median pruning on in-loop validation)",
        description="Each trial trains the recipe with values from the search space and is scored by its best "
        "validation metric (the recipe must set eval_split or eval_holdout). Rerunning the command continues "
        "the study stored in --storage. Extra --key value pairs override the recipe for every trial.",
    )
    p.add_argument("config", help="YAML recipe (configs/*.yaml)")
    p.add_argument(
        "--space", required=True, help="search-space YAML (see configs/search_spaces/scifact.yaml)"
    )
    p.add_argument("--trials", type=positive_int, required=True, help="total trials the study should reach")
    p.add_argument("--output", type=folder, default=None, help="folder for trials, best_config.yaml, trials.csv, plots "
                   "(default runs/tune/<recipe name>)")  # fmt: skip
    p.add_argument("--storage", default=None, help="SQLite file of the study (default OUTPUT/study.db)")
    p.add_argument("--study-name", default=None, help="default: the recipe's file name")
    p.add_argument("--sampler-seed", type=seed_int, default=0, help="seed of the TPE sampler")
    p.add_argument("--enqueue", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE...]",
                   help="run a trial with these values of searched keys before the sampler's own (the sampler "
                   "fills the others), e.g. the recipe's shipped values; repeatable; a rerun skips values the "
                   "study already tried")  # fmt: skip
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from sparse_tune.config import parse_overrides
    from sparse_tune.experiments.search_space import load_space, parse_enqueued
    from sparse_tune.experiments.study import TuneSettings, default_storage, run_study

    space = load_space(args.space)  # a bad space (or queued trial) fails here, before any training
    enqueue = tuple(parse_enqueued(text, space) for text in args.enqueue)
    output = Path(args.output or Path("runs/tune") / Path(args.config).stem)
    settings = TuneSettings(
        config=args.config,
        space=space,
        trials=args.trials,
        output=output,
        storage=Path(args.storage) if args.storage else default_storage(output),
        study_name=args.study_name or Path(args.config).stem,
        overrides=parse_overrides(args.overrides),
        seed=args.sampler_seed,
        enqueue=enqueue,
    )
    result = run_study(settings)
    print(f"wrote {result['trials_table']}" + "".join(f", {p}" for p in result["plots"]))
    print(f"best {result['metric']} {result['best_value']:.4f} (trial {result['best_trial']} of "
          f"{result['n_trials']}): {result['best_params']} -> {result['best_config']}")  # fmt: skip
    print(result["verdict"])
    return 0
