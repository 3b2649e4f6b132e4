"""Numeric ranges of options and recipe keys, checked where a value is parsed.

A ``--top-k 0`` that runs and writes zeros, or a negative step count that some later code
reads as "unset", costs the user a run and a results row. Each range is stated once here
and used by the command-line types (:mod:`sparse_tune.cli.argtypes`), the recipe
dataclasses' ``__post_init__`` and the OpenSearch settings, so a bad value is refused with
the same words wherever it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    """``lo <= x`` (``lo < x`` with ``lo_open``), and the same for ``hi``; ``also``: extra legal values."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    also: tuple[float, ...] = ()

    def ok(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    @property
    def text(self) -> str:
        """``">= 1"``, ``"> 0"``, ``"in (0, 1]"``, ``"0 or >= 2"``: the words of every message."""
        if self.lo is not None and self.hi is not None:
            text = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            text = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            text = f"{'<' if self.hi_open else '<='} {self.hi:g}"
        else:
            text = "finite"
        if self.also:
            text = f"{' or '.join(f'{a:g}' for a in self.also)} or {text}"
        return text

    def check(self, name: str, value: Any) -> Any:
        """``value`` unchanged when it is in range (``None`` passes: unset); ValueError naming ``name`` otherwise."""
        if value is None:
            return value
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (self.integer and value != int(value))
        ):
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"{name} must be {kind} {self.text}, got {value!r}")
        if not self.ok(value):
            raise ValueError(f"{name} must be {self.text}, got {value:g}")
        return value


POSITIVE_INT = Bound(lo=1, integer=True)  # counts, sizes, steps, depths
NON_NEGATIVE_INT = Bound(lo=0, integer=True)  # counts where 0 means none
POSITIVE = Bound(lo=0, lo_open=True)  # learning rates, scales, temperatures
NON_NEGATIVE = Bound(lo=0)  # weights, thresholds, ratios where 0 means off
SEED = Bound(lo=0, hi=2**32 - 1, integer=True)  # numpy's seed range
PROBABILITY = Bound(lo=0, hi=1, lo_open=True)  # (0, 1]


def check_fields(obj: Any, bounds: dict[str, Bound], prefix: str = "") -> None:
    """Check each ``bounds`` attribute of ``obj`` (a dataclass in ``__post_init__``); None means unset."""
    for name, bound in bounds.items():
        bound.check(prefix + name, getattr(obj, name))
