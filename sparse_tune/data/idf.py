"""Token IDF weights for inference-free sparse models (the query side is a lookup table).

An inference-free model scores a query token by a fixed weight, its IDF in the target
corpus, computed with the *model's* tokenizer so the weights line up with the
vocabulary columns the document encoder writes to.

Formula (BM25 / Lucene IDF, ``N`` documents, ``df`` documents containing the token)::

    idf(df) = log(1 + (N - df + 0.5) / (df + 0.5))

It is always > 0 (even for a token in every document) and strictly decreasing in
``df``. A token counts once per document however often it occurs; special tokens
(``[CLS]``, ``[SEP]``, ``[PAD]``, ...) are never counted or written.

Tokens of the vocabulary that never occur in the corpus get ``idf(0) = log(1 + (N + 0.5) / 0.5)``,
the largest weight, and are written to the file too. We keep the formula's own limit
rather than a smaller ad-hoc value: such tokens cannot match any indexed document
through BM25 either, so their query weight only matters through document expansion,
and a separate constant would be one more number to tune. Writing them explicitly
matters because OpenSearch's ``sparse_tokenize`` model gives tokens *missing* from
``idf.json`` the weight 1.0 (ml-commons ``SparseTokenizerModel``: ``idf.getOrDefault(token, 1.0f)``).

The file format is OpenSearch's ``idf.json``: one JSON object ``{token: weight}``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from sparse_tune.data.errors import DataError
from sparse_tune.fsio import atomic_write_text

#: Weight :func:`load_idf` gives vocabulary tokens absent from the file. 1.0 is what
#: OpenSearch's ``sparse_tokenize`` model uses, so a model trained with a loaded
#: ``idf.json`` scores queries exactly as the server will. (sentence-transformers'
#: ``SparseStaticEmbedding.from_json`` uses 0.0 instead.)
MISSING_TOKEN_WEIGHT = 1.0


def excluded_token_ids(tokenizer: Any, vocab_size: int) -> list[int]:
    """The token ids (below ``vocab_size``) that carry no IDF weight: the tokenizer's special tokens.

    ml-commons' ``sparse_tokenize`` drops them from a query (they decode to ""), so a weight
    for ``[CLS]`` or ``[PAD]`` in an ``idf.json`` would mean something to us and nothing to
    the server. This one definition decides what :func:`compute_idf` counts, what every
    ``idf.json`` we write lists (:func:`idf_table`), and which ids the query encoders skip.
    """
    return sorted(i for i in set(tokenizer.all_special_ids) if 0 <= i < vocab_size)


def idf_table(vocab: Sequence[str], weights: Sequence[float], tokenizer: Any) -> dict[str, float]:
    """``{token: weight}`` for every vocabulary id but :func:`excluded_token_ids`: an ``idf.json``'s content.

    ``vocab[i]`` and ``weights[i]`` belong to token id ``i``.
    """
    excluded = set(excluded_token_ids(tokenizer, len(vocab)))
    return {tok: float(w) for i, (tok, w) in enumerate(zip(vocab, weights, strict=True)) if i not in excluded}


def idf_weight(df: np.ndarray | float, n_docs: int) -> np.ndarray:
    """``log(1 + (N - df + 0.5) / (df + 0.5))`` elementwise (float64)."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def document_frequencies(
    texts: Sequence[str], tokenizer: Any, batch_size: int = 1024, max_length: int | None = None
) -> np.ndarray:
    """Documents containing each token id, shape ``(len(tokenizer),)``; special tokens stay 0.

    Batches go through the tokenizer's (Rust, multi-threaded) fast path. With
    ``max_length`` documents are cut where the encoder would cut them; by default
    the whole document counts.
    """
    vocab_size = len(tokenizer)
    df = np.zeros(vocab_size, dtype=np.int64)
    kwargs: dict[str, Any] = {"add_special_tokens": False, "return_attention_mask": False, "verbose": False}
    if max_length is not None:
        kwargs.update(truncation=True, max_length=max_length)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        ids = tokenizer(batch, **kwargs)["input_ids"]
        # one row per doc: unique ids, then one bincount over the whole batch
        uniq = [np.unique(np.asarray(row, dtype=np.int64)) for row in ids if len(row)]
        if uniq:
            df += np.bincount(np.concatenate(uniq), minlength=vocab_size)[:vocab_size]
    df[excluded_token_ids(tokenizer, vocab_size)] = 0
    return df


