"""The distillation pipeline's config file: teachers, mining, scoring and student in one YAML.

Each section maps onto a dataclass, as training recipes do (unknown keys name the valid
ones; relative paths are read next to the config file when they are not found from the
working directory). Teachers and student are trained by ordinary recipes; the pipeline
forces their data and validation keys (:data:`FORCED_KEYS`) so that every stage uses the
same BEIR folder and no stage ever trains on a held-out validation query.
"""

# No `from __future__ import annotations`: field types are read at run time (as in sparse_tune.config).
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from sparse_tune.bounds import POSITIVE_INT, check_fields
from sparse_tune.config import (
    DEFAULT_SCORE_SCALE,
    ConfigError,
    MiningSpec,
    TeacherConfig,
    TrainConfig,
    build_section,
    check_hybrid_settings,
    load_train_config,
    resolve_recipe_paths,
    resolve_section_paths,
)

#: Recipe keys the pipeline sets for every teacher and the student; an ``overrides`` entry may not set them.
FORCED_KEYS = (
    "beir_dir",
    "beir_split",
    "train_file",
    "hf_dataset",
    "mine_negatives",
    "eval_dir",
    "eval_split",
    "eval_max_queries",
    "eval_holdout",
    "eval_holdout_seed",
    "output_dir",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class TeacherSpec:
    """One teacher: trained by ``recipe``, or an existing ``model`` used as is (bm25: a corpus).

    A ``hybrid`` teacher's recipe (or model) is its retriever, fused with BM25 over ``bm25``
    (default: ``beir_dir``) by ``fusion``, else by the ``hybrid.json`` its training chose on the
    pipeline's validation queries (see :class:`~sparse_tune.config.TeacherConfig`).
    """

    name: str
    type: Literal["dense", "sparse", "cross_encoder", "bm25", "hybrid"]
    recipe: Optional[str] = field(default=None, metadata={"path": "file"})
    model: Optional[str] = field(default=None, metadata={"path": "name_or_path"})
    weight: float = 1.0
    overrides: dict = field(default_factory=dict)
    mined: Optional[dict] = None
    bm25: Optional[str] = field(default=None, metadata={"path": "name_or_path"})
    fusion: Optional[dict] = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"name {self.name!r} must be letters, digits, '_', '.' or '-' (it names a folder)"
            )
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"weight must be a finite number >= 0, got {self.weight}")
        if self.recipe and self.model:
            raise ConfigError("give recipe (a teacher to train) or model (an existing one), not both")
        if self.recipe and self.type in ("bm25", "cross_encoder"):
            raise ConfigError(f"a {self.type} teacher cannot be trained by a recipe; give model instead")
        if not self.recipe and not self.model and self.type != "bm25":
            raise ConfigError(f"a {self.type} teacher needs recipe (to train it) or model (to use as is)")
        if self.mined is not None and not isinstance(self.mined, dict):
            raise ConfigError(
                f"mined must be a mapping of mining settings (e.g. {{range: 20-200}}), got {self.mined!r}"
            )
        check_hybrid_settings(self.type, self.bm25, self.fusion)
        if not self.recipe and (self.overrides or self.mined is not None):
            raise ConfigError("overrides and mined apply to a teacher trained by a recipe; this one has none")
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"overrides must be a mapping of recipe key: value, got {self.overrides!r}")
        _check_overrides(self.overrides)


@dataclass
class ScoringSpec:
    """How the trained teachers score the mined candidates (the settings of ``sparse-tune score``)."""

    score_scale: float = DEFAULT_SCORE_SCALE
    docs_per_query: int = 0
    queries_per_batch: int = 16
    batch_size: int = 64
    max_query_length: Optional[int] = None
    max_doc_length: Optional[int] = None
    device: Optional[str] = None
    bf16: bool = False

    def __post_init__(self) -> None:
        if not self.score_scale > 0:
            raise ConfigError(f"score_scale must be > 0, got {self.score_scale}")
        if self.docs_per_query == 1 or self.docs_per_query < 0:
            raise ConfigError(f"docs_per_query must be 0 (whole rows) or >= 2, got {self.docs_per_query}")
        if self.queries_per_batch < 1 or self.batch_size < 1:
            raise ConfigError("queries_per_batch and batch_size must be >= 1")
        check_fields(self, {"max_query_length": POSITIVE_INT, "max_doc_length": POSITIVE_INT})


