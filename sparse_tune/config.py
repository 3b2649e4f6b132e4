"""Typed configuration: YAML recipes map onto these dataclasses plus transformers' TrainingArguments.

Everything about *how* to train (precision, accumulation, checkpoints, resume, logging,
seeds, DDP) is transformers' ``TrainingArguments``; these dataclasses hold only what is
specific to retrieval. One flat YAML namespace feeds all of them, so a recipe reads as a
list of settings and ``--key value`` overrides any of them. Unknown keys are an error
that names the close matches and lists the valid keys.

Relative paths in a recipe (fields marked ``path`` in their metadata) work from any working
directory: one that does not exist relative to the working directory but does next to the
recipe file is read from there (see :func:`resolve_recipe_paths`).
"""

# No `from __future__ import annotations` here: the field types are read at run time to
# coerce and check YAML / command-line values.
import dataclasses
import difflib
import logging
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from sparse_tune.bounds import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Bound,
    check_fields,
)
from sparse_tune.registry import MODELS

logger = logging.getLogger(__name__)

HeadName = Literal["splade", "inference_free", "dense"]
Activation = Literal["log1p_relu", "log1p_log1p_relu"]


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message says which key and why."""


@dataclass
class ModelConfig:
    model_name_or_path: str = field(
        default="splade-tiny",
        metadata={
            "help": "Hub id, local folder, or a registered short name (splade-tiny, minilm-l6).",
            "path": "name_or_path",
        },
    )
    head: Optional[HeadName] = field(
        default=None,
        metadata={
            "help": "splade | inference_free | dense. Default: the checkpoint's own head, else "
            "splade for masked-LM checkpoints and dense otherwise."
        },
    )
    activation: Activation = field(
        default="log1p_relu", metadata={"help": "SPLADE activation: log1p_relu or log1p_log1p_relu."}
    )
    pooling: Literal["cls", "mean"] = field(default="cls", metadata={"help": "Dense pooling."})
    normalize: bool = field(default=False, metadata={"help": "L2-normalise dense embeddings."})
    idf_path: Optional[str] = field(
        default=None,
        metadata={"help": "idf.json ({token: weight}) for the inference-free query side.", "path": "file"},
    )
    train_idf: bool = field(default=False, metadata={"help": "Train the inference-free IDF weights."})
    idf_learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Learning rate of the IDF weights (default: learning_rate)."}
    )
    max_query_length: int = field(default=64, metadata={"help": "Query truncation in tokens."})
    max_doc_length: int = field(default=256, metadata={"help": "Document truncation in tokens."})
    query_instruction: Optional[str] = field(
        default=None,
        metadata={
            "help": "Text put before every query (e.g. 'Represent this sentence for searching relevant "
            "passages: ') at training, evaluation, encoding and export. Not for inference_free heads."
        },
    )
    doc_instruction: Optional[str] = field(
        default=None, metadata={"help": "Text put before every document, wherever documents are encoded."}
    )
    splade_impl: Literal["fused", "reference"] = field(
        default="fused",
        metadata={"help": "SPLADE pooling: memory-light fused kernel or the plain reference."},
    )

    def __post_init__(self) -> None:
        check_fields(self, {"max_query_length": POSITIVE_INT, "max_doc_length": POSITIVE_INT})
        check_fields(self, {"idf_learning_rate": POSITIVE})
        if self.head == "inference_free" and self.query_instruction:
            raise ConfigError(INFERENCE_FREE_QUERY_INSTRUCTION)


#: Why an inference-free model takes no query instruction (one line, also raised when loading).
INFERENCE_FREE_QUERY_INSTRUCTION = (
    "query_instruction cannot apply to an inference_free model: its queries are not encoded, only looked up "
    "token by token in idf.json, so an instruction would add its own tokens to every query; remove "
    "query_instruction (doc_instruction is applied)"
)


def parse_rank_range(text: str) -> tuple[int, int]:
    """``"2-200"`` -> ``(2, 200)``: 1-based inclusive ranks; ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"expected START-END with 1 <= START <= END (e.g. 2-200), got '{text}'")
    return int(m.group(1)), int(m.group(2))


