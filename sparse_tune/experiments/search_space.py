"""A hyper-parameter search space read from YAML, checked before any trial runs.

Each key is a recipe key (any key ``sparse-tune train`` accepts) and maps to one of::

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    flops_doc_threshold: {type: int, low: 64, high: 256, step: 32}
    train_file: {type: categorical, choices: [null, runs/mined.jsonl]}   # null: random BEIR negatives

A space that cannot be used is a ``ConfigError`` naming the key and the problem, so the
CLI answers in one line with exit code 2 instead of failing inside the first trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import yaml

from sparse_tune.config import ConfigError, valid_keys

Kind = Literal["float", "int", "categorical"]
_SPEC_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One searched recipe key."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an ``optuna.Trial`` proposes for this key."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def check(self, value: Any) -> Any:
        """``value`` as this key would take it (a number, or one of the choices); ConfigError if outside the space."""
        where = f"enqueued {self.name}"
        if self.kind == "categorical":
            if value not in self.choices:
                raise ConfigError(f"{where}: {value!r} is not one of the choices {list(self.choices)}")
            return value
        number = _number(where, value, self.kind == "int")
        if not self.low <= number <= self.high:
            raise ConfigError(f"{where}: {number:g} is outside [{self.low:g}, {self.high:g}]")
        return int(number) if self.kind == "int" else number


def _number(where: str, value: Any, integer: bool) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        out = float(value)  # YAML reads 1e-5 (no dot) as a string
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if integer and out != int(out):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return out


def parse_param(name: str, spec: Any) -> Param:
    """One ``name: {type: ..., ...}`` entry -> :class:`Param`; ConfigError says what is wrong."""
    where = f"search space key {name!r}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: expected a mapping with type: float | int | categorical, got {spec!r}")
    kind = spec["type"]
    if kind not in _SPEC_KEYS:
        raise ConfigError(f"{where}: type must be float, int or categorical, got {kind!r}")
    unknown = set(spec) - _SPEC_KEYS[kind]
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)} for type {kind}; valid: {sorted(_SPEC_KEYS[kind])}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {c!r}")
        return Param(name, "categorical", choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: {kind} needs low and high")
    integer = kind == "int"
    low, high = _number(f"{where} low", spec["low"], integer), _number(f"{where} high", spec["high"], integer)
    if not low < high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got {low:g}")
    step = None
    if spec.get("step") is not None:
        step = _number(f"{where} step", spec["step"], integer)
        if step <= 0:
            raise ConfigError(f"{where}: step must be > 0, got {step:g}")
        if log:
            raise ConfigError(f"{where}: step and log cannot be combined (optuna does not support it)")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def load_space(path: str | PathLike[str]) -> list[Param]:
    """Read and check a search-space YAML file (see the module docstring for its shape)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path}: file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space {path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"search space {path}: expected a non-empty mapping of recipe key -> {{type: ...}}")
    known = {k for names in valid_keys().values() for k in names}
    bad = sorted(k for k in loaded if k not in known)
    if bad:
        raise ConfigError(f"search space {path}: not recipe keys: {', '.join(map(repr, bad))}")
    for fixed in ("output_dir", "seed"):
        if fixed in loaded:
            raise ConfigError(
                f"search space {path}: {fixed!r} is set per trial by tune and cannot be searched"
            )
    return [parse_param(name, spec) for name, spec in loaded.items()]


def parse_enqueued(text: str, space: list[Param]) -> dict[str, Any]:
    """``"learning_rate=1e-4,docs_per_query=8"`` -> checked trial values (YAML scalars; ``null`` is None).

    Keys must be searched keys: a queued trial fixes some of the space, the sampler fills the rest.
    """
    by_name = {p.name: p for p in space}
    values: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--enqueue {text!r}: expected KEY=VALUE[,KEY=VALUE...]")
        if key not in by_name:
            raise ConfigError(f"--enqueue: {key!r} is not a searched key; the space has {', '.join(by_name)}")
        if key in values:
            raise ConfigError(f"--enqueue {text!r}: {key!r} is given twice")
        values[key] = by_name[key].check(yaml.safe_load(raw) if raw.strip() else None)
    return values
