"""What each pipeline stage does, by calling the same library code as the single-step verbs.

- mine: ``mine_beir_splits`` (``sparse-tune mine``) on the train split (and a dev split validated
  on), over the corpus the validation split read; rows of the validation queries go to their own
  file, never to a training file;
- teachers: ``train`` (``sparse-tune train``) on each teacher's recipe;
- score: ``score_examples`` (``sparse-tune score``) on the training candidates;
- report: ``rerank_report`` (``sparse-tune score --evaluate``) on the validation candidates;
- student: ``train`` on the student's recipe with the scored file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparse_tune.data.beir import load_beir
from sparse_tune.data.formats import read_training_jsonl, write_training_jsonl
from sparse_tune.data.holdout import SPLIT_FILE, ValidationSplit, load_validation_split
from sparse_tune.fsio import atomic_write_text
from sparse_tune.mining.beir import mine_beir_splits
from sparse_tune.mining.shortfall import ShortfallReport, write_report
from sparse_tune.pipeline.config import MiningSpec, PipelineConfig, TeacherSpec
from sparse_tune.training.teachers import TeacherEnsemble
from sparse_tune.types import BeirSplit

__all__ = ["PipelineFiles", "Workspace"]


@dataclass(frozen=True)
class PipelineFiles:
    """Where the stages write, under the output folder."""

    out: Path

    @property
    def mined(self) -> Path:
        return self.out / "mined.jsonl"

    @property
    def mined_validation(self) -> Path:
        return self.out / "mined_validation.jsonl"

    @property
    def validation_split(self) -> Path:
        return self.out / SPLIT_FILE

    @property
    def scored(self) -> Path:
        return self.out / "scored.jsonl"

    @property
    def report(self) -> Path:
        return self.out / "teachers.json"

    @property
    def student(self) -> Path:
        return self.out / "student"

    @property
    def student_base(self) -> Path:
        return self.out / "student_base"


@dataclass
class Workspace:
    """A pipeline config plus what its stages share within one run (the validation split, the teachers)."""

    cfg: PipelineConfig
    _split: ValidationSplit | None = field(default=None, init=False)
    _ensemble: TeacherEnsemble | None = field(default=None, init=False)

    @property
    def files(self) -> PipelineFiles:
        return PipelineFiles(self.cfg.out)

    def validation_split(self) -> ValidationSplit:
        """The held-out validation queries: the same draw every teacher's and the student's training makes."""
        if self._split is None:
            cfg = self.cfg
            self._split = load_validation_split(
                cfg.beir_dir, cfg.eval_split, cfg.eval_holdout, cfg.train_split, cfg.eval_holdout_seed,
                cfg.eval_max_queries,
            )  # fmt: skip
        return self._split

    def ensemble(self) -> TeacherEnsemble:
        """The scoring ensemble, loaded once per run (score and report share it)."""
        if self._ensemble is None:
            s = self.cfg.scoring
            self._ensemble = TeacherEnsemble(
                self.cfg.teacher_configs(),
                score_scale=s.score_scale,
                device=s.device,
                bf16=s.bf16,
                batch_size=s.batch_size,
                max_query_length=s.max_query_length,
                max_doc_length=s.max_doc_length,
            )
        return self._ensemble

    # -- mine ----------------------------------------------------------------------------------
    def _splits(self, names: list[str]) -> dict[str, BeirSplit]:
        """BEIR splits ``names`` over the corpus the validation split read, so a run parses it once.

        The validation split itself is reused when it holds its whole split (not a holdout, not cut).
        """
        val = self.validation_split()
        whole = val.holdout is None and val.drawn_from is None
        return {
            name: (val.corpus, val.queries, val.qrels)
            if whole and name == val.split
            else load_beir(self.cfg.beir_dir, name, corpus=val.corpus)
            for name in names
        }

    def _mine(
        self, spec: MiningSpec, validation: bool = False, reports: dict | None = None
    ) -> tuple[list[dict], list[dict]]:
        """(rows of training queries, rows of validation queries) mined with ``spec``.

        Queries held out of the train split are told apart by text (as training excludes them),
        so one mining gives both. A validation split of its own (``eval_split``) is mined only
        when ``validation`` asks for its rows, together with the train split (one index for both),
        and every training query is then a training row. ``reports`` receives each split's
        :class:`~sparse_tune.mining.shortfall.ShortfallReport`.
        """
        val = self.validation_split()
        chosen = set(val.queries.values())
        train = self.cfg.train_split
        splits = [train] if val.holdout or not validation else [train, val.split]
        mined = mine_beir_splits(
            self.cfg.beir_dir, splits, loaded=self._splits(splits), reports=reports, **spec.mine_kwargs()
        )
        rows = mined[train]
        if val.holdout:
            return [e for e in rows if e["query"] not in chosen], [e for e in rows if e["query"] in chosen]
        if not validation:
            return rows, []
        return rows, [e for e in mined[val.split] if e["query"] in chosen]

    def mine_candidates(self) -> list[Path]:
        """mined.jsonl (training queries) and mined_validation.jsonl (validation queries), plus the split."""
        reports: dict[str, ShortfallReport] = {}
        train_rows, validation_rows = self._mine(self.cfg.mining, validation=True, reports=reports)
        f = self.files
        write_training_jsonl(f.mined, train_rows)
        if reports:
            write_report(f.mined, reports)
        write_training_jsonl(f.mined_validation, validation_rows)
        atomic_write_text(f.validation_split, json.dumps(self.validation_split().to_json(), indent=2) + "\n")
        return [f.mined, f.mined_validation, f.validation_split]

    def mine_for_teacher(self, spec: TeacherSpec) -> list[Path]:
        """mined_NAME.jsonl: the teacher's own hard negatives, training queries only."""
        reports: dict[str, ShortfallReport] = {}
        train_rows, _ = self._mine(self.cfg.teacher_mining(spec), reports=reports)
        path = self.cfg.teacher_mined_file(spec.name)
        write_training_jsonl(path, train_rows)
        if reports:
            write_report(path, reports)
        return [path]

    # -- teachers and student --------------------------------------------------------------------
    def train_teacher(self, spec: TeacherSpec) -> list[Path]:
        from sparse_tune.training.run import train

        return [train(self.cfg.teacher_train_config(spec), owned=True)]  # the markers decide reruns

    def train_student(self) -> list[Path]:
        from sparse_tune.training.run import train

        return [train(self.cfg.student_train_config(), owned=True)]

    # -- score and report ----------------------------------------------------------------------
    def score_candidates(self) -> list[Path]:
        """scored.jsonl: every training candidate row scored by the ensemble."""
        from sparse_tune.data.teacher_scores import write_scored_jsonl
        from sparse_tune.training.scoring import score_examples

        s = self.cfg.scoring
        rows = score_examples(self.ensemble(), read_training_jsonl(self.files.mined), s.docs_per_query,
                              s.queries_per_batch)  # fmt: skip
        write_scored_jsonl(self.files.scored, rows)
        return [self.files.scored]

    def report_teachers(self) -> list[Path]:
        """teachers.json: each teacher's and the ensemble's rerank metrics on the validation candidates."""
        from sparse_tune.training.teacher_report import STUDENT, rerank_report

        examples = read_training_jsonl(self.files.mined_validation)
        labels = [t.name for t in self.cfg.teachers]
        ensemble = self.ensemble()
        student = self.student_before_training().eval().requires_grad_(False).to(ensemble.device)
        report = rerank_report(ensemble, examples, self.cfg.scoring.queries_per_batch, labels=labels,
                               others={STUDENT: student})  # fmt: skip
        atomic_write_text(self.files.report, json.dumps(report, indent=2) + "\n")
        return [self.files.report]

    def student_before_training(self) -> Any:
        """The student's starting model, as its training will build it (an IDF query side computed
        from the training corpus into ``OUT/student_base/``, not into the student's run folder)."""
        from sparse_tune.training.run import starting_model

        return starting_model(self.cfg.student_train_config(), idf_dir=self.files.student_base)

    def read_report(self) -> dict[str, Any]:
        return json.loads(self.files.report.read_text(encoding="utf-8"))
