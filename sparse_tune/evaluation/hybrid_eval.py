"""A model fused with BM25 (and optionally a dense model): the ``hybrid`` row of ``sparse-tune evaluate``.

Each retriever searches the whole corpus through the evaluation backend for its top-k; the
lists are fused as OpenSearch fuses a ``hybrid`` query's sub-queries (:mod:`sparse_tune.index.fusion`).
The weights and the fusion are either given or chosen on validation queries -- the dataset's
``dev`` split, else training queries held out by seed -- never on the split being reported.

On OpenSearch, ``native`` sends a real ``hybrid`` query with a search pipeline created for the
run and removed after it (a cluster with the neural-search plugin); otherwise the same two
searches are fused client-side with the same module, which is what a server without the
plugin allows and what the embedded backend always does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from sparse_tune.data.holdout import ValidationSplit
from sparse_tune.evaluation.beir_eval import (
    EvalSettings,
    Retrieval,
    _latency,
    _timed_search,
    retrieve_bm25,
    retrieve_model,
)
from sparse_tune.evaluation.fusion_choice import choose_fusion
from sparse_tune.evaluation.metrics import evaluate_run
from sparse_tune.index.base import IndexBackend
from sparse_tune.index.fusion import FUSION_METHODS, Fusion, FusionMethod, fuse
from sparse_tune.types import Corpus, Encoded, EvalResult, Qrels, Run

logger = logging.getLogger(__name__)

#: How OpenSearch fuses: a native ``hybrid`` query + search pipeline, client-side, or whichever the server allows.
OpenSearchHybrid = Literal["auto", "native", "client"]

#: The retrievers a model can be fused with: BM25, or a dense model named after the colon.
BM25_PART = "bm25"
DENSE_PREFIX = "dense:"


@dataclass(frozen=True)
class HybridSpec:
    """What to fuse the model with, and how; ``None`` weights (and method) are chosen on validation."""

    parts: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    method: FusionMethod | None = None

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("--hybrid needs at least one retriever to fuse with (bm25, dense:MODEL)")
        for part in self.parts:
            if part != BM25_PART and not (part.startswith(DENSE_PREFIX) and part[len(DENSE_PREFIX) :]):
                raise ValueError(f"--hybrid part '{part}' is neither 'bm25' nor 'dense:MODEL'")
        if self.weights is not None:
            if len(self.weights) != len(self.parts) + 1:
                raise ValueError(
                    f"--hybrid-weights gives {len(self.weights)} weight(s) for {len(self.parts) + 1} retrievers "
                    f"(the model, then {', '.join(self.parts)}): give one per retriever, or 'auto'"
                )
            Fusion(self.method or "minmax", self.weights)  # fail now on bad weights

    @classmethod
    def parse(cls, parts: str, weights: str = "auto", method: str | None = None) -> HybridSpec:
        """From the command line: ``bm25,dense:MODEL``, ``auto`` or ``W,W[,W]``, ``minmax|rrf|sum`` or ``None``."""
        if method is not None and method not in FUSION_METHODS:
            raise ValueError(f"unknown --fusion '{method}': choose one of {', '.join(FUSION_METHODS)}")
        names = tuple(p.strip() for p in parts.split(",") if p.strip())
        if weights.strip().lower() == "auto":
            return cls(names, None, method)  # type: ignore[arg-type]
        try:
            values = tuple(float(w) for w in weights.split(","))
        except ValueError:
            raise ValueError(
                f"--hybrid-weights must be 'auto' or numbers like 0.3,0.7, got '{weights}'"
            ) from None
        return cls(names, values, method or "minmax")  # type: ignore[arg-type]

    @property
    def chooses(self) -> bool:
        """Whether something (the weights, the method or both) is chosen on validation."""
        return self.weights is None or self.method is None

    def label(self, model: str) -> str:
        """The results row's name: ``hybrid:MODEL+bm25[+dense:...]``."""
        return "hybrid:" + "+".join((model, *self.parts))


@dataclass(frozen=True)
class HybridResult:
    """The hybrid row and how it fused (the fusion, and where it was chosen if it was)."""

    result: EvalResult
    fusion: Fusion
    chosen: dict[str, Any] | None

    def row_fields(self) -> dict[str, Any]:
        """What the results.json row carries besides the metrics: the fusion, and the choice."""
        out: dict[str, Any] = dict(self.fusion.to_json())
        out["fusion_chosen_on"] = self.chosen if self.chosen is not None else "given"
        return out


def _retrieve_part(
    part: str,
    dataset: str,
    corpus: Corpus,
    queries: dict[str, str],
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
) -> Retrieval:
    if part == BM25_PART:
        return retrieve_bm25(dataset, corpus, queries, backend, settings, corpus_fingerprint)
    # a dense partner is its own model: --head / --idf-path apply to the evaluated model only
    plain = dataclasses.replace(settings, model_overrides={})
    return retrieve_model(part[len(DENSE_PREFIX) :], corpus, queries, backend, plain, corpus_fingerprint)


