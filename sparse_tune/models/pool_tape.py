"""A tape of SPLADE max-pool routes, so GradCache's replay pass can skip the vocabulary projection.

GradCache (:mod:`sparse_tune.training.cached`) encodes every chunk twice: once without autograd
to get the representations, then again with autograd to push the cached gradients through.
With the fused SPLADE head most of a forward is the projection of every token onto the whole
vocabulary, only to max-pool it. But the replay needs much less: max-pooling routes the
gradient of each pooled entry to one token, and only the entries whose pooled value is
positive receive any (``relu'(x <= 0) == 0``). If the first pass records, per positive
(row, vocabulary entry), which token won the max, the replay can recompute just those
``n_positive`` logits (``O(nnz x hidden)`` instead of ``O(tokens x vocab x hidden)``) with
ordinary autograd ops. The replay re-runs the transformer with the same RNG state, so its
hidden states, and therefore the winning tokens, are those of the first pass.

This module only holds the tape and the context that makes it visible to
:func:`sparse_tune.models.fused.splade_pool_fused`, which records and replays through it.
The context is a ``ContextVar``: a forward run in another thread (``nn.DataParallel``) does
not see the tape, and then records nothing and replays with the full projection, which is
slower but still correct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PoolRoutes:
    """One pooling call's positive entries and the token each one max-pooled from.

    ``rows``, ``entries`` and ``tokens`` are parallel ``(n,)`` int64 tensors: batch row,
    vocabulary entry, token position. ``shape`` is the call's ``(batch, seq_len, vocab)``,
    checked on replay so that a different forward cannot silently reuse the routes.
    """

    shape: tuple[int, int, int]
    rows: torch.Tensor
    entries: torch.Tensor
    tokens: torch.Tensor

    @classmethod
    def from_pool(cls, max_logits: torch.Tensor, argmax: torch.Tensor, seq_len: int) -> PoolRoutes:
        """Routes from a fused pooling's ``(batch, vocab)`` max logits and argmax tokens."""
        rows, entries = (max_logits > 0).nonzero(as_tuple=True)  # (n,), (n,)
        batch, vocab = max_logits.shape
        return cls((batch, seq_len, vocab), rows, entries, argmax[rows, entries])


class PoolTape:
    """The routes of every fused SPLADE pooling in one forward pass, in call order."""

    def __init__(self) -> None:
        self.calls: list[PoolRoutes] = []
        self.replaying = False
        self._cursor = 0

    def record(self, routes: PoolRoutes) -> None:
        if self.replaying:
            raise RuntimeError("this pool tape is being replayed; record on a fresh tape")
        self.calls.append(routes)

    def next(self, shape: tuple[int, int, int]) -> PoolRoutes:
        """The next recorded call's routes; its shape must be the replayed call's."""
        if self._cursor >= len(self.calls):
            raise RuntimeError(
                f"the replayed forward pools more often than the recorded one ({len(self.calls)} calls recorded)"
            )
        routes = self.calls[self._cursor]
        if routes.shape != shape:
            raise RuntimeError(
                f"pooling call {self._cursor} was recorded at (batch, seq_len, vocab) {routes.shape} "
                f"and replayed at {shape}: the replayed forward is not the recorded one"
            )
        self._cursor += 1
        return routes

    def check_consumed(self) -> None:
        """Fail when the replay used fewer pooling calls than were recorded."""
        if self._cursor != len(self.calls):
            raise RuntimeError(
                f"the replayed forward pooled {self._cursor} times, the recorded one {len(self.calls)} times"
            )


_ACTIVE: ContextVar[PoolTape | None] = ContextVar("sparse_tune_pool_tape", default=None)


def active_tape() -> PoolTape | None:
    """The tape the current forward records into or replays from, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(tape: PoolTape) -> Iterator[PoolTape]:
    """Fused SPLADE poolings in this block (all without autograd) record their routes on ``tape``."""
    token = _ACTIVE.set(tape)
    try:
        yield tape
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def replaying(tape: PoolTape) -> Iterator[PoolTape]:
    """Fused SPLADE poolings in this block recompute only ``tape``'s routes, in recorded order."""
    tape.replaying = True
    tape._cursor = 0
    token = _ACTIVE.set(tape)
    try:
        yield tape
        tape.check_consumed()
    finally:
        _ACTIVE.reset(token)
