"""Knowledge distillation from teacher scores over each query's own candidate documents.

Both losses compare the student's scores ``q_i . d_j`` over query ``i``'s ``G`` candidates
(``LossInputs.group_scores()``, shape (batch, group)) with the teacher's scores for the same
candidates (``LossInputs.teacher_scores``, shape (batch, group)), pre-computed or from a live
``TeacherEnsemble``. In-batch negatives are not used: the teacher only scored the query's own
group. Both losses are invariant to adding a per-query constant to the teacher scores, so
the ensemble's min-max normalisation choice for constant teachers does not change them.

Losses are computed in float32 even when the representations are bf16/fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparse_tune.losses.base import LossInputs


def _scores(batch: LossInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, teacher) scores, both (batch, group) float32 on the student's device."""
    batch.checked_teacher_scores()  # raises on None / wrong shape, with the shapes
    teacher = batch.teacher_scores
    assert teacher is not None
    student = batch.group_scores().float()  # (batch, group)
    # Cast from the teacher's own dtype, not via the student's (bf16 would round the targets).
    return student, teacher.to(device=student.device, dtype=torch.float32)


class KLDistillLoss(nn.Module):
    """KL(teacher || student) between softmax distributions over each query's candidates.

    With temperature ``T``: ``p = softmax(teacher / T)``, ``log q = log_softmax(student / T)``,
    ``loss = T^2 * mean_over_queries( sum_j p_j * (log p_j - log q_j) )``. The ``T^2`` factor
    (Hinton et al., 2015) keeps gradient magnitudes comparable across temperatures.
    Teacher scores should be on a logit-like scale (see ``TeacherEnsemble``'s ``score_scale``).
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        student, teacher = _scores(batch)
        t = self.temperature
        log_q = F.log_softmax(student / t, dim=-1)  # (batch, group)
        log_p = F.log_softmax(teacher / t, dim=-1)  # (batch, group)
        kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        loss = kl * (t * t)
        return {"loss": loss, "kl": kl.detach()}


class MarginMSELoss(nn.Module):
    """MSE between student and teacher margins ``score(pos) - score(neg)`` (Hofstätter et al., 2020).

    The positive is each group's first document; with ``G`` > 2 every one of the ``G - 1``
    negatives gives a margin and the mean is taken over all (batch, G - 1) margins.
    The teacher scores' scale matters here (it is the margins' scale), unlike for KL.
    """

    def forward(self, batch: LossInputs) -> dict[str, torch.Tensor]:
        student, teacher = _scores(batch)
        if student.shape[1] < 2:
            raise ValueError(
                f"MarginMSE needs a positive and >= 1 negative per query; group shape is {tuple(student.shape)}"
            )
        student_margin = student[:, :1] - student[:, 1:]  # (batch, group - 1)
        teacher_margin = teacher[:, :1] - teacher[:, 1:]  # (batch, group - 1)
        loss = F.mse_loss(student_margin, teacher_margin)
        return {"loss": loss, "margin_mse": loss.detach()}
