"""Validation queries: a BEIR split the dataset has, or N training queries held out by seed.

A recipe may name both: ``eval_split: dev`` with ``eval_holdout: 100`` validates on ``dev``
where the dataset has it (training keeps every training query) and holds out 100 training
queries where it does not, so one recipe does the right thing on scifact (no dev split) and
on fiqa or nfcorpus (a dev split). A large split is cut to ``max_queries`` by seed.

``eval_holdout`` is a ceiling, not a demand: a small dataset cannot give 100 queries to
validation and still train, so at most :data:`HOLDOUT_MAX_FRACTION` of the judged training
queries are held out, at least :data:`HOLDOUT_MIN` where that leaves training the larger part,
and never more than half (:func:`holdout_size`); the run says so in one line.

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

#: ``eval_holdout`` is capped at this fraction of the judged training queries ...
HOLDOUT_MAX_FRACTION = 0.2
#: ... but not below this many (a smaller validation set is too noisy to choose a checkpoint) ...
HOLDOUT_MIN = 5
# ... and never above half of them: training keeps the larger part.

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


def holdout_size(asked: int, available: int) -> int:
    """How many of ``available`` judged training queries to hold out when ``asked`` for ``asked``.

    ``min(asked, max(HOLDOUT_MIN, 20% of available), half of available)``: 100 of scifact's 809
    stay 100; 5 of 26; 3 of 6. Raises ``ValueError`` when not even one query can be held out.
    """
    n = min(asked, max(HOLDOUT_MIN, int(available * HOLDOUT_MAX_FRACTION)), available // 2)
    if n < 1:
        raise ValueError(
            f"eval_holdout: {available} judged training query(ies) are too few to hold one out and still "
            "train; add a dev split (qrels/dev.tsv), or train without validation (eval_split: null, "
            "eval_holdout: null)"
        )
    return n


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

    ``holdout`` is a ceiling (:func:`holdout_size`). Only queries with a judged-relevant document
    (grade > 0) validate: a query whose rows are all 0 has no nDCG to measure.

    With both, ``split`` is used when the folder has it (and it is not the training split),
    ``holdout`` otherwise. ``max_queries`` caps a split's judged queries (drawn by ``seed``),
    so a large dev split does not slow every evaluation; a holdout is already its own size.
    ``corpus`` is the folder's corpus when the caller has already read it.
    """
    from sparse_tune.data.beir import has_split, load_beir

    if split is None and holdout is None:
        raise ValueError("give split (a BEIR split), holdout (N training queries) or both")
    why = ""
    if split is not None and holdout is not None:
        if split == train_split or not has_split(folder, split):
            why = "it is the training split" if split == train_split else f"{folder} has no qrels/{split}.tsv"
            why = f"not on {split!r} ({why}); "
            split = None
    name = split if split is not None else train_split
    corpus, queries, qrels = load_beir(folder, name, corpus=corpus)
    judged = [q for q, rels in qrels.items() if any(s > 0 for s in rels.values())]
    if split is None:
        n = holdout_size(holdout, len(judged))
        if why or n < holdout:
            capped = (
                f" (eval_holdout={holdout} is a ceiling: at most {round(100 * HOLDOUT_MAX_FRACTION)}%, at "
                f"least {HOLDOUT_MIN}, at most half)"
                if n < holdout
                else ""
            )
            logger.info(
                "validation: %sholding out %d of %d judged training queries%s; training on the other %d",
                why,
                n,
                len(judged),
                capped,
                len(judged) - n,
            )
        chosen, extra = holdout_query_ids(judged, n, seed), {"holdout": n, "seed": seed}
    elif max_queries is None or max_queries >= len(judged):
        if len(judged) == len(qrels):
            return ValidationSplit(str(folder), split, corpus, queries, qrels)
        chosen, extra = judged, {}
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

    from sparse_tune.data.beir import has_split

    path = Path(model_folder) / SPLIT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    split = record.get("split")
    if not split or split == reported or not record.get("query_ids") or not has_split(folder, split):
        return None
    saved, missing = _saved_split(record, folder, corpus)
    return None if missing else saved


def load_saved_split(path: str | PathLike[str]) -> ValidationSplit:
    """The validation queries a training run wrote (``SPLIT_FILE``), read back from their dataset.

    So a later step (``sparse-tune merge --alpha auto``) validates on exactly the run's
    validation queries, held-out ones included, and never on its training queries.
    """
    import json
    from pathlib import Path

    record = json.loads(Path(path).read_text(encoding="utf-8"))
    saved, missing = _saved_split(record, record["dataset"])
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} validation query id(s) not in {record['dataset']}, e.g. {missing[0]!r}"
        )
    return saved


def _saved_split(
    record: dict, folder: str | PathLike[str], corpus: Corpus | None = None
) -> tuple[ValidationSplit, list[str]]:
    """The queries a ``SPLIT_FILE`` record names, read from ``folder``'s split of that name, and the ids not judged there.

    The one reader of the record for both callers; each decides what a missing id means.
    """
    from sparse_tune.data.beir import load_beir

    corpus, queries, qrels = load_beir(folder, record["split"], corpus=corpus)
    ids = record.get("query_ids") or []
    missing = [q for q in ids if q not in qrels or q not in queries]
    kept = [q for q in ids if q in qrels and q in queries]
    extra = {k: record.get(k) for k in ("holdout", "seed", "drawn_from")}
    split = ValidationSplit(
        str(folder),
        record["split"],
        corpus,
        {q: queries[q] for q in kept},
        {q: qrels[q] for q in kept},
        **extra,
    )
    return split, missing