@dataclass
class StudentSpec:
    """The student's recipe; its train_file, data and validation keys are set by the pipeline."""

    recipe: str = field(metadata={"path": "file"})
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"overrides must be a mapping of recipe key: value, got {self.overrides!r}")
        _check_overrides(self.overrides)


@dataclass
class PipelineConfig:
    """The whole pipeline: where it reads and writes, the held-out validation queries, and its sections."""

    beir_dir: str = field(metadata={"path": "file"})
    teachers: list  # of TeacherSpec
    student: StudentSpec
    output_dir: str = "runs/kd_pipeline"
    train_split: str = "train"
    eval_holdout: int = 100
    eval_holdout_seed: int = 0
    # A BEIR split to validate on where the dataset has it (eval_holdout where it does not), cut to
    # eval_max_queries by eval_holdout_seed: the same choice every recipe makes with these keys.
    eval_split: Optional[str] = None
    eval_max_queries: Optional[int] = None
    mining: MiningSpec = field(default_factory=MiningSpec)
    scoring: ScoringSpec = field(default_factory=ScoringSpec)

    def __post_init__(self) -> None:
        if self.eval_holdout < 1:
            raise ConfigError(f"eval_holdout must be >= 1 validation queries, got {self.eval_holdout}")
        if self.eval_max_queries is not None and self.eval_max_queries < 1:
            raise ConfigError(f"eval_max_queries must be >= 1 queries, got {self.eval_max_queries}")
        if not self.teachers:
            raise ConfigError("teachers: the pipeline needs at least one teacher")
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            raise ConfigError(f"teachers: names must be distinct, got {names}")
        if not sum(t.weight for t in self.teachers) > 0:
            raise ConfigError(
                f"teachers: weights must sum to a positive number, got {[t.weight for t in self.teachers]}"
            )

    # -- where each stage writes ---------------------------------------------------------------
    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    def teacher_dir(self, name: str) -> Path:
        return self.out / "teachers" / name

    def teacher_mined_file(self, name: str) -> Path:
        return self.out / f"mined_{name}.jsonl"

    def teacher_mining(self, spec: TeacherSpec) -> MiningSpec:
        """The pipeline's mining settings with the teacher's ``mined`` keys on top."""
        return build_section(
            MiningSpec, {**asdict(self.mining), **(spec.mined or {})}, f"teachers.{spec.name}.mined"
        )

    def teacher_configs(self) -> list[TeacherConfig]:
        """The ensemble that scores: trained teachers from their output folders; bm25 over beir_dir by default."""
        out = []
        for t in self.teachers:
            model = str(self.teacher_dir(t.name)) if t.recipe else (t.model or self.beir_dir)
            if t.type == "hybrid":
                bm25 = t.bm25 or self.beir_dir
                out.append(
                    TeacherConfig(type=t.type, model=model, weight=t.weight, bm25=bm25, fusion=t.fusion)
                )
            else:
                out.append(TeacherConfig(type=t.type, model=model, weight=t.weight))
        return out

    # -- the training runs -------------------------------------------------------------------------
    def forced(self, output_dir: Path, train_file: Path | None) -> dict[str, Any]:
        """The keys the pipeline sets in every recipe it trains (see :data:`FORCED_KEYS`)."""
        return {
            "beir_dir": self.beir_dir,
            "beir_split": self.train_split,
            "train_file": str(train_file) if train_file else None,
            "hf_dataset": None,
            "mine_negatives": None,
            "eval_dir": None,
            "eval_split": self.eval_split,
            "eval_max_queries": self.eval_max_queries,
            "eval_holdout": self.eval_holdout,
            "eval_holdout_seed": self.eval_holdout_seed,
            "output_dir": str(output_dir),
        }

    def teacher_train_config(self, spec: TeacherSpec) -> TrainConfig:
        train_file = self.teacher_mined_file(spec.name) if spec.mined is not None else None
        over = {**spec.overrides, **self.forced(self.teacher_dir(spec.name), train_file)}
        return _load_recipe(spec.recipe, over, f"teachers.{spec.name}")

    def student_train_config(self) -> TrainConfig:
        # The scores come from the scored file: live teachers of the recipe are switched off.
        over = {
            **self.student.overrides,
            **self.forced(self.out / "student", self.out / "scored.jsonl"),
            "teachers": [],
        }
        cfg = _load_recipe(self.student.recipe, over, "student")
        if cfg.loss.loss not in ("kl", "margin_mse"):
            raise ConfigError(
                f"student: recipe loss is {cfg.loss.loss!r}; a student of teacher scores needs loss kl or margin_mse"
            )
        return cfg