@dataclass
class MiningSpec:
    """How negatives are mined from a BEIR split: the settings of ``sparse-tune mine``, with its defaults.

    One dataclass for a recipe's ``mine_negatives`` and the distillation pipeline's ``mining``,
    turned into :func:`~sparse_tune.mining.beir.mine_beir_split` arguments in one place
    (:meth:`mine_kwargs`), so the same settings mine the same file whichever way they came.
    """

    method: Literal["bm25", "model", "random"] = "bm25"
    model: Optional[str] = field(default=None, metadata={"path": "name_or_path"})
    range: str = "2-200"
    negatives: int = 8
    random_negatives: int = 0
    seed: int = 42
    backend: Literal["embedded", "seismic", "opensearch"] = "embedded"
    # OpenSearch: replace an existing index that sparse-tune did not create (refused by default).
    # How to run, not what is mined: left out of :meth:`identity`.
    overwrite_index: bool = False

    def __post_init__(self) -> None:
        self.range = str(self.range)
        try:
            parse_rank_range(self.range)
        except ValueError as exc:
            raise ConfigError(f"range: {exc}") from None
        if self.negatives < 1:
            raise ConfigError(f"negatives must be >= 1, got {self.negatives}")
        if self.random_negatives < 0:
            raise ConfigError(f"random_negatives must be >= 0, got {self.random_negatives}")
        check_fields(self, {"seed": SEED})
        if self.method == "model" and not self.model:
            raise ConfigError("method 'model' needs a model")

    @property
    def rank_range(self) -> tuple[int, int]:
        return parse_rank_range(self.range)

    def identity(self) -> dict[str, Any]:
        """The settings that decide the mined rows (every field but ``overwrite_index``), as JSON values.

        What a mined file's sidecar and a pipeline stage's marker compare, so permission to replace
        someone else's index never makes a finished mining run again.
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "overwrite_index"}

    def mine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~sparse_tune.mining.beir.mine_beir_split` for these settings."""
        return {
            "method": self.method,
            "model": self.model,
            "backend": self.backend,
            "overwrite_index": self.overwrite_index,
            "n_negatives": self.negatives,
            "rank_range": self.rank_range,
            "seed": self.seed,
            "random_negatives": self.random_negatives,
        }


