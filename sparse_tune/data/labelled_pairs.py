"""Labelled pairs from query/positives data: each positive labelled 1, each negative labelled 0.

The contrastive and cosine-similarity losses read ``(sentence1, sentence2, label)`` pairs, and
retrieval datasets give queries with judged positives (qrels) and mined negatives. Turning one
into the other here lets a recipe train those losses on any retrieval data (``labelled_pairs:
true``), and the negatives are the miner's (hard negatives make informative label-0 pairs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sparse_tune.data.formats import Example, is_labelled


def to_labelled_pairs(examples: Sequence[Example], negatives_per_query: int, seed: int) -> list[Example]:
    """One label-1 pair per positive and up to ``negatives_per_query`` label-0 pairs per example.

    Negatives are drawn without replacement by ``seed`` when an example has more; a negative
    that is also one of its positives is left out (it would be labelled both ways).
    Pairs keep the examples' order, positives first.
    """
    if negatives_per_query < 0:
        raise ValueError(f"negatives_per_query must be >= 0, got {negatives_per_query}")
    rng = random.Random(seed)
    out: list[Example] = []
    for ex in examples:
        if is_labelled(ex):
            out.append(ex)  # already a labelled pair
            continue
        positives = list(dict.fromkeys(ex["pos"]))
        negatives = [n for n in dict.fromkeys(ex.get("neg") or []) if n not in set(positives)]
        if len(negatives) > negatives_per_query:
            negatives = rng.sample(negatives, negatives_per_query)
        out += [{"query": ex["query"], "pos": [p], "neg": [], "label": 1.0} for p in positives]
        out += [{"query": ex["query"], "pos": [n], "neg": [], "label": 0.0} for n in negatives]
    return out
