"""Expand ``--model`` arguments (names, folders, globs) and read each checkpoint's training step."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

_STEP = re.compile(r"checkpoint-(\d+)$")


def expand_models(specs: list[str]) -> list[str]:
    """Globs expand to matching folders sorted by training step; names and hub ids pass through.

    A model named twice (``--model 'runs/x/checkpoint-*' --model runs/x/checkpoint-5``) is
    evaluated once, where it first appears.
    """
    out: list[str] = []
    for spec in specs:
        if any(ch in spec for ch in "*?["):
            matches = [m for m in glob.glob(spec) if Path(m).is_dir()]
            if not matches:
                raise FileNotFoundError(f"--model {spec!r} matched no folder")
            out.extend(sorted(matches, key=lambda m: (training_step(m) is None, training_step(m) or 0, m)))
        else:
            out.append(spec)
    return list(dict.fromkeys(out))


def training_step(model: str) -> int | None:
    """The step a checkpoint was saved at: ``trainer_state.json`` or a ``checkpoint-N`` folder name."""
    path = Path(model)
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["global_step"])
        except (ValueError, KeyError, OSError):
            pass
    m = _STEP.search(path.name)
    return int(m.group(1)) if m else None