@dataclass
class DataConfig:
    train_file: Optional[str] = field(
        default=None,
        metadata={"help": "Training JSONL (query/pos/neg and friends, or docs/scores).", "path": "file"},
    )
    beir_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "BEIR folder to train from (positives from qrels) when no train_file.",
            "path": "file",
        },
    )
    beir_split: str = field(default="train", metadata={"help": "qrels split of beir_dir used for training."})
    hf_dataset: Optional[str] = field(
        default=None,
        metadata={
            "help": "Hugging Face dataset (hub id or local path) with query/pos/neg-style columns.",
            "path": "name_or_path",
        },
    )
    hf_subset: Optional[str] = field(default=None, metadata={"help": "Configuration name of hf_dataset."})
    hf_split: str = field(default="train", metadata={"help": "Split of hf_dataset."})
    docs_per_query: int = field(
        default=8,
        metadata={"help": "Documents per query in a group: 1 positive + docs_per_query-1 negatives."},
    )
    max_examples: Optional[int] = field(default=None, metadata={"help": "Use only the first N examples."})
    labelled_pairs: bool = field(
        default=False,
        metadata={
            "help": "Train on labelled pairs made from query/positives data: each positive labelled 1 and "
            "up to docs_per_query-1 of its negatives labelled 0 (for loss contrastive / cosine_similarity)."
        },
    )
    skip_bad_lines: bool = field(default=False, metadata={"help": "Skip and count malformed lines."})
    mine_negatives: Optional[MiningSpec] = field(
        default=None,
        metadata={
            "help": "Mine beir_dir's beir_split at the start of the run, as `sparse-tune mine` would: "
            "{method, model, range, negatives, random_negatives, seed, backend}. Written to "
            "OUTPUT_DIR/mined.jsonl (reused while settings and dataset are unchanged) and trained on "
            "as a train_file."
        },
    )

    def __post_init__(self) -> None:
        if self.docs_per_query < 1:
            raise ConfigError(f"docs_per_query must be >= 1, got {self.docs_per_query}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError(f"max_examples must be >= 1, got {self.max_examples}")
        if self.mine_negatives is not None:
            if not isinstance(self.mine_negatives, MiningSpec):
                self.mine_negatives = build_section(MiningSpec, self.mine_negatives, "mine_negatives")
            if self.train_file or self.hf_dataset:
                given = "train_file" if self.train_file else "hf_dataset"
                raise ConfigError(
                    f"mine_negatives mines beir_dir into the training data; it cannot be combined with {given}"
                )
            if not self.beir_dir:
                raise ConfigError("mine_negatives needs beir_dir: the BEIR folder whose beir_split is mined")


TEACHER_TYPES = ("dense", "sparse", "cross_encoder", "bm25", "hybrid")
#: OpenSearch's reference distillation recipe scales per-query min-max teacher scores by 30: the
#: best candidate then leads a 0-score one by e^30 in the KL target, a sharp but not one-hot
#: distribution. At 1.0 the targets are nearly uniform and carry almost no ranking.
DEFAULT_SCORE_SCALE = 30.0
#: Teacher types whose BM25 statistics come from a corpus that defaults to the run's ``beir_dir``.
BM25_TEACHER_TYPES = ("bm25", "hybrid")


def check_hybrid_settings(teacher_type: str, bm25: Optional[str], fusion: Optional[dict]) -> None:
    """``bm25`` and ``fusion`` belong to a hybrid teacher, and ``fusion`` must be one OpenSearch knows.

    One check for a recipe's teacher and a pipeline's, so a bad setting fails when the file loads.
    """
    if teacher_type != "hybrid" and (bm25 is not None or fusion is not None):
        raise ConfigError(f"bm25 and fusion belong to a hybrid teacher, not to a {teacher_type} one")
    if fusion is not None:
        from sparse_tune.index.fusion import fusion_from_mapping

        try:
            fusion_from_mapping(fusion, retrievers=2)
        except ValueError as exc:
            raise ConfigError(f"hybrid teacher fusion: {exc}") from None


@dataclass
class TeacherConfig:
    """One live teacher: ``{type: dense|sparse|cross_encoder|bm25|hybrid, model: name-or-path, weight: w}``.

    ``dense`` and ``sparse`` teachers are bi-encoders (any checkpoint ``load_model`` reads);
    ``cross_encoder`` is an ``AutoModelForSequenceClassification`` reranker that reads each
    (query, document) pair together; ``bm25`` is lexical BM25 whose ``model`` is the corpus
    (BEIR folder or corpus JSONL) that gives its statistics. A bm25 teacher without ``model``
    takes the recipe's ``beir_dir`` (set by :func:`load_train_config`), so a recipe's teacher
    follows ``--beir_dir`` to whatever dataset the run trains on.

    ``hybrid`` is one teacher whose score is ``model`` (a sparse or dense retriever, typically a
    fine-tuned run) fused with BM25 over ``bm25``'s corpus (default: ``beir_dir``, as a bm25
    teacher), the way OpenSearch's hybrid search fuses them (:mod:`sparse_tune.index.fusion`).
    The fusion is ``fusion`` (``{fusion: minmax|rrf|sum, weights: [model, bm25]}``), else the
    ``hybrid.json`` a training run wrote into the model folder (chosen on its validation
    queries), else OpenSearch's default: min-max with equal weights.
    """

    type: Literal["dense", "sparse", "cross_encoder", "bm25", "hybrid"]
    model: Optional[str] = field(default=None, metadata={"path": "name_or_path"})
    weight: float = 1.0
    bm25: Optional[str] = field(default=None, metadata={"path": "name_or_path"})
    fusion: Optional[dict] = None

    def __post_init__(self) -> None:
        if self.type not in TEACHER_TYPES:
            raise ConfigError(
                f"unknown teacher type {self.type!r}: expected one of {', '.join(TEACHER_TYPES)}"
            )
        if not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"teacher weight must be a finite number >= 0, got {self.weight}")
        check_hybrid_settings(self.type, self.bm25, self.fusion)
        if self.model is None and self.type == "bm25":
            return  # the training corpus, filled in once the recipe's beir_dir is known
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"teacher model must be a non-empty name or path, got {self.model!r}")


