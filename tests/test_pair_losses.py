"""Labelled-pair and triplet losses: hand-computed values on toy tensors, and sentence-transformers' own."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_tune.config import LossConfig
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.contrastive import ContrastiveLoss
from sparse_tune.losses.cosine_similarity import CosineSimilarityLoss
from sparse_tune.losses.triplet import TripletLoss

TOL = dict(rel=1e-6, abs=1e-7)


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_contrastive_cosine_by_hand_and_as_sentence_transformers():
    q, d, y = _t([[1, 0], [0, 1]]), _t([[1, 0], [1, 1]]), _t([1, 0])
    out = ContrastiveLoss("cosine", 0.5)(LossInputs(q, d, labels=y))
    # pair 1: cos 1, distance 0, related -> 0; pair 2: distance 1 - 1/sqrt(2), unrelated ->
    # 0.5 * (0.5 - distance)^2; mean over the 2 pairs
    expected = 0.5 * (0.5 - (1 - 1 / math.sqrt(2))) ** 2 / 2
    assert out["loss"].item() == pytest.approx(expected, **TOL)
    assert out["contrastive"].item() == pytest.approx(expected, **TOL)
    from sentence_transformers.sentence_transformer.losses import ContrastiveLoss as STContrastive

    st = STContrastive(model=None).compute_loss_from_embeddings([q, d], y)
    assert out["loss"].item() == pytest.approx(st.item(), **TOL)


def test_contrastive_dot_by_hand():
    q, d, y = _t([[1, 0], [0, 1], [1, 0]]), _t([[3, 0], [1, 1], [1, 0]]), _t([1, 0, 1])
    out = ContrastiveLoss("dot", margin=2.0)(LossInputs(q, d, labels=y))
    # s/m = 1.5, 0.5, 0.5: related above the margin -> 0; unrelated 0.5 * 0.5^2; related 0.5 * (1-0.5)^2
    assert out["loss"].item() == pytest.approx((0 + 0.125 + 0.125) / 3, **TOL)


def test_contrastive_dot_still_pushes_an_unrelated_pair_above_the_margin():
    q = _t([[1.0, 0.0]]).requires_grad_()
    out = ContrastiveLoss("dot", margin=2.0)(LossInputs(q, _t([[4, 0]]), labels=_t([0])))
    assert out["loss"].item() == pytest.approx(0.5 * 2.0**2, **TOL)  # s/m = 2
    out["loss"].backward()
    assert q.grad[0, 0].item() > 0  # descending lowers the score


def test_cosine_similarity_by_hand_and_as_sentence_transformers():
    q, d, y = _t([[1, 0], [0, 1]]), _t([[1, 0], [1, 1]]), _t([1, 0.5])
    out = CosineSimilarityLoss("cosine")(LossInputs(q, d, labels=y))
    expected = (0 + (1 / math.sqrt(2) - 0.5) ** 2) / 2
    assert out["loss"].item() == pytest.approx(expected, **TOL)
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss as STCosine

    assert out["loss"].item() == pytest.approx(
        STCosine(model=None).compute_loss_from_embeddings([q, d], y).item(), **TOL
    )


def test_cosine_similarity_dot_regresses_score_over_margin_on_the_label():
    q, d, y = _t([[1, 0], [0, 1]]), _t([[3, 0], [1, 1]]), _t([1, 0])
    out = CosineSimilarityLoss("dot", margin=2.0)(LossInputs(q, d, labels=y))
    assert out["loss"].item() == pytest.approx(((1.5 - 1) ** 2 + (0.5 - 0) ** 2) / 2, **TOL)


def test_triplet_euclidean_by_hand_and_as_sentence_transformers():
    a, p, n = _t([[0, 0], [0, 0]]), _t([[3, 4], [1, 0]]), _t([[0, 1], [0, 10]])
    d = torch.stack([p, n], dim=1).reshape(4, 2)  # grouped per query: positive, negative
    out = TripletLoss("euclidean", 5.0)(LossInputs(a, d))
    assert out["loss"].item() == pytest.approx((9 + 0) / 2, **TOL)  # relu(5-1+5), relu(1-10+5)
    from sentence_transformers.sentence_transformer.losses import TripletLoss as STTriplet

    assert out["loss"].item() == pytest.approx(
        STTriplet(model=None).compute_loss_from_embeddings([a, p, n], None).item(), **TOL
    )


def test_triplet_dot_by_hand_and_over_two_negatives():
    a = _t([[1, 1], [1, 0]])
    d = _t([[2, 0], [0, 1.5], [3, 0], [1, 0]])
    out = TripletLoss("dot", 1.0)(LossInputs(a, d))
    assert out["loss"].item() == pytest.approx((0.5 + 0) / 2, **TOL)  # relu(1-(2-1.5)), relu(1-(3-1))
    one = TripletLoss("dot", 1.0)(LossInputs(_t([[1, 1]]), _t([[2, 0], [0, 1.5], [0, 3]])))
    assert one["loss"].item() == pytest.approx((0.5 + 2.0) / 2, **TOL)  # one triplet per negative


def test_pair_losses_refuse_what_they_cannot_read():
    q, d = _t([[1, 0], [0, 1]]), _t([[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="no labels"):
        ContrastiveLoss()(LossInputs(q, d))
    with pytest.raises(ValueError, match="one document per query"):
        CosineSimilarityLoss()(LossInputs(q[:1], d, labels=_t([1])))
    with pytest.raises(ValueError, match="3 labels for 2 queries"):
        ContrastiveLoss()(LossInputs(q, d, labels=_t([1, 0, 1])))
    with pytest.raises(ValueError, match=">= 1 negative"):
        TripletLoss()(LossInputs(q, d))
    with pytest.raises(ValueError, match="margin must be > 0"):
        TripletLoss("dot", 0.0)
    with pytest.raises(ValueError, match="cosine or dot"):
        CosineSimilarityLoss("euclidean")


def test_build_loss_compares_dense_as_sentence_transformers_and_sparse_by_dot():
    dense = build_loss(LossConfig(loss="contrastive"), inference_free=False, dense=True).main
    assert (dense.similarity, dense.margin) == ("cosine", 0.5)
    sparse = build_loss(LossConfig(loss="contrastive"), inference_free=False).main
    assert (sparse.similarity, sparse.margin) == ("dot", 20.0)
    trip = build_loss(LossConfig(loss="triplet"), inference_free=False, dense=True).main
    assert (trip.similarity, trip.margin) == ("euclidean", 5.0)
    chosen = build_loss(LossConfig(loss="triplet", pair_similarity="cosine", margin=0.2), False).main
    assert (chosen.similarity, chosen.margin) == ("cosine", 0.2)
    # the FLOPS terms compose with the pair losses as with every other loss
    reg = build_loss(LossConfig(loss="cosine_similarity", flops_doc_weight=0.1), inference_free=False)
    q, d = _t([[1, 0], [0, 1]]), _t([[3, 0], [1, 1]])
    out = reg(LossInputs(q, d, labels=_t([1, 0])))
    assert set(out) == {"loss", "cosine_similarity", "flops_doc", "flops_doc_weight"}
