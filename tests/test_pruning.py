"""Pruning with OpenSearch's PruneUtils semantics: exact kept sets on small vectors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_tune.index.pruning import keep_mask, prune_matrix, prune_tokens, validate_prune

# The sparse_vector docs' summary example: {"100": 1, "200": 2, "300": 3, "400": 6}, total 12.
COLS = np.array([100, 200, 300, 400])
W = np.array([1.0, 2.0, 3.0, 6.0], dtype=np.float32)


def kept(prune_type: str, ratio: float | None, w: np.ndarray = W, cols: np.ndarray = COLS) -> list[int]:
    return sorted(int(c) for c in cols[keep_mask(w, cols, prune_type, ratio)])


@pytest.mark.parametrize(
    ("prune_type", "ratio", "expected"),
    [
        ("none", None, [100, 200, 300, 400]),
        ("max_ratio", 0.0, [100, 200, 300, 400]),
        ("max_ratio", 0.5, [300, 400]),  # w >= 0.5 * 6
        ("max_ratio", 0.51, [400]),
        ("top_k", 2, [300, 400]),
        ("top_k", 10, [100, 200, 300, 400]),
        ("abs_value", 2.0, [200, 300, 400]),  # w >= 2 (inclusive)
        ("abs_value", 0.0, [100, 200, 300, 400]),
        ("alpha_mass", 0.5, [400]),  # running sums 6, 9, 11, 12 <= 6: the docs' example
        ("alpha_mass", 0.75, [300, 400]),  # <= 9: the weight reaching the bound exactly is kept
        ("alpha_mass", 0.74, [400]),
        ("alpha_mass", 0.0, []),  # the crossing weight is dropped, so nothing survives
    ],
)
def test_prune_types_keep_exactly_what_prune_utils_keeps(prune_type, ratio, expected) -> None:
    assert kept(prune_type, ratio) == expected


def test_comparisons_are_in_float32_like_java() -> None:
    # float32(0.7) < 0.7 in float64: a float64 comparison would drop the 0.7 weight, Java keeps it.
    w = np.array([0.7, 1.0], dtype=np.float32)
    cols = np.array([1, 2])
    assert kept("max_ratio", 0.7, w, cols) == [1, 2]
    assert kept("abs_value", 0.7, w, cols) == [1, 2]


def test_ties_keep_the_lower_token_id() -> None:
    w = np.array([1.0, 1.0, 1.0, 5.0], dtype=np.float32)
    cols = np.array([9, 3, 5, 7])
    assert kept("top_k", 2, w, cols) == [3, 7]
    assert kept("alpha_mass", 0.75, w, cols) == [3, 7]  # running 5, 6, 7, 8 <= 6


def test_prune_matrix_prunes_each_row_and_keeps_empty_rows() -> None:
    m = sp.csr_matrix(
        np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0], [4.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    )
    out = prune_matrix(m, "max_ratio", 0.5)
    np.testing.assert_array_equal(
        out.toarray(), np.array([[0, 0, 3, 6], [0, 0, 0, 0], [4, 0, 0, 0]], dtype=np.float32)
    )
    assert out.dtype == np.float32 and out.shape == m.shape
    np.testing.assert_array_equal(prune_matrix(m, "top_k", 1).toarray()[:, 3], [6, 0, 0])
    assert prune_matrix(m, "none", None).nnz == m.nnz
    assert m.nnz == 6  # the input is not modified


def test_prune_tokens_on_a_token_map() -> None:
    tokens = {"400": 6.0, "100": 1.0, "300": 3.0, "200": 2.0}
    assert prune_tokens(tokens, "alpha_mass", 0.75) == {"400": 6.0, "300": 3.0}
    assert prune_tokens(tokens, "top_k", 1) == {"400": 6.0}


@pytest.mark.parametrize(
    ("prune_type", "ratio", "message"),
    [
        ("top_k", 2.5, "positive integer"),
        ("top_k", 0, "positive integer"),
        ("max_ratio", 1.0, r"\[0, 1\)"),
        ("alpha_mass", -0.1, r"\[0, 1\)"),
        ("abs_value", -1.0, ">= 0"),
        ("abs_value", None, "needs a finite"),
        ("none", 0.3, "not supported"),
        ("median", 0.3, "prune_type must be one of"),
    ],
)
def test_invalid_prune_settings_are_rejected(prune_type, ratio, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate_prune(prune_type, ratio)


def test_non_positive_weights_are_rejected_like_prune_utils() -> None:
    with pytest.raises(ValueError, match="positive"):
        keep_mask(np.array([1.0, 0.0], dtype=np.float32), np.array([0, 1]), "top_k", 1)


def test_encode_cli_prunes_and_writes_token_id_jsonl(tmp_path) -> None:
    import json
    from pathlib import Path

    from sparse_tune.cli.__main__ import main

    tiny = Path(__file__).parent / "data" / "tiny_beir"
    out = tmp_path / "docs.jsonl"
    args = ["encode", "--model", "splade-tiny", "--dataset", str(tiny), "--output", str(out)]
    assert (
        main([*args, "--sparse-embedding-format", "TOKEN_ID", "--prune-type", "top_k", "--prune-ratio", "4"])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        weights = row["sparse_embedding"]
        assert 0 < len(weights) <= 4 and all(k.isdigit() for k in weights)
    full = tmp_path / "full.jsonl"
    assert main(["encode", "--model", "splade-tiny", "--dataset", str(tiny), "--output", str(full)]) == 0
    first = json.loads(full.read_text().splitlines()[0])["sparse_embedding"]
    assert len(first) > 4 and not all(k.isdigit() for k in first)  # WORD keys by default
    top4 = sorted(first.values(), reverse=True)[:4]
    assert sorted(rows[0]["sparse_embedding"].values(), reverse=True) == pytest.approx(top4)


def test_encode_time_top_k_is_the_opensearch_top_k_prune(splade_tiny):
    """``--doc-top-k`` (encode_texts ``top_k``) keeps exactly what ``top_k`` pruning keeps, ties by token id."""
    import torch

    from sparse_tune.models.inference import _to_csr, encode_texts

    texts = ["Aspirin lowers the risk of heart attack.", "Statins lower blood cholesterol in adults."]
    full = encode_texts(splade_tiny, ["a", "b"], texts, "document", progress=False).matrix
    cut = encode_texts(splade_tiny, ["a", "b"], texts, "document", top_k=5, progress=False).matrix
    assert full.getnnz(axis=1).min() > 5 and list(cut.getnnz(axis=1)) == [5, 5]
    assert (cut != prune_matrix(full, "top_k", 5)).nnz == 0
    # a tie at the cut keeps the lower token id, as PruneUtils does
    reps = torch.tensor([[0.0, 2.0, 1.0, 1.0, 0.5]])
    assert _to_csr(reps, 2).indices.tolist() == [1, 2] and _to_csr(reps, None).nnz == 4
