"""argparse ``type=`` validators: a number out of range is refused by argparse itself, naming the flag.

``--top-k 0`` then ends as ``sparse-tune evaluate: error: argument --top-k: must be an integer
>= 1, got 0 (see --help)`` and exit code 2, before any data is read. The ranges are the
:mod:`sparse_tune.bounds` ones the recipe keys use.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from sparse_tune.bounds import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, SEED, Bound


def number(bound: Bound) -> Callable[[str], float]:
    """An argparse type that parses an int (``bound.integer``) or float and checks ``bound``."""

    kind = "an integer" if bound.integer else "a number"

    def parse(text: str) -> float:
        try:
            value = int(text) if bound.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind} {bound.text}, got {text!r}") from None
        if not bound.ok(value):
            raise argparse.ArgumentTypeError(f"must be {kind} {bound.text}, got {text}")
        return value

    parse.__name__ = "integer" if bound.integer else "number"  # argparse names the type in some messages
    parse.bound = bound  # type: ignore[attr-defined]  # read by the test that walks every option
    return parse


positive_int = number(POSITIVE_INT)
non_negative_int = number(NON_NEGATIVE_INT)
positive_float = number(POSITIVE)
non_negative_float = number(NON_NEGATIVE)
seed_int = number(SEED)


def folder(text: str) -> str:
    """An output folder: may not exist yet, but an existing file is refused (it would fail after the work)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text
