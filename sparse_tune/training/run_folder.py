"""What ``train`` may do with the folder it writes into: never replace a finished run, resume an interrupted one.

A training folder is in one of three states, read from what is on disk:

- *new*: absent, or holding neither a final model nor a checkpoint;
- *finished*: a final model at the top (``model.safetensors`` / ``sparse_tune.json``, written
  last by ``train``). Training into it is refused unless ``overwrite_output_dir`` is set: a
  second run with another seed or learning rate would silently replace the first;
- *interrupted*: ``checkpoint-*`` folders but no final model (Ctrl-C, a killed job, a lost
  node). The run resumes from its last complete checkpoint by default, because the user's
  obvious next step is to run the same command again; ``resume: false`` (``--no-resume``)
  starts over. The recipe is saved when the run starts, so a command with other settings is
  told so instead of silently continuing a different run.

Callers that own the folder (the distillation pipeline and ``tune``, whose markers and study
decide when a run must be redone) pass ``owned=True``: a finished run or an interrupted one
with other settings is then replaced without asking.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from sparse_tune.models.retriever import SETTINGS_FILE
from sparse_tune.training.trainer import last_complete_checkpoint

logger = logging.getLogger(__name__)

RECIPE_FILE = "recipe.yaml"
#: Top-level files whose presence means a final model was saved.
FINAL_MODEL_FILES = ("model.safetensors", SETTINGS_FILE)
#: What a run leaves besides checkpoints; removed when a run starts over, so the folder holds one run.
RUN_FILES = (
    *FINAL_MODEL_FILES,
    "config.json",
    "trainer_state.json",
    "validation_summary.json",
    "training_args.bin",
    RECIPE_FILE,
)
#: Recipe keys that say how to start, not what to train: they may differ between a run and its resumption.
START_KEYS = frozenset({"output_dir", "resume_from_checkpoint", "overwrite_output_dir", "resume"})


class RunFolderError(ValueError):
    """The output folder cannot be used as asked; the message names it and the way out."""


@dataclass(frozen=True)
class RunFolder:
    """What an output folder holds: ``state``, the last complete checkpoint and the saved recipe."""

    path: Path
    state: Literal["new", "finished", "interrupted"]
    checkpoint: str | None
    recipe: dict[str, Any] | None

    def differences(self, source: dict[str, Any]) -> list[str]:
        """Recipe keys whose value differs between the saved run and ``source`` (empty: same run)."""
        if self.recipe is None:
            return []  # a run saved before recipes were written at the start: nothing to compare
        keys = (set(self.recipe) | set(source)) - START_KEYS
        return sorted(k for k in keys if self.recipe.get(k) != source.get(k))


def saved_recipe(folder: str | Path) -> dict[str, Any] | None:
    """The recipe a run saved in ``folder`` at its start; ``None`` when there is none or it is unreadable."""
    try:
        loaded = yaml.safe_load((Path(folder) / RECIPE_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def inspect_run_folder(output_dir: str | Path) -> RunFolder:
    """Read the state of ``output_dir`` (see the module doc); a path that is not a folder is an error."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"output_dir {path} is a file, not a folder: choose a folder for the run")
    if not path.is_dir():
        return RunFolder(path, "new", None, None)
    recipe = saved_recipe(path)
    if any((path / name).is_file() for name in FINAL_MODEL_FILES):
        return RunFolder(path, "finished", None, recipe)
    checkpoint = last_complete_checkpoint(path)
    if checkpoint is not None:
        return RunFolder(path, "interrupted", checkpoint, recipe)
    return RunFolder(path, "new", None, recipe)


def _shown(diff: list[str], saved: dict[str, Any] | None, source: dict[str, Any]) -> str:
    k = diff[0]
    more = f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""
    return f"{k}: {(saved or {}).get(k)!r} there, {source.get(k)!r} now{more}"


def check_run_folder(
    output_dir: str | Path,
    source: dict[str, Any],
    overwrite: bool = False,
    resume: bool = True,
    owned: bool = False,
) -> RunFolder:
    """Refuse what ``train`` must not do to ``output_dir`` (no side effects); returns its state.

    Called before any work (and by ``seeds`` for every seed up front), so a refusal costs nothing.
    """
    folder = inspect_run_folder(output_dir)
    if owned or overwrite:
        return folder
    if folder.state == "finished":
        raise RunFolderError(
            f"output_dir {folder.path} holds a finished run (its final model is saved there); choose a "
            "fresh --output_dir, or pass --overwrite_output_dir true to replace that run"
        )
    if folder.state == "interrupted" and resume:
        diff = folder.differences(source)
        if diff:
            raise RunFolderError(
                f"output_dir {folder.path} holds an interrupted run with other settings "
                f"({_shown(diff, folder.recipe, source)}); run its own command to resume it, pass "
                "--no-resume to start over there, or choose a fresh --output_dir"
            )
    return folder


def finished_run_of(output_dir: str | Path, source: dict[str, Any]) -> bool:
    """Whether ``output_dir`` holds a finished run of exactly this recipe (``seeds`` reuses it, not retrains)."""
    folder = inspect_run_folder(output_dir)
    return folder.state == "finished" and folder.recipe is not None and not folder.differences(source)


def clear_run(folder: Path) -> None:
    """Remove an earlier run's checkpoints and final-model files, keeping data a run may reuse (mined, idf)."""
    from sparse_tune.training.keep_base import SNAPSHOT_DIR

    for leftover in [*folder.glob("checkpoint-*"), folder / SNAPSHOT_DIR]:
        if leftover.is_dir():
            shutil.rmtree(leftover)
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


def start_run(
    output_dir: str | Path,
    source: dict[str, Any],
    overwrite: bool = False,
    resume: bool = True,
    owned: bool = False,
    write: bool = True,
) -> str | None:
    """Prepare ``output_dir`` for a run of ``source``; returns the checkpoint to resume from, or ``None``.

    Resumes an interrupted run of the same recipe (unless ``resume`` is false); clears the folder
    when starting over on top of an earlier run. ``write``: this process saves (rank 0 under DDP);
    the other ranks only read the same decision.
    """
    folder = check_run_folder(output_dir, source, overwrite, resume, owned)
    same = not folder.differences(source)
    if folder.state == "interrupted" and resume and not overwrite and same:
        logger.info(
            "resuming the interrupted run in %s from %s (--no-resume starts over)",
            folder.path,
            folder.checkpoint,
        )
        resumed = folder.checkpoint
    else:
        resumed = None
        if folder.state != "new" or folder.recipe is not None:
            if write:
                clear_run(folder.path)
            why = {"finished": "replacing the finished run", "interrupted": "starting over"}.get(folder.state)
            if why:
                logger.info("%s in %s (its checkpoints and final model are removed)", why, folder.path)
    if write:
        from sparse_tune.fsio import atomic_write_text

        folder.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder.path / RECIPE_FILE, yaml.safe_dump(source, sort_keys=False))
    return resumed


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says how to continue (the CLI prints it as one line, exit 130)."""


def interrupted(output_dir: str | Path, step: int) -> TrainingInterrupted:
    """The :class:`TrainingInterrupted` for a run stopped at ``step``: where it can resume from."""
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        return TrainingInterrupted(
            f"at step {step}, before the first checkpoint in {output_dir}; running the same command starts over"
        )
    return TrainingInterrupted(
        f"at step {step}; run the same command again to resume from {checkpoint} (--no-resume starts over)"
    )
