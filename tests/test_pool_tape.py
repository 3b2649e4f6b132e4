"""Recorded max-pool routes: the replayed pooling equals the fused one, and GradCache's replay skips the projection."""

from __future__ import annotations

import pytest
import torch

from sparse_tune.config import LossConfig
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs
from sparse_tune.models import fused
from sparse_tune.models.fused import splade_pool_fused
from sparse_tune.models.pool_tape import PoolTape, recording, replaying
from sparse_tune.training.cached import encode_and_score
from sparse_tune.training.collator import GroupCollator
from tests import ddp_worker
from tests.test_fused import ACTS, _assert_rel_close, _inputs, _values_and_grads


def _record(hidden, weight, bias, mask, activation) -> PoolTape:
    tape = PoolTape()
    with torch.no_grad(), recording(tape):
        splade_pool_fused(hidden, weight, bias, mask, activation)
    return tape


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("bias", [True, False])
def test_replayed_pooling_has_the_fused_values_and_gradients(activation: str, bias: bool) -> None:
    hidden, weight, b, mask = _inputs(4, 11, 16, 97, seed=3, bias=bias)
    want_out, want_grads = _values_and_grads(splade_pool_fused, hidden, weight, b, mask, activation)
    tape = _record(hidden, weight, b, mask, activation)
    routes = tape.calls[0]
    assert routes.shape == (4, 11, 97)
    assert len(routes.rows) == int((want_out > 0).sum()) > 50  # one route per positive entry
    assert bool((mask[routes.rows, routes.tokens] == 1).all())  # padding never wins

    with replaying(tape):
        got_out, got_grads = _values_and_grads(splade_pool_fused, hidden, weight, b, mask, activation)
    _assert_rel_close(got_out, want_out)
    assert torch.equal(got_out == 0, want_out == 0)  # the same entries are alive
    assert len(got_grads) == len(want_grads)
    for got, want in zip(got_grads, want_grads, strict=True):
        _assert_rel_close(got, want)


def test_replay_rejects_another_forward() -> None:
    hidden, weight, b, mask = _inputs(2, 5, 8, 31, seed=1)
    tape = _record(hidden, weight, b, mask, "log1p_relu")
    with pytest.raises(
        RuntimeError, match=r"recorded at \(batch, seq_len, vocab\) \(2, 5, 31\) and replayed at"
    ):
        with replaying(tape):
            splade_pool_fused(hidden[:, :4], weight, b, mask[:, :4])
    with pytest.raises(RuntimeError, match="pools more often than the recorded one"):
        with replaying(tape):
            splade_pool_fused(hidden, weight, b, mask)
            splade_pool_fused(hidden, weight, b, mask)
    with pytest.raises(RuntimeError, match="pooled 0 times, the recorded one 1 times"):
        with replaying(tape):
            pass
    with pytest.raises(RuntimeError, match="recorded without autograd"):
        with recording(PoolTape()):
            splade_pool_fused(hidden, weight, b, mask)  # hidden requires grad, grad mode on


def test_cached_step_projects_the_vocabulary_only_in_its_first_pass(monkeypatch) -> None:
    """The replay recomputes only recorded routes; gradients still equal the uncached step's."""
    model = ddp_worker.build_tiny_model()
    batch = GroupCollator(model)(ddp_worker.EXAMPLES)
    loss_fn = build_loss(LossConfig(loss="infonce", flops_doc_weight=0.05, flops_query_weight=0.1), False)
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_of(q, d):
        return loss_fn(LossInputs(q, d))

    q, d = model(query=batch["query"], docs=batch["docs"])
    want = torch.autograd.grad(loss_of(q, d)["loss"], params)

    projections = []
    real = fused.masked_max_logits
    monkeypatch.setattr(
        fused, "masked_max_logits", lambda *a, **k: projections.append(a[0].shape[0]) or real(*a, **k)
    )
    _, _, terms = encode_and_score(model, batch["query"], batch["docs"], loss_of, mini_batch_size=2)
    assert projections == [2, 4, 2, 4]  # per chunk: 2 queries, 4 documents; first pass only
    terms["loss"].backward()
    assert projections == [2, 4, 2, 4]  # the replay projected nothing
    for p, g in zip(params, want, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-5)
