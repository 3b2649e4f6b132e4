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
    corpus: Corpus | None = None,
) -> ValidationSplit:
    """The validation split of ``folder``: its qrels ``split``, or ``holdout`` queries of ``train_split``.

    With both, ``split`` is used when the folder has it (and it is not the training split),
    ``holdout`` otherwise. ``max_queries`` caps a split's judged queries (drawn by ``seed``),
    so a large dev split does not slow every evaluation; a holdout is already its own size.
    ``corpus`` is the folder's corpus when the caller has already read it.
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
    corpus, queries, qrels = load_beir(folder, name, corpus=corpus)
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


def validation_besides(
    folder: str | PathLike[str],
    reported: str,
    seed: int = 0,
    holdout: int = 100,
    corpus: Corpus | None = None,
) -> ValidationSplit:
    """Validation queries for choosing something at evaluation time, never those of the ``reported`` split.

    The folder's ``dev`` split when it has one (and it is not the one reported), else ``holdout``
    ``train`` queries drawn by ``seed`` (all of them when it has no more), when ``train`` is not
    the one reported. A setting chosen on the queries it is then reported on would look better
    than it is.
    """
    from sparse_tune.data.beir import has_split, load_beir

    if reported != "dev" and has_split(folder, "dev"):
        return load_validation_split(folder, "dev", None, "train", seed, corpus=corpus)
    if reported != "train" and has_split(folder, "train"):
        corpus, queries, qrels = load_beir(folder, "train", corpus=corpus)
        judged = [q for q, rels in qrels.items() if any(s > 0 for s in rels.values()) and q in queries]
        if len(judged) > holdout:
            return load_validation_split(folder, None, holdout, "train", seed, corpus=corpus)
        return ValidationSplit(
            str(folder), "train", corpus, {q: queries[q] for q in judged}, {q: qrels[q] for q in judged}
        )
    raise ValueError(
        f"{folder} has no dev or train qrels besides the reported split '{reported}', so there is nothing "
        "to choose on without looking at the reported queries; give the weights and the fusion yourself"
    )


def model_validation(
    model_folder: str | PathLike[str],
    folder: str | PathLike[str],
    reported: str,
    corpus: Corpus | None = None,
) -> ValidationSplit | None:
    """The validation queries a trained model was validated on (its ``validation_split.json``), if usable here.

    Choosing on them, rather than on queries drawn afresh, keeps out the training queries the model
    learned from. ``None`` when the folder has no such file, it names the ``reported`` split, or
    its queries are not all judged in ``folder``'s split of that name.
    """
    import json
    from pathlib import Path

    from sparse_tune.data.beir import has_split, load_beir

    path = Path(model_folder) / SPLIT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    split, ids = record.get("split"), record.get("query_ids") or []
    if not split or split == reported or not ids or not has_split(folder, split):
        return None
    corpus, queries, qrels = load_beir(folder, split, corpus=corpus)
    if not all(q in qrels and q in queries for q in ids):
        return None
    extra = {k: record.get(k) for k in ("holdout", "seed", "drawn_from")}
    return ValidationSplit(
        str(folder), split, corpus, {q: queries[q] for q in ids}, {q: qrels[q] for q in ids}, **extra
    )
