"""Distillation losses on toy tensors with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.distill import KLDistillLoss, MarginMSELoss

# Two queries, three candidates each (G = 3), dim 2. Student scores q_i . d_j:
#   query 0 = [1, 0] against d = [2, 0], [1, 0], [0, 5]  -> [2, 1, 0]
#   query 1 = [0, 1] against d = [0, 1], [3, 0], [0, 3]  -> [1, 0, 3]
Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
D = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 5.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0]])


def _batch(teacher: torch.Tensor | None, q: torch.Tensor = Q, d: torch.Tensor = D) -> LossInputs:
    return LossInputs(q=q, d=d, teacher_scores=teacher)


def test_student_scores_are_the_hand_computed_ones() -> None:
    assert torch.equal(_batch(None).group_scores(), torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 3.0]]))


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [
        # Teacher row 0 = [5, 5, 5] -> uniform p = 1/3 each; row 1 = the student's own scores -> KL 0.
        # KL(uniform || softmax(s)) = -log 3 - mean(s) + logsumexp(s).
        # T = 1: s = [2, 1, 0]: logsumexp = log(e^2 + e + 1) = log(11.107338) = 2.407606
        #        KL_0 = 2.407606 - 1 - 1.098612 = 0.308994; mean over 2 queries = 0.154497; * T^2 = 0.154497
        (1.0, 0.154497),
        # T = 2: s / 2 = [1, 0.5, 0]: logsumexp = log(e + e^0.5 + 1) = log(5.367003) = 1.680270
        #        KL_0 = 1.680270 - 0.5 - 1.098612 = 0.081657; mean = 0.0408287; * 4 = 0.163315
        (2.0, 0.163315),
    ],
)
def test_kl_matches_hand_computed_value(temperature: float, expected: float) -> None:
    teacher = torch.tensor([[5.0, 5.0, 5.0], [1.0, 0.0, 3.0]])
    out = KLDistillLoss(temperature=temperature)(_batch(teacher))
    assert set(out) == {"loss", "kl"}
    assert out["loss"].item() == pytest.approx(expected, abs=1e-5)
    # "kl" is the un-scaled divergence, "loss" = T^2 * kl.
    assert out["kl"].item() == pytest.approx(expected / temperature**2, abs=1e-5)


def test_kl_is_zero_when_student_matches_teacher_up_to_a_shift() -> None:
    teacher = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 3.0]]) + 7.0
    assert KLDistillLoss()(_batch(teacher))["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_margin_mse_matches_hand_computed_value() -> None:
    # Student margins (pos - neg): query 0: [2-1, 2-0] = [1, 2]; query 1: [1-0, 1-3] = [1, -2].
    # Teacher [[3, 0, 0], [0, 1, 0]] margins: [3, 3] and [-1, 0].
    # Differences [-2, -1, 2, -2], squares [4, 1, 4, 4], mean = 13 / 4 = 3.25.
    teacher = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = MarginMSELoss()(_batch(teacher))
    assert set(out) == {"loss", "margin_mse"}
    assert out["loss"].item() == pytest.approx(3.25)


@pytest.mark.parametrize("loss", [KLDistillLoss(), MarginMSELoss()], ids=["kl", "margin_mse"])
def test_missing_teacher_scores_raise_with_the_expected_shape(loss: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        loss(_batch(None))


@pytest.mark.parametrize("loss", [KLDistillLoss(), MarginMSELoss()], ids=["kl", "margin_mse"])
@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (6,), (2, 3, 1)])
def test_wrong_teacher_shape_raises_with_both_shapes(loss: torch.nn.Module, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError) as info:
        loss(_batch(torch.zeros(shape)))
    assert str(tuple(shape)) in str(info.value) and "(2, 3)" in str(info.value)


def test_losses_backpropagate_into_the_representations() -> None:
    q = Q.clone().requires_grad_(True)
    d = D.clone().requires_grad_(True)
    teacher = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for loss in (KLDistillLoss(temperature=2.0), MarginMSELoss()):
        q.grad = d.grad = None
        loss(_batch(teacher, q, d))["loss"].backward()
        assert q.grad is not None and d.grad is not None
        assert q.grad.abs().sum() > 0 and d.grad.abs().sum() > 0


def test_bf16_representations_give_a_float32_loss() -> None:
    teacher = torch.tensor([[5.0, 5.0, 5.0], [1.0, 0.0, 3.0]])
    out = KLDistillLoss()(_batch(teacher, Q.bfloat16(), D.bfloat16()))
    assert out["loss"].dtype == torch.float32
    assert math.isclose(out["loss"].item(), 0.154497, abs_tol=1e-3)


def test_invalid_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        KLDistillLoss(temperature=0.0)