@dataclass
class LossConfig:
    loss: Literal["infonce", "kl", "margin_mse", "contrastive", "cosine_similarity", "triplet"] = field(
        default="infonce",
        metadata={
            "help": "Ranking / distillation loss; contrastive and cosine_similarity train on labelled "
            "pairs (sentence1/sentence2/label), triplet on a positive and negatives per query."
        },
    )
    pair_similarity: Optional[Literal["cosine", "dot", "euclidean"]] = field(
        default=None,
        metadata={
            "help": "How contrastive / cosine_similarity / triplet compare two texts. Default: as "
            "sentence-transformers for dense models (cosine; euclidean for triplet), dot for sparse."
        },
    )
    margin: Optional[float] = field(
        default=None,
        metadata={
            "help": "Margin of contrastive / triplet, score scale of cosine_similarity with dot. "
            "Default: contrastive 0.5 (cosine), triplet 5 (euclidean), 1 (cosine_similarity), "
            "and 20 for every dot version (SPLADE scores of related pairs are tens)."
        },
    )
    scale: float = field(default=1.0, metadata={"help": "InfoNCE score scale (1 / temperature)."})
    in_batch_negatives: bool = field(
        default=True, metadata={"help": "InfoNCE over all documents in the batch."}
    )
    temperature: float = field(default=1.0, metadata={"help": "KL distillation temperature."})
    flops_doc_weight: float = field(default=0.0, metadata={"help": "FLOPS weight on documents."})
    flops_query_weight: float = field(
        default=0.0, metadata={"help": "FLOPS weight on queries (ignored by inference-free models)."}
    )
    flops_warmup_steps: int = field(default=0, metadata={"help": "Quadratic warm-up of the FLOPS weights."})
    flops_doc_threshold: Optional[float] = field(
        default=None,
        metadata={"help": "l0 mask: FLOPS acts on a document only while its non-zeros exceed this."},
    )
    flops_query_threshold: Optional[float] = field(
        default=None,
        metadata={"help": "l0 mask: FLOPS acts on a query only while its non-zeros exceed this."},
    )
    idf_aware_flops: bool = field(
        default=False, metadata={"help": "Weigh document FLOPS per token by an IDF penalty (needs idf)."}
    )
    teachers: list = field(
        default_factory=list,
        metadata={
            "help": "Live teachers: [{type: dense|sparse|cross_encoder|bm25|hybrid, model: ..., weight: ...}]."
        },
    )
    score_scale: float = field(
        default=DEFAULT_SCORE_SCALE,
        metadata={"help": "Scale of the combined per-query min-max teacher scores (KL target sharpness)."},
    )
    gather_across_devices: bool = field(
        default=True,
        metadata={
            "help": "Under DDP: in-batch negatives and FLOPS over every rank's representations (global "
            "batch); false keeps each rank to its own batch. No effect in a single process."
        },
    )
    cached: bool = field(
        default=False,
        metadata={
            "help": "GradCache: encode each step in chunks of mini_batch_size examples; same loss and "
            "gradients as uncached, at the activation memory of one chunk."
        },
    )
    mini_batch_size: int = field(default=32, metadata={"help": "Examples per chunk when cached is true."})

    def __post_init__(self) -> None:
        if self.mini_batch_size < 1:
            raise ConfigError(f"mini_batch_size must be >= 1, got {self.mini_batch_size}")
        for name in ("flops_doc_weight", "flops_query_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        check_fields(self, {"scale": POSITIVE, "temperature": POSITIVE, "score_scale": POSITIVE})
        if self.margin is not None and self.margin <= 0:
            raise ConfigError(f"margin must be > 0, got {self.margin}")
        if self.flops_warmup_steps < 0:
            raise ConfigError(f"flops_warmup_steps must be >= 0, got {self.flops_warmup_steps}")
        for name in ("flops_doc_threshold", "flops_query_threshold"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 non-zeros, got {getattr(self, name)}")
        teachers = []
        for t in self.teachers:
            if isinstance(t, TeacherConfig):
                teachers.append(t)
            elif isinstance(t, dict):
                unknown = set(t) - {"type", "model", "weight", "bm25", "fusion"}
                if unknown or "type" not in t or ("model" not in t and t["type"] != "bm25"):
                    raise ConfigError(
                        f"teacher {t} must have keys type, model and optionally weight (model is optional "
                        "for bm25: the training corpus, beir_dir; a hybrid teacher also takes bm25 and fusion)"
                    )
                teachers.append(TeacherConfig(**t))
            else:
                raise ConfigError(f"teacher must be a mapping, got {t!r}")
        self.teachers = teachers


#: Default p-value a checkpoint's validation gain over the base must reach to be kept (see EvalConfig).
KEEP_SIGNIFICANCE = 0.1


@dataclass
class EvalConfig:
    """Validation in the training loop (retrieval metrics every ``eval_steps``, base model at step 0)."""

    eval_dir: Optional[str] = field(
        default=None, metadata={"help": "BEIR folder to validate on (default: beir_dir).", "path": "file"}
    )
    eval_split: Optional[str] = field(
        default=None,
        metadata={
            "help": "qrels split of eval_dir to validate on (e.g. dev). With eval_holdout too, it is used "
            "where the dataset has it, and eval_holdout where it does not."
        },
    )
    eval_holdout: Optional[int] = field(
        default=None,
        metadata={
            "help": "When the dataset has no validation split: hold out N training queries (of beir_split "
            "of eval_dir), drawn by eval_holdout_seed, and remove them from training."
        },
    )
    eval_holdout_seed: Optional[int] = field(
        default=None,
        metadata={
            "help": "Seed of the held-out draw and of eval_max_queries' draw (default: the training seed)."
        },
    )
    eval_max_queries: Optional[int] = field(
        default=None,
        metadata={
            "help": "Validate on at most N judged queries of eval_split (drawn by seed; default: all); "
            "a holdout is eval_holdout queries already."
        },
    )
    eval_corpus_budget: int = field(
        default=20000,
        metadata={
            "help": "Validate on the full corpus when it has at most this many documents; otherwise on a "
            "candidate pool (BM25 top eval_pool_bm25_k + the judged documents)."
        },
    )
    eval_pool_bm25_k: int = field(
        default=100, metadata={"help": "BM25 candidates per validation query (pool mode)."}
    )
    early_stopping_patience: Optional[int] = field(
        default=None, metadata={"help": "Stop after this many evaluations without a new best."}
    )
    keep_base_if_best: bool = field(
        default=True,
        metadata={
            "help": "With load_best_model_at_end: when no checkpoint beats the base model (step 0) on "
            "metric_for_best_model, save the base model, so a run never leaves a model that validates "
            "worse than the one it started from (the Trainer alone only chooses among checkpoints)."
        },
    )
    keep_significance: float = field(
        default=KEEP_SIGNIFICANCE,
        metadata={
            "help": "With keep_base_if_best: the best checkpoint replaces the base model only when a one-sided "
            "paired t-test over the validation queries gives p <= this (a gain within query-sampling noise "
            "keeps the base). 1.0 keeps any checkpoint that scores higher."
        },
    )

    eval_pairs_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Labelled pairs JSONL ({sentence1, sentence2, label} with labels 0/1) to validate on by "
            "binary classification: pair_accuracy, pair_f1, pair_ap (usable as metric_for_best_model).",
            "path": "file",
        },
    )
    eval_pairs_negatives: Optional[int] = field(
        default=None,
        metadata={
            "help": "Validate by binary classification on pairs made from the validation split: its judged "
            "documents labelled 1 and this many of BM25's top unjudged documents per query labelled 0."
        },
    )

    @property
    def enabled(self) -> bool:
        return self.eval_split is not None or self.eval_holdout is not None

    @property
    def pairs_enabled(self) -> bool:
        """Whether pair classification is validated (from a file, or from the validation split)."""
        return self.eval_pairs_file is not None or self.eval_pairs_negatives is not None

    def __post_init__(self) -> None:
        if self.eval_holdout is not None and self.eval_holdout < 1:
            raise ConfigError(f"eval_holdout must be >= 1 queries, got {self.eval_holdout}")
        if self.eval_max_queries is not None and self.eval_max_queries < 1:
            raise ConfigError(f"eval_max_queries must be >= 1 queries, got {self.eval_max_queries}")
        check_fields(
            self,
            {"eval_corpus_budget": POSITIVE_INT, "eval_pool_bm25_k": POSITIVE_INT, "eval_holdout_seed": SEED},
        )
        if not 0.0 < self.keep_significance <= 1.0:
            raise ConfigError(f"keep_significance must be in (0, 1], got {self.keep_significance}")
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience < 1:
                raise ConfigError(f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}")
            if not self.enabled and not self.pairs_enabled:
                raise ConfigError("early_stopping_patience needs validation: set eval_split or eval_holdout")
        if self.eval_pairs_negatives is not None:
            if self.eval_pairs_negatives < 1:
                raise ConfigError(f"eval_pairs_negatives must be >= 1, got {self.eval_pairs_negatives}")
            if not self.enabled:
                raise ConfigError(
                    "eval_pairs_negatives makes pairs from the validation split: set eval_split or eval_holdout"
                )


