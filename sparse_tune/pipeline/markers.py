"""Completion markers: how the pipeline knows a unit of work is done and still up to date.

A unit (mining one file, training one teacher, scoring, ...) writes its outputs atomically,
then, last, a marker ``OUTPUT/stages/<name>.json`` holding the settings it ran with, the
run ids of the markers it read from, its outputs and a fresh run id of its own. The unit
is complete only while all of that still holds: a changed setting, an input that was
redone since (its run id changed) or a missing output makes it run again, and so, through
the run ids, everything downstream of it. A crash before the marker leaves the unit
incomplete, never half-trusted.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_tune.fsio import atomic_write_text

__all__ = ["MarkerStore"]


def _canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON, so settings compare equal across runs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass
class MarkerStore:
    """The markers of one output folder."""

    out: Path

    @property
    def folder(self) -> Path:
        return self.out / "stages"

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def run_id(self, name: str) -> str | None:
        marker = self.read(name)
        return marker.get("run_id") if marker else None

    def problem(self, name: str, settings: dict[str, Any], depends: tuple[str, ...]) -> str | None:
        """Why unit ``name`` must run: ``None`` when its marker says it is complete and up to date."""
        marker = self.read(name)
        if marker is None:
            return "not run yet"
        if marker.get("settings") != _canonical(settings):
            return "settings changed"
        if marker.get("inputs") != {dep: self.run_id(dep) for dep in depends}:
            return "inputs changed"
        missing = [p for p in marker.get("outputs", []) if not (self.out / p).exists()]
        if missing:
            return f"output {missing[0]} missing"
        return None

    def clear(self, name: str) -> None:
        """Forget a unit before it runs again, so a crash half-way never leaves it looking complete."""
        self.path(name).unlink(missing_ok=True)

    def write(
        self,
        name: str,
        settings: dict[str, Any],
        depends: tuple[str, ...],
        outputs: list[Path],
        seconds: float,
    ) -> None:
        """The last write of a unit: its marker (outputs are recorded relative to the output folder)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = {
            "name": name,
            "run_id": uuid.uuid4().hex,
            "settings": _canonical(settings),
            "inputs": {dep: self.run_id(dep) for dep in depends},
            "outputs": [str(Path(p).relative_to(self.out)) for p in outputs],
            "seconds": round(seconds, 3),
        }
        atomic_write_text(self.path(name), json.dumps(marker, indent=2) + "\n")
