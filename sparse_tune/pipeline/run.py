"""Run the distillation pipeline: its stages in order, each skipped while its output is complete.

Stages are made of units, each with its own completion marker (see
:mod:`sparse_tune.pipeline.markers`): ``mine`` (the candidates, and each teacher's own mined
file), ``teachers`` (one unit per teacher trained by a recipe), ``score``, ``report`` and
``student``. A unit runs when its marker is missing or out of date, when its stage is
forced, or when a unit it reads from has run again since; so ``--force score`` reruns score
and then the student, which reads the scored file, but not the report, which does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sparse_tune.config import TrainConfig
from sparse_tune.pipeline import STAGES
from sparse_tune.pipeline.config import PipelineConfig
from sparse_tune.pipeline.markers import MarkerStore
from sparse_tune.pipeline.stages import Workspace

__all__ = ["StageResult", "run_pipeline"]


@dataclass
class Unit:
    """One piece of work with its own marker: what it depends on, its settings and how to do it."""

    name: str
    settings: dict[str, Any]
    depends: tuple[str, ...]
    run: Callable[[], list[Path]]


@dataclass
class StageResult:
    """What a stage did: ``ran`` lists the units it ran (empty: skipped), ``where`` its main output."""

    stage: str
    ran: list[str]
    skipped: list[str]
    where: Path
    seconds: float


def _units(ws: Workspace) -> dict[str, list[Unit]]:
    """Every stage's units, in order; names are the markers' names."""
    cfg = ws.cfg
    trained = [t for t in cfg.teachers if t.recipe]
    mined = [t for t in trained if t.mined is not None]
    teacher_units = [f"teacher-{t.name}" for t in trained]
    # Settings never hold paths inside the output folder, so a run folder can move: what a unit
    # read from the folder is identified by that unit's run id (``depends``) instead.
    ensemble = [{"name": t.name, "type": t.type, "model": c.model if not t.recipe else None, "weight": t.weight,
                 **({"bm25": c.bm25, "fusion": c.fusion} if t.type == "hybrid" else {})}
                for t, c in zip(cfg.teachers, cfg.teacher_configs(), strict=True)]  # fmt: skip
    scoring = {"teachers": ensemble, "scoring": asdict(cfg.scoring)}
    split = {k: getattr(cfg, k) for k in ("beir_dir", "train_split", "eval_holdout", "eval_holdout_seed",
                                          "eval_split", "eval_max_queries")}  # fmt: skip
    return {
        "mine": [Unit("mine", {**split, "mining": cfg.mining.identity()}, (), ws.mine_candidates)]
        + [
            Unit(f"mine-{t.name}", {**split, "mining": cfg.teacher_mining(t).identity()}, (),
                 lambda t=t: ws.mine_for_teacher(t))
            for t in mined
        ],
        "teachers": [
            Unit(f"teacher-{t.name}", {"source": _recipe_settings(cfg.teacher_train_config(t))},
                 (f"mine-{t.name}",) if t.mined is not None else (), lambda t=t: ws.train_teacher(t))
            for t in trained
        ],
        "score": [Unit("score", scoring, ("mine", *teacher_units), ws.score_candidates)],
        "report": [Unit("report", {**scoring, "student": _recipe_settings(cfg.student_train_config())},
                        ("mine", *teacher_units), ws.report_teachers)],
        "student": [Unit("student", {"source": _recipe_settings(cfg.student_train_config())}, ("score",), ws.train_student)],
    }  # fmt: skip


def _recipe_settings(cfg: TrainConfig) -> dict[str, Any]:
    """A training run's recipe as run, less the paths inside the output folder (see ``_units``)."""
    return {k: v for k, v in cfg.source.items() if k not in ("output_dir", "train_file")}


def _where(ws: Workspace, stage: str) -> Path:
    f = ws.files
    return {"mine": f.mined, "teachers": ws.cfg.out / "teachers", "score": f.scored, "report": f.report,
            "student": f.student}[stage]  # fmt: skip


def check_teacher_models(cfg: PipelineConfig) -> None:
    """Every existing (not trained) model teacher can be loaded: one line naming the teacher and folder if not."""
    from sparse_tune.models.folder_check import check_model_source

    for spec, teacher in zip(cfg.teachers, cfg.teacher_configs(), strict=True):
        if spec.recipe or teacher.type not in ("dense", "sparse", "cross_encoder", "hybrid"):
            continue
        try:
            check_model_source(teacher.model, architecture=teacher.type != "cross_encoder")
        except (ValueError, FileNotFoundError) as exc:
            raise type(exc)(f"teacher {spec.name}: {exc}") from None


def run_pipeline(
    cfg: PipelineConfig,
    force: Iterable[str] = (),
    only: Iterable[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[StageResult]:
    """Run (or skip) every stage in order, printing one line per stage; see the module doc.

    ``force``: stages whose units all run again. ``only``: run just these stages; a unit they
    read from must then be complete already (ValueError otherwise, naming the stage to run).
    """
    force, selected = set(force), set(STAGES if only is None else only)
    unknown = (force | selected) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}: stages are {', '.join(STAGES)}")
    check_teacher_models(cfg)  # before mining: a broken teacher folder would fail only at the score stage
    ws = Workspace(cfg)
    markers = MarkerStore(cfg.out)
    units = _units(ws)
    stage_of = {u.name: stage for stage, us in units.items() for u in us}
    unavailable: dict[str, str] = {}  # unit -> why it is not complete, for units --only leaves out
    results = []
    for i, stage in enumerate(STAGES, 1):
        start = time.perf_counter()
        ran, skipped = [], []
        for unit in units[stage]:
            problem = markers.problem(unit.name, unit.settings, unit.depends)
            if stage not in selected:
                if problem:
                    unavailable[unit.name] = problem
                continue
            missing = [d for d in unit.depends if d in unavailable]
            if missing:
                needed = stage_of[missing[0]]
                raise ValueError(
                    f"stage {stage} needs stage {needed} ({missing[0]}: {unavailable[missing[0]]}); "
                    f"run it first (add --only {needed}, or drop --only)"
                )
            if problem is None and stage not in force:
                skipped.append(unit.name)
                continue
            markers.clear(unit.name)
            t0 = time.perf_counter()
            outputs = unit.run()
            markers.write(unit.name, unit.settings, unit.depends, outputs, time.perf_counter() - t0)
            ran.append(unit.name)
        result = StageResult(stage, ran, skipped, _where(ws, stage), time.perf_counter() - start)
        echo(_line(i, result, selected, units[stage]))
        if stage == "report" and stage in selected:
            from sparse_tune.training.teacher_report import format_report

            echo(format_report(ws.read_report()))
        results.append(result)
    return results


def _line(i: int, r: StageResult, selected: set[str], units: list[Unit]) -> str:
    head = f"[{i}/{len(STAGES)}] {r.stage}:"
    if r.stage not in selected:
        return f"{head} not selected (--only) -> {r.where}"
    if not units:
        return f"{head} nothing to do (no teacher has a recipe)"
    if not r.ran:
        return f"{head} skipped, complete -> {r.where}"
    detail = f" ({', '.join(r.ran)} ran; {', '.join(r.skipped)} complete)" if r.skipped else ""
    return f"{head} done in {r.seconds:.1f} s{detail} -> {r.where}"