@dataclass
class RunConfig:
    """What to do with an output_dir that already holds a run (see :mod:`sparse_tune.training.run_folder`)."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace the run already in output_dir (finished or interrupted): its checkpoints "
            "and final model are deleted and training starts over. Without it a finished run is "
            "never overwritten."
        },
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Continue an interrupted run found in output_dir (checkpoints, no final model) from its "
            "last complete checkpoint; false (--no-resume) deletes its checkpoints and starts over."
        },
    )


OURS = (ModelConfig, DataConfig, LossConfig, EvalConfig, RunConfig)


def _path_fields(*classes: type) -> dict[str, str]:
    """``{field: "file" | "name_or_path"}`` for the fields whose metadata marks them as paths."""
    fields = (f for cls in classes for f in dataclasses.fields(cls))
    return {f.name: f.metadata["path"] for f in fields if "path" in f.metadata}


def _resolve_path(key: str, value: Any, kind: str, recipe_dir: Path, absolute: bool = False) -> Any:
    """``value`` as given when it exists from the working directory, else next to the recipe if it is there.

    The working directory wins so recipes written for the repository root (``configs/*.yaml``,
    run from there) keep meaning what they meant. A registered model name is never a path. A
    file path found in neither place stays as given (the reader's error names it) and the
    warning names both places looked at; a name-or-path may be a hub id, so it stays silently.
    With ``absolute`` a path found from the working directory is made absolute too (no warnings:
    the values were loaded, and warned about, before).
    """
    if not isinstance(value, str) or not value or (kind == "name_or_path" and value in MODELS):
        return value
    path = Path(value)
    if path.is_absolute() or path.exists():
        return os.path.normpath(path.absolute()) if absolute else value
    beside = Path(os.path.normpath(recipe_dir.absolute() / path))
    if beside.exists():
        return str(beside)
    if kind == "file" and not absolute:
        logger.warning(
            "%s: %r not found, neither from the working directory (%s) nor next to the recipe (%s)",
            key,
            value,
            path.absolute(),
            beside,
        )
    return value


def _resolve_fields(
    values: dict[str, Any], paths: dict[str, str], recipe_dir: Path, prefix: str = "", absolute: bool = False
) -> dict[str, Any]:
    """``values`` with each key named in ``paths`` passed through :func:`_resolve_path`."""
    return {
        k: _resolve_path(prefix + k, v, paths[k], recipe_dir, absolute) if k in paths else v
        for k, v in values.items()
    }


def resolve_recipe_paths(
    values: dict[str, Any], recipe_dir: str | Path, absolute: bool = False
) -> dict[str, Any]:
    """A copy of recipe ``values`` whose relative paths are read next to the recipe when needed.

    ``recipe_dir`` is the folder of the YAML file the values came from. Command-line
    overrides are not passed through here: a path typed on the command line is relative to
    the working directory, as everywhere else. ``absolute``: see :func:`_resolve_path`.
    """
    recipe_dir = Path(recipe_dir)
    out = _resolve_fields(values, _path_fields(*OURS), recipe_dir, absolute=absolute)
    if isinstance(out.get("teachers"), list):
        teacher_paths = _path_fields(TeacherConfig)
        out["teachers"] = [
            _resolve_fields(t, teacher_paths, recipe_dir, f"teachers[{i}].", absolute)
            if isinstance(t, dict)
            else t
            for i, t in enumerate(out["teachers"])
        ]
    if isinstance(out.get("mine_negatives"), dict):
        out["mine_negatives"] = _resolve_fields(
            out["mine_negatives"], _path_fields(MiningSpec), recipe_dir, "mine_negatives.", absolute
        )
    return out


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field type; accept the safe conversions YAML users expect."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0]) if len(inner) == 1 else value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return out
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return str(value)
    if annotation is list or origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return value
    return value


def _build(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def build_section(cls: type, values: Any, where: str = "") -> Any:
    """``cls`` from one YAML mapping, for config files other than training recipes.

    Unknown keys name their close matches and list the valid keys; missing required keys are
    named; values are coerced to the field types as recipe values are. Every message starts
    with ``where`` (e.g. ``teachers[1]``) so a one-line error points into the file.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix}expected a mapping of key: value, got {values!r}")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = [k for k in values if k not in names]
    if unknown:
        hints = {k: difflib.get_close_matches(str(k), names, n=2) for k in unknown}
        hint_text = "; ".join(
            f"{k!r} (did you mean {', '.join(v)}?)" if v else repr(k) for k, v in hints.items()
        )
        raise ConfigError(f"{prefix}unknown key(s): {hint_text}. Valid keys: {', '.join(names)}")
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in values
    ]
    if missing:
        raise ConfigError(f"{prefix}missing key(s): {', '.join(missing)}")
    try:
        return _build(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def resolve_section_paths(
    cls: type, values: dict[str, Any], recipe_dir: str | Path, prefix: str = ""
) -> dict[str, Any]:
    """``values`` with ``cls``'s path fields read next to the file they came from when needed (as recipes)."""
    return _resolve_fields(values, _path_fields(cls), Path(recipe_dir), prefix)


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    model: ModelConfig
    data: DataConfig
    loss: LossConfig
    training: Any  # transformers.TrainingArguments
    source: dict = field(default_factory=dict)  # the flat recipe as given (YAML + overrides)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


#: Ranges of the transformers TrainingArguments a recipe may set, checked when the recipe is read
#: (transformers accepts e.g. ``max_steps: -1`` as "unset" and ``learning_rate: 0`` silently). Step
#: intervals below 1 are transformers' fractions of the total steps, so they only need to be > 0.
TRAINING_BOUNDS: dict[str, Bound] = {
    "learning_rate": POSITIVE,
    "max_steps": POSITIVE_INT,
    "save_steps": POSITIVE,
    "eval_steps": POSITIVE,
    "logging_steps": POSITIVE,
    "num_train_epochs": POSITIVE,
    "per_device_train_batch_size": POSITIVE_INT,
    "per_device_eval_batch_size": POSITIVE_INT,
    "gradient_accumulation_steps": POSITIVE_INT,
    "eval_accumulation_steps": POSITIVE_INT,
    "save_total_limit": POSITIVE_INT,
    "warmup_steps": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "max_grad_norm": NON_NEGATIVE,
    "adam_epsilon": POSITIVE,
    "adam_beta1": Bound(lo=0, hi=1, hi_open=True),
    "adam_beta2": Bound(lo=0, hi=1, hi_open=True),
    "dataloader_num_workers": NON_NEGATIVE_INT,
    "seed": SEED,
    "data_seed": SEED,
}


def valid_keys() -> dict[str, list[str]]:
    from transformers import TrainingArguments

    out = {cls.__name__: [f.name for f in dataclasses.fields(cls)] for cls in OURS}
    out["TrainingArguments"] = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    return out


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` pairs -> dict; values are parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or len(token) == 2:
            raise ConfigError(f"expected --key value, got {token!r}")
        key = token[2:]
        if "=" in key:  # --key=value: only the key's dashes are underscores (--max_steps=-5 stays -5)
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raw = "true"  # a bare flag
                i += 1
            else:
                raw = argv[i + 1]
                i += 2
        key = key.replace("-", "_")
        out[key] = yaml.safe_load(raw) if raw != "" else ""
    return out


# Recipe files can include others (``include: parts/validation.yaml``) so a block shared by several recipes
# is written once. Included files are read relative to the file that names them; the including file's keys
# win, and of several includes the later ones win.
INCLUDE_KEY = "include"


def _read_recipe_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8-sig")  # a missing file is the reader's FileNotFoundError
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of key: value, got {type(loaded).__name__}")
    return loaded


def read_recipe_layers(path: str | Path, _chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, values)`` for a recipe and every file it includes, in the order they apply (later wins).

    Each layer keeps its own file so its relative paths are read next to it. A missing include or
    an include cycle is a one-line :class:`ConfigError` naming the file that asked for it.
    """
    path = Path(path)
    here = path.resolve()
    if here in _chain:
        cycle = " -> ".join(p.name for p in (*_chain[_chain.index(here) :], here))
        raise ConfigError(f"{path}: include cycle: {cycle}")
    values = _read_recipe_mapping(path)
    includes = values.pop(INCLUDE_KEY, None)
    if isinstance(includes, str):
        includes = [includes]
    if includes is None:
        includes = []
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        raise ConfigError(
            f"{path}: {INCLUDE_KEY} must be a file name or a list of file names, got {includes!r}"
        )
    layers: list[tuple[Path, dict[str, Any]]] = []
    for name in includes:
        target = path.parent / name
        if not target.is_file():
            raise ConfigError(
                f"{path}: {INCLUDE_KEY} {name!r}: no such file {target} (read next to the recipe)"
            )
        layers += read_recipe_layers(target, (*_chain, here))
    layers.append((path, values))
    return layers


def _recipe_overrides(written: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides``, plus ``mine_negatives: null`` when they give training data to a recipe that mines its own."""
    overrides = dict(overrides)
    if written.get("mine_negatives") and "mine_negatives" not in overrides:
        # Training data given on top of a recipe that mines its own replaces the mining: the user's
        # file (or dataset) is what they asked to train on. Both in one place is still an error.
        given = [k for k in ("train_file", "hf_dataset") if overrides.get(k)]
        if given:
            logger.info("%s given: the recipe's mine_negatives is not used", given[0])
            overrides["mine_negatives"] = None
    return overrides


def recipe_values(
    path: str | Path | None, overrides: dict[str, Any] | None = None, absolute: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(as written, resolved)``: a recipe's flat keys with its includes merged and the overrides on top.

    "As written" is what the recipe file(s) and the command line said (the ``recipe.yaml`` saved
    with a run). "Resolved" has each file's relative paths read next to that file when they are
    not found from the working directory (:func:`resolve_recipe_paths`); with ``absolute`` every
    path found anywhere, the overrides' included, is made absolute, so the values load from any folder.
    """
    layers = read_recipe_layers(path) if path is not None else []
    written: dict[str, Any] = {}
    for _, layer in layers:
        written.update(layer)
    overrides = _recipe_overrides(written, dict(overrides or {}))
    resolved: dict[str, Any] = {}
    for file, layer in layers:
        # Keys an override replaces are not resolved: a recipe path that is about to be replaced
        # (and may not exist) would only produce a misleading "not found" warning.
        kept = {k: v for k, v in layer.items() if k not in overrides}
        resolved.update(resolve_recipe_paths(kept, file.parent, absolute))
    resolved.update(resolve_recipe_paths(overrides, Path.cwd(), absolute) if absolute else overrides)
    return {**written, **overrides}, resolved


def absolute_recipe(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A recipe's flat keys (includes merged, overrides applied) with every local path absolute.

    For a recipe written to another folder than the one it came from (``tune``'s
    ``best_config.yaml``): it loads from any working directory and means what the original meant.
    """
    return recipe_values(path, overrides, absolute=True)[1]


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML recipe (and the files it includes), apply overrides, and split the flat keys onto the dataclasses."""
    from transformers import TrainingArguments

    source, values = recipe_values(
        path, overrides
    )  # source: as written, for the recipe.yaml saved with the run

    keys = valid_keys()
    by_class: dict[str, dict[str, Any]] = {name: {} for name in keys}
    unknown = []
    for key, value in values.items():
        owner = next((name for name, names in keys.items() if key in names), None)
        if owner is None:
            unknown.append(key)
        else:
            by_class[owner][key] = value
    if unknown:
        ours = sorted(k for cls in OURS for k in keys[cls.__name__])
        everything = ours + keys["TrainingArguments"]
        hints = {k: difflib.get_close_matches(k, everything, n=3) for k in unknown}
        hint_text = "; ".join(
            f"{k!r} (did you mean {', '.join(v)}?)" if v else repr(k) for k, v in hints.items()
        )
        raise ConfigError(
            f"unknown config key(s): {hint_text}. Valid keys: {', '.join(ours)}, "
            "and any transformers TrainingArguments field (e.g. output_dir, max_steps, learning_rate, "
            "per_device_train_batch_size, gradient_accumulation_steps, bf16, save_steps, seed)"
        )

    model = _build(ModelConfig, by_class["ModelConfig"])
    data = _build(DataConfig, by_class["DataConfig"])
    loss = _build(LossConfig, by_class["LossConfig"])
    evaluation = _build(EvalConfig, by_class["EvalConfig"])
    run = _build(RunConfig, by_class["RunConfig"])
    targs = by_class["TrainingArguments"]
    if evaluation.enabled or evaluation.pairs_enabled:
        # Validation goes through the Trainer's own machinery: evaluate every eval_steps (and the
        # base model at step 0), keep the best checkpoint by retrieval quality (or pair AP alone).
        targs.setdefault("eval_strategy", "steps")
        targs.setdefault("eval_on_start", True)
        targs.setdefault("metric_for_best_model", "ndcg@10" if evaluation.enabled else "pair_ap")
        targs.setdefault("load_best_model_at_end", True)
    targs.setdefault("output_dir", "runs/sparse_tune")
    targs.setdefault("remove_unused_columns", False)
    targs.setdefault("report_to", "none")
    import os

    import torch

    if not torch.cuda.is_available():
        targs.setdefault("dataloader_pin_memory", False)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # On CPU torchrun needs gloo; without it every rank would train alone as world size 1.
            targs.setdefault("ddp_backend", "gloo")
            targs.setdefault("use_cpu", True)  # makes accelerate set up MULTI_CPU (DDP over gloo)
    hints = typing.get_type_hints(TrainingArguments)
    for key, value in list(targs.items()):
        annotation = hints.get(key)
        if annotation in (int, float, bool, str) and value is not None:
            targs[key] = _coerce(key, value, annotation)
    # After coercion (YAML reads `1e-4`, no dot, as a string, which _coerce turns into a float).
    for key, bound in TRAINING_BOUNDS.items():
        try:
            bound.check(key, targs.get(key))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    # Steps the user did not give follow the ones they did (--max_steps 3 alone must still run).
    from sparse_tune.step_schedule import reconcile_steps

    try:
        adjusted = reconcile_steps(targs, set(overrides or {}))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if adjusted:
        logger.info(adjusted)
    try:
        training = TrainingArguments(**targs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training arguments: {exc}") from None
    for teacher in loss.teachers:
        corpus_key = "model" if teacher.type == "bm25" else "bm25"
        if teacher.type in BM25_TEACHER_TYPES and getattr(teacher, corpus_key) is None:
            if not data.beir_dir:
                raise ConfigError(
                    f"a {teacher.type} teacher without {corpus_key} uses beir_dir's corpus for BM25: set "
                    f"beir_dir or its {corpus_key}"
                )
            setattr(
                teacher, corpus_key, data.beir_dir
            )  # the corpus the run trains on, whatever --beir_dir says
    if loss.loss in ("kl", "margin_mse") and not loss.teachers and data.train_file is None:
        raise ConfigError(f"loss {loss.loss!r} needs teacher scores: set teachers or a scored train_file")
    if evaluation.enabled and not (evaluation.eval_dir or data.beir_dir):
        raise ConfigError(
            "eval_split / eval_holdout need a BEIR folder: set eval_dir or beir_dir, or train without "
            "validation (eval_split: null, eval_holdout: null)"
        )
    if evaluation.early_stopping_patience is not None and not training.load_best_model_at_end:
        raise ConfigError("early_stopping_patience needs load_best_model_at_end: true")
    return TrainConfig(
        model=model, data=data, loss=loss, training=training, source=source, eval=evaluation, run=run
    )