def compute_idf(
    texts: Sequence[str],
    tokenizer: Any,
    batch_size: int = 1024,
    max_length: int | None = None,
    include_unseen: bool = True,
) -> dict[str, float]:
    """``{token: idf}`` over ``texts`` with the model's ``tokenizer`` (see the module docstring).

    With ``include_unseen`` (default) every non-special vocabulary token is present,
    unseen ones at ``idf(0)``, so the file means the same to us and to OpenSearch.
    """
    if len(texts) == 0:
        raise DataError("<corpus>", None, "cannot compute IDF over an empty corpus")
    df = document_frequencies(texts, tokenizer, batch_size=batch_size, max_length=max_length)
    weights = idf_weight(df, len(texts))
    special = set(excluded_token_ids(tokenizer, len(df)))
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    out: dict[str, float] = {}
    for i in range(len(df)):
        token = id_to_token.get(i)
        if token is None or i in special or (df[i] == 0 and not include_unseen):
            continue
        out[token] = float(weights[i])
    return out


def _check_weight(path: Path | str, token: str, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise DataError(path, None, f"token '{token}': weight must be a number, got {type(weight).__name__}")
    if not math.isfinite(weight):
        raise DataError(path, None, f"token '{token}': weight is not finite ({weight})")
    if weight < 0:
        raise DataError(path, None, f"token '{token}': weight is negative ({weight})")
    return float(weight)


def save_idf(path: str | PathLike[str], idf: dict[str, float]) -> None:
    """Write ``{token: weight}`` as OpenSearch's ``idf.json`` (UTF-8, weights validated first, atomically)."""
    path = Path(path)
    clean = {tok: _check_weight(path, tok, w) for tok, w in idf.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(clean, ensure_ascii=False))


def read_idf(path: str | PathLike[str]) -> dict[str, float]:
    """An ``idf.json`` as a validated ``{token: weight}`` dict (finite, >= 0)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "idf file not found")
    try:
        with path.open(encoding="utf-8-sig") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"malformed JSON: {e.msg} (column {e.colno})") from e
    if not isinstance(data, dict):
        raise DataError(path, None, f"expected a JSON object {{token: weight}}, got {type(data).__name__}")
    return {tok: _check_weight(path, tok, w) for tok, w in data.items()}


def load_idf(path: str | PathLike[str], tokenizer: Any, default: float = MISSING_TOKEN_WEIGHT):
    """An ``idf.json`` as a ``torch.Tensor`` of shape ``(len(tokenizer),)`` indexed by token id.

    Vocabulary tokens absent from the file get ``default`` (1.0, OpenSearch's value,
    see :data:`MISSING_TOKEN_WEIGHT`). Tokens in the file but not in the vocabulary
    are ignored with a warning: usually a sign the file was made for another tokenizer.
    """
    import torch

    idf = read_idf(path)
    vocab = tokenizer.get_vocab()
    weights = torch.full((len(tokenizer),), float(default), dtype=torch.float32)  # (vocab,)
    unknown = []
    for token, w in idf.items():
        i = vocab.get(token)
        if i is None or i >= weights.shape[0]:
            unknown.append(token)
        else:
            weights[i] = w
    if unknown:
        sample = ", ".join(repr(t) for t in unknown[:5])
        warnings.warn(
            f"{path}: {len(unknown)} of {len(idf)} tokens are not in the tokenizer's vocabulary and were "
            f"ignored (e.g. {sample}); was this idf.json made for another tokenizer?",
            stacklevel=2,
        )
    return weights
