"""Every numeric option of every verb refuses 0 and -1 where they mean nothing, naming the option in one line.

The argparse options are found by walking the parsers ``sparse-tune`` builds (a numeric option
is one whose ``type`` is ``int``, ``float`` or a :mod:`sparse_tune.cli.argtypes` validator), so a
flag added later is walked too. ``train`` takes its numbers as recipe keys: every int/float field
of the recipe dataclasses and every TrainingArguments key with a range
(:data:`sparse_tune.config.TRAINING_BOUNDS`) is walked the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from sparse_tune.cli.__main__ import build_parser, main
from sparse_tune.config import OURS, TRAINING_BOUNDS, load_train_config

#: Options where 0 is a legal value (-1 never is): seeds, counts where 0 means none, weights and
#: thresholds where 0 means off, score's "0 = whole rows".
ZERO_IS_LEGAL = {
    ("mine", "--random-negatives"),  # no random negatives
    ("mine", "--seed"),
    ("merge", "--seed"),
    ("merge", "--tolerance"),  # 0: the best alpha itself
    ("score", "--docs-per-query"),  # 0 = score each (query, positive) row whole
    ("seeds", "--seeds"),
    ("tune", "--sampler-seed"),
    ("evaluate", "--prune-ratio"),  # max_ratio / abs_value / alpha_mass 0 keeps everything
    ("encode", "--prune-ratio"),
    ("export", "--prune-ratio"),
    ("evaluate", "--two-phase-prune-ratio"),
    ("export", "--two-phase-prune-ratio"),
    ("evaluate", "--seismic-approximate-threshold"),  # SEISMIC from the first document
    ("export", "--seismic-approximate-threshold"),
}
TRAIN_ZERO_IS_LEGAL = {
    "flops_doc_weight",
    "flops_query_weight",
    "flops_warmup_steps",
    "flops_doc_threshold",
    "flops_query_threshold",
    "eval_holdout_seed",
    "seed",
    "data_seed",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "dataloader_num_workers",
    "adam_beta1",
    "adam_beta2",
}


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _is_numeric(action: argparse.Action) -> bool:
    return action.type in (int, float) or hasattr(action.type, "bound")


def _required(parser: argparse.ArgumentParser, walked: str) -> list[str]:
    """Placeholder values for the verb's required arguments, so only the walked option can fail to parse."""
    out: list[str] = []
    for a in parser._actions:
        if walked in a.option_strings:
            continue
        if not a.option_strings:
            out.append("recipe.yaml")  # a positional: the recipe / config
        elif a.required:
            out += [a.option_strings[0], "1" if _is_numeric(a) else str(a.choices[0]) if a.choices else "x"]
    return out


NUMERIC = [
    (verb, a.option_strings[0])
    for verb, parser in _verbs().items()
    for a in parser._actions
    if _is_numeric(a)
]
CASES = [(verb, flag, value) for verb, flag in NUMERIC for value in ("0", "-1")]


def test_the_walk_finds_the_options_of_every_verb():
    verbs = {verb for verb, _ in NUMERIC}
    assert {"evaluate", "encode", "idf", "mine", "score", "export", "tune", "seeds"} <= verbs
    assert ("evaluate", "--top-k") in NUMERIC and ("evaluate", "--max-queries") in NUMERIC
    # no bare int/float left: each has a range (a raw int accepts -1 and the verb runs with it)
    raw = [
        (v, a.option_strings[0]) for v, p in _verbs().items() for a in p._actions if a.type in (int, float)
    ]
    assert raw == []


@pytest.mark.parametrize(("verb", "flag", "value"), CASES, ids=[f"{v} {f} {x}" for v, f, x in CASES])
def test_zero_and_minus_one_are_refused_naming_the_flag(verb, flag, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = _verbs()[verb]
    args = [verb, *_required(parser, flag), flag, value]
    if value == "0" and (verb, flag) in ZERO_IS_LEGAL:
        ns, _ = build_parser().parse_known_args(args)  # parses: 0 is a legal value
        assert getattr(ns, parser._option_string_actions[flag].dest) in (0, [0])
        return
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"sparse-tune {verb}: error: argument {flag}: must be ") and f"got {value}" in err


def _train_numeric_keys() -> list[str]:
    keys = []
    for cls in OURS:
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            if inner[0] in (int, float) and inner[0] is not bool:
                keys.append(f.name)
    return keys + list(TRAINING_BOUNDS)


TRAIN_CASES = [(key, value) for key in _train_numeric_keys() for value in ("0", "-1")]


def test_the_train_walk_covers_steps_rates_and_batches():
    keys = set(_train_numeric_keys())
    assert {"max_steps", "save_steps", "eval_steps", "logging_steps", "learning_rate"} <= keys
    assert {"per_device_train_batch_size", "docs_per_query", "max_doc_length", "eval_max_queries"} <= keys


@pytest.mark.parametrize(("key", "value"), TRAIN_CASES, ids=[f"{k} {v}" for k, v in TRAIN_CASES])
def test_train_refuses_zero_and_minus_one_naming_the_key(key, value, capsys, tmp_path):
    if value == "0" and key in TRAIN_ZERO_IS_LEGAL:
        cfg = load_train_config(None, {key: 0, "output_dir": str(tmp_path)})  # accepted
        assert cfg is not None
        return
    recipe = tmp_path / "empty.yaml"
    recipe.write_text("# every key from the command line\n")
    rc = main(["train", str(recipe), f"--{key}", value, "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"sparse-tune train: error: {key} must be ") or err.startswith(
        f"sparse-tune train: error: {key}: "
    ), err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_messages_are_exact_for_the_issue_cases(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "x", "--model", "m", "--top-k", "0"])
    assert capsys.readouterr().err == (
        "sparse-tune evaluate: error: argument --top-k: must be an integer >= 1, got 0 (see --help)\n"
    )
    assert main(["train", "--output_dir", "x", "--max_steps", "-5"]) == 2
    assert capsys.readouterr().err == "sparse-tune train: error: max_steps must be >= 1, got -5\n"
    with pytest.raises(SystemExit):
        main(["mine", "--dataset", "x", "--output", "o", "--range", "5-2"])
    assert "argument --range: expected START-END with 1 <= START <= END" in capsys.readouterr().err
