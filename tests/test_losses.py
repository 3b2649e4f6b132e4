"""Hand-computed values for InfoNCE, FLOPS, its warm-up and the composed loss."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_tune.config import LossConfig
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.infonce import InfoNCELoss
from sparse_tune.losses.regularizers import FlopsRegularizer, flops, idf_penalty, quadratic_warmup

Q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
# group size 2: query 0 -> rows 0 (pos), 1 (neg); query 1 -> rows 2 (pos), 3 (neg)
D = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])


def test_infonce_in_batch_hand_computed():
    # scores q @ d.T: q0 -> [2, 0, 0, 1], target 0; q1 -> [0, 2, 2, 0], target 2
    l0 = -2 + math.log(math.exp(2) + 1 + 1 + math.exp(1))
    l1 = -2 + math.log(1 + math.exp(2) + math.exp(2) + 1)
    out = InfoNCELoss(scale=1.0)(LossInputs(Q, D))
    assert out["loss"].item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    assert set(out) == {"loss", "infonce"}


def test_infonce_own_group_only_and_scale():
    # own groups: q0 -> [2, 0]; q1 -> [2, 0]; with scale 0.5 -> [1, 0]
    expected = -1 + math.log(math.exp(1) + 1)
    out = InfoNCELoss(scale=0.5, in_batch_negatives=False)(LossInputs(Q, D))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_infonce_rejects_bad_scale_and_ragged_groups():
    with pytest.raises(ValueError):
        InfoNCELoss(scale=0)
    with pytest.raises(ValueError, match="not a multiple"):
        InfoNCELoss()(LossInputs(Q, D[:3]))


def test_flops_hand_computed():
    reps = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # column means: [2, 0, 1] -> squares summed: 4 + 0 + 1 = 5
    assert flops(reps).item() == pytest.approx(5.0)
    # with token weights [0.5, 9, 2]: 0.5*4 + 0 + 2*1 = 4
    assert flops(reps, torch.tensor([0.5, 9.0, 2.0])).item() == pytest.approx(4.0)


def test_quadratic_warmup():
    assert quadratic_warmup(0, 10) == 0.0
    assert quadratic_warmup(5, 10) == pytest.approx(0.25)
    assert quadratic_warmup(10, 10) == 1.0
    assert quadratic_warmup(50, 10) == 1.0
    assert quadratic_warmup(3, 0) == 1.0


def test_flops_regularizer_weight_follows_warmup():
    reg = FlopsRegularizer("doc", weight=0.1, warmup_steps=10)
    reps = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    out = reg(reps, step=5)
    assert out["weighted"].item() == pytest.approx(0.1 * 0.25 * 5.0)
    assert out["flops_doc"].item() == pytest.approx(5.0)
    with pytest.raises(ValueError):
        FlopsRegularizer("doc", weight=-1.0)


def test_idf_penalty_mean_one_and_ordering():
    p = idf_penalty(torch.tensor([1.0, 2.0, 4.0]))
    assert p.mean().item() == pytest.approx(1.0, rel=1e-6)
    assert p[0] > p[1] > p[2] > 0  # frequent (low idf) tokens are penalised most


def test_build_loss_composes_named_terms():
    cfg = LossConfig(flops_doc_weight=0.1, flops_query_weight=0.2, flops_warmup_steps=0)
    loss = build_loss(cfg, inference_free=False)
    out = loss(LossInputs(Q, D, step=3))
    base = InfoNCELoss()(LossInputs(Q, D))["loss"].item()
    # doc FLOPS: column means of D = [0.75, 0.5] -> 0.5625 + 0.25 = 0.8125; query: [0.5, 1] -> 1.25
    assert out["flops_doc"].item() == pytest.approx(0.8125)
    assert out["flops_query"].item() == pytest.approx(1.25)
    assert out["loss"].item() == pytest.approx(base + 0.1 * 0.8125 + 0.2 * 1.25, rel=1e-6)


def test_inference_free_gets_no_query_flops():
    cfg = LossConfig(flops_doc_weight=0.1, flops_query_weight=0.2)
    out = build_loss(cfg, inference_free=True)(LossInputs(Q, D))
    assert "flops_query" not in out and "flops_doc" in out


def test_teacher_scores_shape_is_checked():
    batch = LossInputs(Q, D, teacher_scores=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        batch.checked_teacher_scores()


def test_infonce_never_counts_a_positive_of_the_same_query_as_an_in_batch_negative():
    """Two groups of one query (one per positive): each group's positive is masked out of the other's softmax."""
    import math

    import torch

    from sparse_tune.losses.base import LossInputs, query_keys
    from sparse_tune.losses.infonce import InfoNCELoss

    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the same query twice
    d = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0]])  # pos0, neg0, pos1, neg1
    same = query_keys(["aspirin", "aspirin"])
    got = InfoNCELoss()(LossInputs(q=q, d=d, query_keys=same))["loss"].item()
    # row 0 scores [2, 0, (3 masked), 1]; row 1 scores [(2 masked), 0, 3, 1]
    row0 = -2 + math.log(math.exp(2) + math.exp(0) + math.exp(1))
    row1 = -3 + math.log(math.exp(0) + math.exp(3) + math.exp(1))
    assert got == pytest.approx((row0 + row1) / 2, rel=1e-6)
    unmasked = InfoNCELoss()(LossInputs(q=q, d=d))["loss"].item()
    row0_all = -2 + math.log(math.exp(2) + math.exp(0) + math.exp(3) + math.exp(1))
    row1_all = -3 + math.log(math.exp(2) + math.exp(0) + math.exp(3) + math.exp(1))
    assert unmasked == pytest.approx((row0_all + row1_all) / 2, rel=1e-6)
    # different queries: nothing masked
    other = query_keys(["aspirin", "insulin"])
    assert InfoNCELoss()(LossInputs(q=q, d=d, query_keys=other))["loss"].item() == pytest.approx(
        unmasked, rel=1e-6
    )


def test_query_keys_are_equal_for_equal_texts_in_any_process():
    """The key of a text is fixed (not Python's salted ``hash``), so ranks agree on which queries are one."""
    import subprocess
    import sys

    from sparse_tune.losses.base import query_keys

    keys = query_keys(["aspirin", "insulin", "aspirin", ""])
    assert keys.dtype == torch.int64 and keys[0] == keys[2] and keys[0] != keys[1] and keys[1] != keys[3]
    code = "from sparse_tune.losses.base import query_keys; print(query_keys(['aspirin']).item())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == int(keys[0])