def _judged(queries: dict[str, str], qrels: Qrels) -> dict[str, str]:
    return {q: queries[q] for q in qrels if q in queries}


def evaluate_hybrid(
    model_name: str,
    spec: HybridSpec,
    dataset: str,
    corpus: Corpus,
    queries: dict[str, str],
    qrels: Qrels,
    backend: IndexBackend,
    settings: EvalSettings,
    corpus_fingerprint: str,
    validation: ValidationSplit | None = None,
    native: bool = False,
) -> HybridResult:
    """The hybrid of ``model_name`` and ``spec.parts`` on the reported queries (``qrels``).

    ``validation`` (needed when ``spec`` chooses) holds other judged queries of the same
    corpus; every retriever searches them together with the reported ones, and the fusion is
    chosen on them alone. ``native`` (OpenSearch with the neural-search plugin, a sparse model
    with BM25 only) fuses the reported queries on the server.
    """
    report = _judged(queries, qrels)
    held = {} if validation is None else _judged(validation.queries, validation.qrels)
    if spec.chooses and not held:
        raise ValueError("choosing the hybrid's fusion needs validation queries (none were given)")
    clash = [q for q in set(held) & set(report) if held[q] != report[q]]
    if clash:
        raise ValueError(
            f"validation and reported queries share ids with different texts: {sorted(clash)[:5]}"
        )
    both = {**held, **report}

    # 1. Every retriever's top-k of the validation and the reported queries.
    found = [
        retrieve_model(model_name, corpus, both, backend, settings, corpus_fingerprint, with_text=native)
    ]
    for part in spec.parts:
        found.append(_retrieve_part(part, dataset, corpus, both, backend, settings, corpus_fingerprint))

    # 2. The fusion: given, or the best on the validation queries.
    chosen = None
    if spec.chooses:
        assert validation is not None
        methods = (spec.method,) if spec.method else FUSION_METHODS
        runs = [{q: f.run.get(q, {}) for q in held} for f in found]
        choice = choose_fusion(runs, validation.qrels, settings.top_k, methods, spec.weights)
        fusion = choice.fusion
        chosen = {
            "dataset": validation.dataset,
            "split": validation.split,
            "origin": validation.origin.strip(" ()") or "the whole split",
            "num_queries": choice.num_queries,
            "nDCG@10": choice.value,
        }
        logger.info(
            "hybrid %s: chose %s on %d validation queries of %s/%s%s (nDCG@10 %.4f there)",
            spec.label(model_name),
            fusion,
            choice.num_queries,
            validation.dataset,
            validation.split,
            validation.origin,
            choice.value,
        )
    else:
        assert spec.weights is not None
        fusion = Fusion(spec.method or "minmax", spec.weights)

    # 3. The reported queries: fused on the server (native) or here, timed per query.
    qids = list(report)
    if native:
        run, per_query_ms = _native_search(backend, found[0], report, fusion, settings)
    else:
        runs = [f.run for f in found]
        per_query_ms = []
        run = {}
        for q in qids:
            t = time.perf_counter()
            run.update(fuse([{q: r.get(q, {})} for r in runs], fusion, settings.top_k))
            fused_ms = (time.perf_counter() - t) * 1000
            per_query_ms.append(sum(f.per_query_ms[q] for f in found) + fused_ms)
    metrics = evaluate_run(qrels, run)
    metrics.update(_latency(per_query_ms))
    metrics["num_queries"] = float(len(qids))
    metrics["num_docs"] = float(len(corpus))
    return HybridResult(EvalResult(model=spec.label(model_name), metrics=metrics, step=None), fusion, chosen)


def _native_search(
    backend: IndexBackend, model: Retrieval, report: dict[str, str], fusion: Fusion, settings: EvalSettings
) -> tuple[Run, list[float]]:
    """The reported queries as OpenSearch ``hybrid`` queries through a pipeline created (and removed) here."""
    search_hybrid = getattr(backend, "search_hybrid", None)
    if search_hybrid is None or model.queries is None:
        raise ValueError("native hybrid search needs the OpenSearch backend")
    q_enc = model.queries
    row = {q: i for i, q in enumerate(q_enc.ids)}
    qids = list(report)
    rows = [row[q] for q in qids]
    enc = Encoded(qids, q_enc.matrix[rows], q_enc.kind, q_enc.vocab)
    with backend.hybrid_pipeline(fusion) as pipeline:  # type: ignore[attr-defined]
        return _timed_search(
            len(qids),
            settings.search_batch,
            lambda part: search_hybrid(
                model.index,
                Encoded(qids[part], enc.matrix[part], enc.kind, enc.vocab),
                {q: report[q] for q in qids[part]},
                fusion,
                settings.top_k,
                pipeline,
            ),
        )
