"""Mine a BEIR split into training examples: the one code path behind ``sparse-tune mine`` and the
distillation pipeline's ``mine`` stage, so both produce the same negatives from the same settings.
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from sparse_tune.mining.hard_negatives import mine_hard_negatives
from sparse_tune.types import BeirSplit

logger = logging.getLogger(__name__)

MethodName = Literal["bm25", "model", "random"]

__all__ = ["MethodName", "add_random_negatives", "default_index_name", "mine_beir_split"]


def add_random_negatives(
    examples: list[dict], dataset: str, split: str, n: int, seed: int, loaded: BeirSplit | None = None
) -> list[dict]:
    """Append ``n`` random corpus negatives (not positives, not already present) to each mined example.

    ``loaded``: the split already read (see :func:`mine_beir_split`), so it is not parsed again.
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


def default_index_name(dataset: str, method: str, model: str | None, corpus_fingerprint: str) -> str:
    """``sparse-tune-mine-<dataset>-<method>[-<model>]-<16 hex>``, a valid OpenSearch index name.

    The hash covers the corpus texts and the model (a local checkpoint by its files), so a
    later run reuses the index only when it would hold the same documents and vectors.
    """
    from sparse_tune.index.fingerprint import fingerprint_model, index_name

    parts = ["sparse-tune-mine", Path(dataset).resolve().name, method] + ([Path(model).name] if model else [])
    model_fp = fingerprint_model(model) if model else method
    return index_name("-".join(parts), model_fp, corpus_fingerprint, {"method": method})


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
    batch_size: int = 64,
    loaded: BeirSplit | None = None,
) -> list[dict[str, Any]]:
    """``{"query", "pos", "neg"}`` examples for every judged query of ``split`` of a BEIR folder.

    ``method`` ``bm25`` / ``model`` samples ``n_negatives`` from ranks ``rank_range`` of that
    retriever (see :func:`mine_hard_negatives`); ``random`` draws uniform corpus negatives (the
    baseline training from a BEIR folder uses). ``random_negatives`` adds that many uniform
    negatives to each mined example, a guard against the false negatives hard mining picks up.
    A complete index of the same name is reused unless ``reindex``. ``loaded`` is the split as
    :func:`~sparse_tune.data.beir.load_beir` returned it, for a caller that already read it (a
    large corpus is then parsed once, not twice).
    """
    from sparse_tune.data.beir import beir_training_examples, load_beir
    from sparse_tune.index import get_backend
    from sparse_tune.index.fingerprint import fingerprint_texts

    dataset = str(dataset)
    if method == "model" and not model:
        raise ValueError("mining with method 'model' needs a model")
    # a bad folder fails here, before any index is built
    loaded = loaded if loaded is not None else load_beir(dataset, split)
    corpus, queries, qrels = loaded
    if method == "random":
        return beir_training_examples(dataset, split, n_negatives=n_negatives, seed=seed, loaded=loaded)
    retriever = None
    if method == "model":
        from sparse_tune.models.io import load_model

        retriever = load_model(model)
    index = index or default_index_name(dataset, method, model, fingerprint_texts(corpus.ids, corpus.texts))
    examples = mine_hard_negatives(
        get_backend(backend, **(backend_options or {})),
        index,
        queries,
        qrels,
        corpus,
        method=method,
        model=retriever,
        n_negatives=n_negatives,
        rank_range=rank_range,
        seed=seed,
        reuse_index=not reindex,
        batch_size=batch_size,
    )
    if random_negatives > 0:
        examples = add_random_negatives(examples, dataset, split, random_negatives, seed, loaded)
    return examples