def _check_overrides(overrides: dict) -> None:
    taken = sorted(set(overrides) & {*FORCED_KEYS, "teachers"})
    if taken:
        raise ConfigError(f"overrides may not set {', '.join(taken)}: the pipeline sets them for every stage")


def _load_recipe(recipe: str, overrides: dict[str, Any], where: str) -> TrainConfig:
    try:
        return load_train_config(recipe, overrides)
    except FileNotFoundError:
        raise ConfigError(f"{where}: recipe {recipe} not found") from None
    except ConfigError as exc:
        raise ConfigError(f"{where} (recipe {recipe}): {exc}") from None


def load_pipeline_config(path: str | Path, output_dir: str | None = None) -> PipelineConfig:
    """Read and check a pipeline config; every teacher's and the student's recipe is loaded too.

    So a bad recipe, override or teacher fails here, in one line, before any stage runs.
    """
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}: a pipeline config is a mapping of key: value, got {type(loaded).__name__}"
        )
    here = path.parent
    values = resolve_section_paths(PipelineConfig, loaded, here)
    if output_dir is not None:
        values["output_dir"] = output_dir

    teachers = values.get("teachers")
    if not isinstance(teachers, list):
        raise ConfigError(f"{path}: teachers must be a list of {{name, type, ...}}, got {teachers!r}")
    specs = []
    for i, t in enumerate(teachers):
        where = f"teachers[{i}]"
        if isinstance(t, dict):
            t = resolve_section_paths(TeacherSpec, t, here, f"{where}.")
            if isinstance(t.get("overrides"), dict):
                t["overrides"] = resolve_recipe_paths(t["overrides"], here)
            if isinstance(t.get("mined"), dict):
                t["mined"] = resolve_section_paths(MiningSpec, t["mined"], here, f"{where}.mined.")
        specs.append(build_section(TeacherSpec, t, where))
    values["teachers"] = specs
    values["mining"] = build_section(
        MiningSpec, resolve_section_paths(MiningSpec, values.get("mining") or {}, here), "mining"
    )
    values["scoring"] = build_section(ScoringSpec, values.get("scoring") or {}, "scoring")
    student = values.get("student")
    if isinstance(student, dict):
        student = resolve_section_paths(StudentSpec, student, here)
        if isinstance(student.get("overrides"), dict):
            student["overrides"] = resolve_recipe_paths(student["overrides"], here)
    values["student"] = build_section(StudentSpec, student, "student")
    cfg = build_section(PipelineConfig, values, str(path))
    cfg.beir_dir = os.path.abspath(cfg.beir_dir)  # every stage reads the same folder, wherever it runs

    # Fail now, not after hours of teacher training: every recipe loads with the pipeline's keys.
    for spec in cfg.teachers:
        if spec.mined is not None:
            cfg.teacher_mining(spec)
        if spec.recipe:
            cfg.teacher_train_config(spec)
    cfg.student_train_config()
    return cfg
