"""l0-masked FLOPS (arXiv 2504.14839; sentence-transformers' FlopsLoss(threshold)): exact values on toy tensors."""

from __future__ import annotations

import pytest
import torch

from sparse_tune.config import ConfigError, LossConfig
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.regularizers import FlopsRegularizer, flops, l0_mask

# l0 (non-zeros per row) = 2, 1, 4
REPS = [[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]]


def test_rows_at_or_under_the_threshold_contribute_nothing():
    reps = torch.tensor(REPS)
    # no mask: column means 2/3, 1, 4/3, 1/3 -> 4/9 + 1 + 16/9 + 1/9 = 30/9
    assert flops(reps).item() == pytest.approx(30 / 9, abs=1e-6)
    # threshold 1: row 1 (one non-zero) is zeroed but still counts in the mean over 3 rows:
    # column means 2/3, 1, 1/3, 1/3 -> 4/9 + 1 + 1/9 + 1/9 = 15/9
    assert flops(reps, threshold=1).item() == pytest.approx(15 / 9, abs=1e-6)
    # threshold 2: only row 2 (four non-zeros) is penalised: column means 1/3 each -> 4/9
    assert flops(reps, threshold=2).item() == pytest.approx(4 / 9, abs=1e-6)
    assert flops(reps, threshold=4).item() == 0.0
    assert l0_mask(reps, 1).tolist() == [1.0, 0.0, 1.0]


def test_masked_rows_get_no_gradient():
    reps = torch.tensor(REPS, requires_grad=True)
    flops(reps, threshold=1).backward()
    assert torch.equal(reps.grad[1], torch.zeros(4))
    # d/dx_ij of sum_j (mean_i x_ij)^2 = 2 * mean_j / n for a penalised row with x_ij > 0
    assert reps.grad[0, 0].item() == pytest.approx(2 * (2 / 3) / 3, abs=1e-6)
    assert reps.grad[2, 2].item() == pytest.approx(2 * (1 / 3) / 3, abs=1e-6)


def test_sentence_transformers_semantics():
    """The same value as sentence-transformers' FlopsLoss(threshold) on non-negative SPLADE activations."""
    st_flops = pytest.importorskip("sentence_transformers.sparse_encoder.losses").FlopsLoss
    loss = st_flops.__new__(st_flops)
    torch.nn.Module.__init__(loss)
    loss.threshold = 1
    reps = torch.tensor(REPS)
    assert flops(reps, threshold=1).item() == pytest.approx(
        loss.compute_loss_from_embeddings(reps).item(), abs=1e-6
    )


def test_regularizer_logs_the_share_of_penalised_rows():
    reg = FlopsRegularizer("doc", weight=0.5, threshold=1)
    terms = reg(torch.tensor(REPS), step=0)
    assert terms["flops_doc"].item() == pytest.approx(15 / 9, abs=1e-6)
    assert terms["flops_doc_active"].item() == pytest.approx(2 / 3, abs=1e-6)
    assert terms["weighted"].item() == pytest.approx(0.5 * 15 / 9, abs=1e-6)
    assert "flops_doc_active" not in FlopsRegularizer("doc", weight=0.5)(torch.tensor(REPS), step=0)
    with pytest.raises(ValueError, match="threshold"):
        FlopsRegularizer("doc", weight=0.5, threshold=-1)


def test_config_thresholds_reach_both_sides():
    cfg = LossConfig(
        flops_doc_weight=1.0, flops_query_weight=1.0, flops_doc_threshold=2, flops_query_threshold=1
    )
    loss = build_loss(cfg, inference_free=False)
    q = torch.tensor(REPS)
    d = torch.tensor(REPS + REPS)  # 2 documents per query
    terms = loss(LossInputs(q=q, d=d))
    assert terms["flops_doc"].item() == pytest.approx(4 / 9, abs=1e-6)
    assert terms["flops_query"].item() == pytest.approx(15 / 9, abs=1e-6)
    with pytest.raises(ConfigError, match="flops_doc_threshold"):
        LossConfig(flops_doc_threshold=-1)
