"""Validation queries: a BEIR split the dataset has, or N training queries held out by seed.

A recipe may name both: ``eval_split: dev`` with ``eval_holdout: 100`` validates on ``dev``
where the dataset has it (training keeps every training query) and holds out 100 training
queries where it does not, so one recipe does the right thing on scifact (no dev split) and
on fiqa or nfcorpus (a dev split). A large split is cut to ``max_queries`` by seed.

Every draw depends only on the set of query ids and the seed (ids are sorted before
drawing), so the same recipe always validates on the same queries, whatever order the
qrels file lists them in. The split is written next to the model so a reader can check
that no validation query was trained on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike

from sparse_tune.types import Corpus, Qrels

logger = logging.getLogger(__name__)

#: Written to the run folder by training: where the validation queries came from, and their ids.
SPLIT_FILE = "validation_split.json"


@dataclass
class ValidationSplit:
    """Judged validation queries over a corpus; ``holdout`` is N when they were taken from training."""

    dataset: str
    split: str
    corpus: Corpus
    queries: dict[str, str]  # query id -> text, judged queries only
    qrels: Qrels
    holdout: int | None = None
    seed: int | None = None
    drawn_from: int | None = None  # judged queries of the split, when max_queries cut it by seed

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "holdout": self.holdout,
            "seed": self.seed,
            "drawn_from": self.drawn_from,
            "query_ids": sorted(self.qrels),
        }

    @property
    def origin(self) -> str:
        """How the queries were chosen, for the log: held out of training, or drawn from the split."""
        if self.holdout:
            return f" (held out {self.holdout} by seed {self.seed})"
        if self.drawn_from:
            return f" (drawn from {self.drawn_from} by seed {self.seed})"
        return ""


def holdout_query_ids(query_ids: Iterable[str], n: int, seed: int) -> list[str]:
    """``n`` ids drawn with ``seed`` from ``query_ids`` (sorted first, so input order does not matter)."""
    pool = sorted(set(query_ids))
    if n >= len(pool):
        raise ValueError(
            f"eval_holdout={n} would hold out all {len(pool)} training queries; hold out fewer so training has data"
        )
    return sorted(random.Random(seed).sample(pool, n))


def load_validation_split(
    folder: str | PathLike[str],
    split: str | None,
    holdout: int | None,
    train_split: str,
    seed: int,
    max_queries: int | None = None,
) -> ValidationSplit:
    """The validation split of ``folder``: its qrels ``split``, or ``holdout`` queries of ``train_split``.

    With both, ``split`` is used when the folder has it (and it is not the training split),
    ``holdout`` otherwise. ``max_queries`` caps a split's judged queries (drawn by ``seed``),
    so a large dev split does not slow every evaluation; a holdout is already its own size.
    """
    from sparse_tune.data.beir import has_split, load_beir

    if split is None and holdout is None:
        raise ValueError("give split (a BEIR split), holdout (N training queries) or both")
    if split is not None and holdout is not None:
        if split == train_split or not has_split(folder, split):
            why = "it is the training split" if split == train_split else f"{folder} has no qrels/{split}.tsv"
            logger.info("validation: not on %r (%s); holding out %d training queries", split, why, holdout)
            split = None
    name = split if split is not None else train_split
    corpus, queries, qrels = load_beir(folder, name)
    judged = [q for q, rels in qrels.items() if any(s > 0 for s in rels.values())]
    if split is None:
        chosen, extra = holdout_query_ids(judged, holdout, seed), {"holdout": holdout, "seed": seed}
    elif max_queries is None or max_queries >= len(judged):
        return ValidationSplit(str(folder), split, corpus, queries, qrels)
    else:
        chosen = holdout_query_ids(judged, max_queries, seed)  # the same draw, from the split
        extra = {"seed": seed, "drawn_from": len(judged)}
    return ValidationSplit(
        str(folder), name, corpus, {q: queries[q] for q in chosen}, {q: qrels[q] for q in chosen}, **extra
    )


def load_saved_split(path: str | PathLike[str]) -> ValidationSplit:
    """The validation queries a training run wrote (``SPLIT_FILE``), read back from their dataset.

    So a later step (``sparse-tune merge --alpha auto``) validates on exactly the run's
    validation queries, held-out ones included, and never on its training queries.
    """
    import json
    from pathlib import Path

    from sparse_tune.data.beir import load_beir

    record = json.loads(Path(path).read_text(encoding="utf-8"))
    corpus, queries, qrels = load_beir(record["dataset"], record["split"])
    missing = [q for q in record["query_ids"] if q not in qrels or q not in queries]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} validation query id(s) not in {record['dataset']}, e.g. {missing[0]!r}"
        )
    chosen = record["query_ids"]
    return ValidationSplit(
        record["dataset"],
        record["split"],
        corpus,
        {q: queries[q] for q in chosen},
        {q: qrels[q] for q in chosen},
        holdout=record.get("holdout"),
        seed=record.get("seed"),
        drawn_from=record.get("drawn_from"),
    )
