"""Fusion against OpenSearch's documented formulas, on hand-made lists (exact values, tolerance 1e-12)."""

from __future__ import annotations

import pytest

from sparse_tune.index.fusion import Fusion, fuse, fuse_lists, min_max, reciprocal_ranks

SPARSE = {"a": 10.0, "b": 6.0, "c": 2.0}  # min 2, max 10
LEXICAL = {"b": 30.0, "d": 20.0, "a": 10.0}  # min 10, max 30


def test_min_max_floors_the_minimum_and_gives_one_to_a_flat_list():
    assert min_max(SPARSE) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.001}, abs=1e-12)
    assert min_max({"x": 3.0}) == {"x": 1.0}
    assert min_max({"x": 2.0, "y": 2.0}) == {"x": 1.0, "y": 1.0}
    assert min_max({}) == {}


def test_minmax_arithmetic_mean_counts_a_missing_document_as_zero():
    fused = fuse_lists([SPARSE, LEXICAL], Fusion("minmax", (0.3, 0.7)))
    # sparse n: a 1, b .5, c .001; lexical n: b 1, d .5, a .001; missing -> 0, weights sum to 1
    assert fused == pytest.approx(
        {
            "a": 0.3 * 1.0 + 0.7 * 0.001,
            "b": 0.3 * 0.5 + 0.7 * 1.0,
            "c": 0.3 * 0.001,
            "d": 0.7 * 0.5,
        },
        abs=1e-12,
    )


def test_minmax_weights_are_rescaled_to_sum_to_one_without_changing_scores():
    assert Fusion("minmax", (3, 7)).weights == pytest.approx((0.3, 0.7))
    same = fuse_lists([SPARSE, LEXICAL], Fusion("minmax", (3.0, 7.0)))
    assert same == pytest.approx(fuse_lists([SPARSE, LEXICAL], Fusion("minmax", (0.3, 0.7))), abs=1e-12)
    equal = fuse_lists([SPARSE, LEXICAL], Fusion("minmax", (1, 1)))
    assert equal["b"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-12)


def test_rrf_sums_reciprocal_ranks_with_rank_constant_60():
    assert reciprocal_ranks(LEXICAL) == {"b": 1 / 61, "d": 1 / 62, "a": 1 / 63}
    fused = fuse_lists([SPARSE, LEXICAL], Fusion("rrf", (1, 1)))  # equal weights -> 0.5 each
    assert fused == pytest.approx(
        {"a": 0.5 / 61 + 0.5 / 63, "b": 0.5 / 62 + 0.5 / 61, "c": 0.5 / 63, "d": 0.5 / 62}, abs=1e-12
    )
    weighted = fuse_lists([SPARSE, LEXICAL], Fusion("rrf", (0.7, 0.3), rank_constant=40))
    assert weighted["a"] == pytest.approx(0.7 / 41 + 0.3 / 43, abs=1e-12)


def test_rrf_breaks_score_ties_by_document_id():
    assert reciprocal_ranks({"z": 1.0, "y": 1.0, "x": 2.0}) == {"x": 1 / 61, "y": 1 / 62, "z": 1 / 63}


def test_raw_weighted_sum_keeps_the_weights_as_given():
    f = Fusion("sum", (1.0, 2.0))
    assert f.weights == (1.0, 2.0)
    assert fuse_lists([SPARSE, LEXICAL], f) == pytest.approx({"a": 30.0, "b": 66.0, "c": 2.0, "d": 40.0})


def test_fuse_ranks_each_query_and_keeps_top_k():
    runs = [{"q1": SPARSE, "q2": {"x": 1.0}}, {"q1": LEXICAL}]
    out = fuse(runs, Fusion("minmax", (0.3, 0.7)), top_k=2)
    assert list(out["q1"]) == ["b", "d"]  # 0.85, 0.35 (a: 0.3007)
    assert out["q2"] == {"x": pytest.approx(0.3)}  # lexical list empty: its weight still counts


def test_bad_fusions_are_errors():
    with pytest.raises(ValueError, match="unknown fusion"):
        Fusion("max", (1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        Fusion("sum", (1,))
    with pytest.raises(ValueError, match=">= 0"):
        Fusion("minmax", (-1, 2))
    with pytest.raises(ValueError, match=">= 0"):
        Fusion("minmax", (0, 0))
    with pytest.raises(ValueError, match="rank_constant"):
        Fusion("rrf", (1, 1), rank_constant=0)
    with pytest.raises(ValueError, match="2 result lists but 3 weights"):
        fuse_lists([SPARSE, LEXICAL], Fusion("sum", (1, 1, 1)))


def test_json_round_trip():
    for f in (Fusion("minmax", (0.2, 0.8)), Fusion("rrf", (0.5, 0.5), 40), Fusion("sum", (1.0, 2.0))):
        assert Fusion.from_json(f.to_json()) == f
