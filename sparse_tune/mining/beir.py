"""Mine BEIR splits into training examples: the one code path behind ``sparse-tune mine`` and the
distillation pipeline's ``mine`` stage, so both produce the same negatives from the same settings.

Several splits of one folder share one corpus, so :func:`mine_beir_splits` reads it and builds
its index once for all of them; :func:`mine_beir_split` is that function for one split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from sparse_tune.mining.hard_negatives import mine_hard_negatives
from sparse_tune.mining.shortfall import ShortfallReport
from sparse_tune.types import BeirSplit

logger = logging.getLogger(__name__)

MethodName = Literal["bm25", "model", "random"]

__all__ = [
    "MethodName",
    "add_random_negatives",
    "default_index_name",
    "mine_beir_split",
    "mine_beir_splits",
    "mining_fingerprint",
]


def add_random_negatives(
    examples: list[dict], dataset: str, split: str, n: int, seed: int, loaded: BeirSplit | None = None
) -> list[dict]:
    """Append ``n`` random corpus negatives (not positives, not already present) to each mined example.

    ``loaded``: the split already read (see :func:`mine_beir_splits`), so it is not parsed again.
    """
    from sparse_tune.data.beir import beir_training_examples

    drawn = beir_training_examples(dataset, split, n_negatives=n, seed=seed, loaded=loaded)
    random_negs = {e["query"]: e["neg"] for e in drawn}
    out = []
    for e in examples:
        present = set(e["neg"]) | set(e["pos"])
        extra = [t for t in random_negs.get(e["query"], []) if t not in present]
        out.append({**e, "neg": e["neg"] + extra})
    return out


def _fingerprint_inputs(method: str, model: str | None, corpus_fingerprint: str) -> tuple[str, str, dict]:
    from sparse_tune.index.fingerprint import fingerprint_model

    return (fingerprint_model(model) if model else method), corpus_fingerprint, {"method": method}


def mining_fingerprint(method: str, model: str | None, corpus_fingerprint: str) -> str:
    """What a mining index holds (corpus texts, the model by its files, the method), as 16 hex.

    Recorded in the index, so a later run, under a generated or a given name, reuses it only
    when it would hold the same documents and vectors; :func:`default_index_name` ends in it.
    """
    from sparse_tune.index.fingerprint import index_fingerprint

    return index_fingerprint(*_fingerprint_inputs(method, model, corpus_fingerprint))


def default_index_name(dataset: str, method: str, model: str | None, corpus_fingerprint: str) -> str:
    """``sparse-tune-mine-<dataset>-<method>[-<model>]-<16 hex>``, a valid OpenSearch index name.

    The hex is :func:`mining_fingerprint`: it covers the corpus texts and the model (a local
    checkpoint by its files).
    """
    from sparse_tune.index.fingerprint import index_name

    parts = ["sparse-tune-mine", Path(dataset).resolve().name, method] + ([Path(model).name] if model else [])
    return index_name("-".join(parts), *_fingerprint_inputs(method, model, corpus_fingerprint))


def mine_beir_split(
    dataset: str | PathLike[str],
    split: str = "train",
    *,
    method: MethodName = "bm25",
    model: str | None = None,
    backend: str = "embedded",
    backend_options: dict[str, Any] | None = None,
    index: str | None = None,
    n_negatives: int = 8,
    rank_range: tuple[int, int] = (2, 200),
    seed: int = 42,
    random_negatives: int = 0,
    reindex: bool = False,
    overwrite_index: bool = False,
    batch_size: int = 64,
    loaded: BeirSplit | None = None,
    report: ShortfallReport | None = None,
    resume_dir: str | PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """``{"query", "pos", "neg"}`` examples for every judged query of ``split`` of a BEIR folder.

    :func:`mine_beir_splits` for one split (see there for the settings); ``loaded`` is the split as
    :func:`~sparse_tune.data.beir.load_beir` returned it, for a caller that already read it;
    ``report`` receives how short queries were filled (bm25 / model methods).
    """
    return mine_beir_splits(
        dataset,
        [split],
        method=method,
        model=model,
        backend=backend,
        backend_options=backend_options,
        index=index,
        n_negatives=n_negatives,
        rank_range=rank_range,
        seed=seed,
        random_negatives=random_negatives,
        reindex=reindex,
        overwrite_index=overwrite_index,
        batch_size=batch_size,
        loaded=None if loaded is None else {split: loaded},
        reports=None if report is None else {split: report},
        resume_dir=resume_dir,
    )[split]


def _read_splits(
    dataset: str, splits: Sequence[str], loaded: Mapping[str, BeirSplit] | None
) -> dict[str, BeirSplit]:
    """Each of ``splits`` (given in ``loaded`` or read now), all over one corpus object, parsed at most once."""
    from sparse_tune.data.beir import load_beir

    given = dict(loaded or {})
    corpus = next((given[s][0] for s in splits if s in given), None)
    out: dict[str, BeirSplit] = {}
    for split in dict.fromkeys(splits):
        part = given[split] if split in given else load_beir(dataset, split, corpus=corpus)
        if corpus is None:
            corpus = part[0]
        elif part[0] is not corpus and part[0] != corpus:
            raise ValueError(
                f"split '{split}' of {dataset} was given with another corpus than the other splits"
            )
        out[split] = part
    return out


def mine_beir_splits(
    dataset: str | PathLike[str],
    splits: Sequence[str],
    *,
    method: MethodName = "bm25",
    model: str | None = None,
    backend: str = "embedded",
    backend_options: dict[str, Any] | None = None,
    index: str | None = None,
    n_negatives: int = 8,
    rank_range: tuple[int, int] = (2, 200),
    seed: int = 42,
    random_negatives: int = 0,
    reindex: bool = False,
    overwrite_index: bool = False,
    batch_size: int = 64,
    loaded: Mapping[str, BeirSplit] | None = None,
    reports: dict[str, ShortfallReport] | None = None,
    resume_dir: str | PathLike[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{split: examples}``: ``{"query", "pos", "neg"}`` for every judged query of each split of a BEIR folder.

    ``method`` ``bm25`` / ``model`` samples ``n_negatives`` from ranks ``rank_range`` of that
    retriever (see :func:`mine_hard_negatives`); ``random`` draws uniform corpus negatives (the
    baseline training from a BEIR folder uses). ``random_negatives`` adds that many uniform
    negatives to each mined example, a guard against the false negatives hard mining picks up.
    A complete index of the same name and :func:`mining_fingerprint` is reused unless ``reindex``.
    On OpenSearch an existing index that sparse_tune did not create is refused
    (:class:`~sparse_tune.index.ownership.ForeignIndexError`) unless ``overwrite_index``.

    The splits share the folder's corpus, so it is parsed once, the model loaded once and the
    index built once (on the first split; the others search it). Each split's examples are the
    ones mining it alone gives: negatives are drawn per query and per split with ``seed``.
    ``loaded`` holds splits as :func:`~sparse_tune.data.beir.load_beir` returned them, for a
    caller that already read them (a large corpus is then not parsed again); the others are
    read over the same corpus. ``reports``, when given, receives each hard-mined split's
    :class:`~sparse_tune.mining.shortfall.ShortfallReport` (queries topped up below the window;
    an entry already there is filled in).

    Under torchrun (after ``distributed.init_from_env``) the ranks share the model's encoding
    and rank 0 gets the examples (the others ``[]`` per split); ``resume_dir`` keeps finished
    pieces of the corpus encoding so a killed run resumes (``models/sharded_encode.py``).
    """
    from sparse_tune.data.beir import beir_training_examples
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts

    dataset = str(dataset)
    if not splits:
        raise ValueError("no split to mine")
    if method == "model" and not model:
        raise ValueError("mining with method 'model' needs a model")
    if index is not None and backend == "opensearch":
        from sparse_tune.index.fingerprint import check_index_name

        check_index_name(index)  # before the dataset is read or a model loaded
    # a bad folder or split fails here, before any index is built
    read = _read_splits(dataset, splits, loaded)
    if method == "random":
        return {
            split: beir_training_examples(dataset, split, n_negatives=n_negatives, seed=seed, loaded=part)
            for split, part in read.items()
        }
    corpus = next(iter(read.values()))[0]
    corpus_fp = fingerprint_texts(corpus.ids, corpus.texts)
    index = index or default_index_name(dataset, method, model, corpus_fp)
    options = dict(backend_options or {})
    if overwrite_index and backend == "opensearch":
        options["overwrite_index"] = True
    engine = get_backend(backend, **options)
    fingerprint = mining_fingerprint(method, model, corpus_fp)
    retriever, model_key = None, None
    if method == "model":
        from sparse_tune.distributed import main_decides
        from sparse_tune.index.fingerprint import fingerprint_model
        from sparse_tune.models.io import load_model

        # An index of that name sparse_tune did not create is refused before the model is loaded.
        main_decides(lambda: engine.exists(index, fingerprint))
        retriever, model_key = load_model(model), fingerprint_model(model)
    mined: dict[str, list[dict[str, Any]]] = {}
    for split, (_, queries, qrels) in read.items():
        report = ShortfallReport() if reports is None else reports.setdefault(split, ShortfallReport())
        examples = mine_hard_negatives(
            engine,
            index,
            queries,
            qrels,
            corpus,
            method=method,
            model=retriever,
            n_negatives=n_negatives,
            rank_range=rank_range,
            seed=seed,
            reuse_index=bool(mined) or not reindex,  # ``reindex`` rebuilds once, for the first split
            batch_size=batch_size,
            report=report,
            fingerprint=fingerprint,
            model_key=model_key,
            resume_dir=resume_dir,
        )
        if random_negatives > 0:
            examples = add_random_negatives(examples, dataset, split, random_negatives, seed, read[split])
        mined[split] = examples
    return mined
