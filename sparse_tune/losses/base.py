"""The one seam every loss goes through: representations and labels in, named scalars out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from sparse_tune.distributed import gather_rows


def query_keys(texts: list[str]) -> torch.Tensor:
    """A 64-bit key per query text, equal on every rank for equal texts (Python's ``hash`` is salted per process)."""
    return torch.tensor(
        [
            int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
            for t in texts
        ],
        dtype=torch.int64,
    )


@dataclass
class LossInputs:
    """What a loss sees for one batch.

    ``d`` is grouped per query: rows ``i*G:(i+1)*G`` are query ``i``'s candidates and the
    first of them is its positive, so in-batch negatives are every other query's rows.

    ``q`` and ``d`` are this rank's share of the batch. With ``gather`` (under DDP), losses
    that look across the batch (in-batch negatives, FLOPS) read the global batch through
    :meth:`global_docs` / :meth:`global_queries`: every rank's rows in rank order, with
    gradients flowing back to their own ranks. Each side is gathered at most once per batch.
    """

    q: torch.Tensor  # (batch, dim)
    d: torch.Tensor  # (batch * group, dim)
    teacher_scores: torch.Tensor | None = None  # (batch, group)
    step: int = 0
    gather: bool = False
    labels: torch.Tensor | None = None  # (batch,): labelled pairs' labels in [0, 1]
    # (batch,) int64, one key per query text (:func:`query_keys`): groups with equal keys are of one
    # query (a query with many positives has one group per positive), so one's positive must not
    # count as an in-batch negative of the other, on this rank or, with ``gather``, on another.
    query_keys: torch.Tensor | None = None
    _gathered: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def batch_size(self) -> int:
        return self.q.shape[0]

    @property
    def group_size(self) -> int:
        if self.d.shape[0] % self.q.shape[0]:
            raise ValueError(f"d has {self.d.shape[0]} rows, not a multiple of the {self.q.shape[0]} queries")
        return self.d.shape[0] // self.q.shape[0]

    def global_docs(self) -> tuple[torch.Tensor, int]:
        """Documents of the global batch (world batch * group, dim) and the row of this rank's first one."""
        return self._global("d")

    def global_queries(self) -> torch.Tensor:
        """Queries of the global batch: (world batch, dim)."""
        return self._global("q")[0]

    def global_query_keys(self) -> torch.Tensor:
        """``query_keys`` of the global batch: (world batch,), in the order of :meth:`global_docs`' groups."""
        if self.query_keys is None:
            raise ValueError("the batch has no query_keys")
        return self._global("keys")[0]

    def _global(self, side: str) -> tuple[torch.Tensor, int]:
        if side == "keys":
            assert self.query_keys is not None
            local = self.query_keys.to(self.q.device)  # NCCL gathers CUDA tensors only
        else:
            local = self.q if side == "q" else self.d
        if not self.gather:
            return local, 0
        if side not in self._gathered:
            self._gathered[side] = gather_rows(local)
        return self._gathered[side]

    def group_scores(self) -> torch.Tensor:
        """Each query against its own candidates: (batch, group)."""
        b, g = self.batch_size, self.group_size
        d = self.d.view(b, g, -1)  # (batch, group, dim)
        return torch.einsum("bd,bgd->bg", self.q, d)

    def checked_labels(self) -> torch.Tensor:
        """Pair labels as float32 ``(batch,)``, with their shape checked (one per query)."""
        if self.labels is None:
            raise ValueError(
                "this loss trains on labelled pairs (sentence1/sentence2/label); the batch has no labels"
            )
        if self.labels.numel() != self.batch_size:
            raise ValueError(
                f"{self.labels.numel()} labels for {self.batch_size} queries: expected one per query"
            )
        return self.labels.reshape(-1).to(device=self.q.device, dtype=torch.float32)

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query and its one paired document, (batch, dim) each: the input of the labelled-pair losses."""
        if self.group_size != 1:
            raise ValueError(
                f"labelled-pair losses score one document per query; the batch has {self.group_size} "
                "(labelled pairs give one; with query/positives data use docs_per_query: 1)"
            )
        return self.q, self.d

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
