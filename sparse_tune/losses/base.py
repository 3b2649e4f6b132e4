"""The one seam every loss goes through: representations and labels in, named scalars out."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossInputs:
    """What a loss sees for one batch.

    ``d`` is grouped per query: rows ``i*G:(i+1)*G`` are query ``i``'s candidates and the
    first of them is its positive, so in-batch negatives are every other query's rows.
    """

    q: torch.Tensor  # (batch, dim)
    d: torch.Tensor  # (batch * group, dim)
    teacher_scores: torch.Tensor | None = None  # (batch, group)
    step: int = 0

    @property
    def batch_size(self) -> int:
        return self.q.shape[0]

    @property
    def group_size(self) -> int:
        if self.d.shape[0] % self.q.shape[0]:
            raise ValueError(f"d has {self.d.shape[0]} rows, not a multiple of the {self.q.shape[0]} queries")
        return self.d.shape[0] // self.q.shape[0]

    def group_scores(self) -> torch.Tensor:
        """Each query against its own candidates: (batch, group)."""
        b, g = self.batch_size, self.group_size
        d = self.d.view(b, g, -1)  # (batch, group, dim)
        return torch.einsum("bd,bgd->bg", self.q, d)

    def checked_teacher_scores(self) -> torch.Tensor:
        """Teacher scores with their shape checked against (batch, group)."""
        expected = (self.batch_size, self.group_size)
        if self.teacher_scores is None:
            raise ValueError(f"this loss needs teacher scores of shape {expected}; the batch has none")
        if tuple(self.teacher_scores.shape) != expected:
            raise ValueError(
                f"teacher scores have shape {tuple(self.teacher_scores.shape)}, expected (batch, group) = {expected}"
            )
        return self.teacher_scores.to(self.q.dtype)
