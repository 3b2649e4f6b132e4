"""Validation queries: a BEIR split the dataset has, or N training queries held out by seed.

The held-out draw depends only on the set of query ids and the seed (ids are sorted
before drawing), so the same recipe always validates on the same queries, whatever order
the qrels file lists them in. The split is written next to the model so a reader can
check that no validation query was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike

from sparse_tune.types import Corpus, Qrels

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

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "holdout": self.holdout,
            "seed": self.seed,
            "query_ids": sorted(self.qrels),
        }


def holdout_query_ids(query_ids: Iterable[str], n: int, seed: int) -> list[str]:
    """``n`` ids drawn with ``seed`` from ``query_ids`` (sorted first, so input order does not matter)."""
    pool = sorted(set(query_ids))
    if n >= len(pool):
        raise ValueError(
            f"eval_holdout={n} would hold out all {len(pool)} training queries; hold out fewer so training has data"
        )
    return sorted(random.Random(seed).sample(pool, n))


def load_validation_split(
    folder: str | PathLike[str], split: str | None, holdout: int | None, train_split: str, seed: int
) -> ValidationSplit:
    """The validation split of ``folder``: its qrels ``split``, or ``holdout`` queries of ``train_split``."""
    from sparse_tune.data.beir import load_beir

    if (split is None) == (holdout is None):
        raise ValueError("give exactly one of split (a BEIR split) and holdout (N training queries)")
    if split is not None:
        corpus, queries, qrels = load_beir(folder, split)
        return ValidationSplit(str(folder), split, corpus, queries, qrels)
    corpus, queries, qrels = load_beir(folder, train_split)
    judged = [q for q, rels in qrels.items() if any(s > 0 for s in rels.values())]
    chosen = holdout_query_ids(judged, holdout, seed)
    return ValidationSplit(
        str(folder),
        train_split,
        corpus,
        {q: queries[q] for q in chosen},
        {q: qrels[q] for q in chosen},
        holdout=holdout,
        seed=seed,
    )
