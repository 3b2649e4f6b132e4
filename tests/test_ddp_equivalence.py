"""Two gloo ranks at per-device batch B give the loss and gradients of one process at batch 2B.

Also: the cached (GradCache) step gives the loss and gradients of the uncached one, in a
single process and under DDP, with dropout on (RNG replayed per chunk); logged terms are
means over ranks. All in float32; the tolerance 1e-5 covers summation-order differences.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

from sparse_tune.config import LossConfig
from sparse_tune.losses import build_loss
from sparse_tune.losses.base import LossInputs
from sparse_tune.training.cached import encode_and_score, rows
from sparse_tune.training.collator import GroupCollator
from tests import ddp_worker

ROOT = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def single() -> dict:
    """The reference: one process, all four examples in one batch."""
    return ddp_worker.run_scenarios(ddp_worker.EXAMPLES, ddp_worker.build_tiny_model(), ddp_worker.SAME_QUERY)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    """Two gloo ranks with two examples each (rank r gets examples 2r, 2r+1)."""
    out = tmp_path_factory.mktemp("ddp") / "rank0.pt"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def _assert_same(got: dict, want: dict) -> None:
    assert set(got["logged"]) == set(want["logged"])
    for name, value in want["logged"].items():
        assert got["logged"][name] == pytest.approx(value, **{"rel": 1e-5, "abs": 1e-5}), name
    assert set(got["grads"]) == set(want["grads"]) and len(want["grads"]) > 10
    for name, grad in want["grads"].items():
        torch.testing.assert_close(got["grads"][name], grad, **TOL, msg=name)


@pytest.mark.ddp
@pytest.mark.parametrize(
    "scenario", ["infonce_flops", "infonce_flops_cached", "kl", "kl_cached", "infonce_same_query"]
)
def test_two_ranks_equal_one_process_at_double_batch(two_ranks, single, scenario):
    got, want = two_ranks[scenario], single[scenario]
    _assert_same(got, want)
    assert got["rank_spread"] == 0.0  # DDP left identical gradients on both ranks
    expected_terms = {"infonce", "flops_doc", "flops_query"} if scenario.startswith("infonce") else {"kl"}
    assert expected_terms <= set(got["logged"])


@pytest.mark.ddp
def test_without_gathering_each_rank_sees_only_its_own_batch(two_ranks, single):
    """Per-rank InfoNCE (4 documents per query instead of 8) and FLOPS (per-rank means) differ."""
    got, want = two_ranks["infonce_flops_per_rank"]["logged"], single["infonce_flops"]["logged"]
    for name in ("infonce", "flops_doc", "flops_query"):
        assert abs(got[name] - want[name]) > 1e-3, name


def test_same_query_groups_mask_each_others_positive(single):
    """Examples 0 and 2 as one query: a positive leaves the other group's softmax, so the loss drops."""
    masked, plain = single["infonce_same_query"]["logged"], single["infonce_flops"]["logged"]
    assert masked["infonce"] < plain["infonce"] - 1e-3
    assert masked["flops_doc"] == pytest.approx(plain["flops_doc"], rel=1e-6)  # only the softmax changes


@pytest.mark.ddp
def test_logged_values_are_means_over_ranks(two_ranks):
    assert two_ranks["_ranks"] == {"rank_plus_one": 1.5}


@pytest.mark.parametrize("base", ["infonce_flops", "kl"])
def test_cached_equals_uncached_in_one_process(single, base):
    _assert_same(single[f"{base}_cached"], single[base])


def test_gathering_without_a_process_group_is_the_identity():
    q, d = torch.rand(2, 5), torch.rand(4, 5)
    inputs = LossInputs(q, d, gather=True)
    assert inputs.global_docs() == (d, 0) and inputs.global_queries() is q


def test_cached_replays_dropout_per_chunk():
    """With dropout on, cached gradients equal those of a chunk-by-chunk forward from the same seed."""
    model = ddp_worker.build_tiny_model().train()
    batch = GroupCollator(model)(ddp_worker.EXAMPLES)
    loss_fn = build_loss(LossConfig(loss="infonce", flops_doc_weight=0.05, flops_query_weight=0.1), False)
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_of(q, d):
        return loss_fn(LossInputs(q, d))

    torch.manual_seed(7)
    qs, ds = [], []
    for lo in range(0, 4, 2):  # the reference: chunks of 2 examples, with autograd, one RNG stream
        q, d = model(query=rows(batch["query"], lo, lo + 2), docs=rows(batch["docs"], 2 * lo, 2 * lo + 4))
        qs.append(q)
        ds.append(d)
    want_loss = loss_of(torch.cat(qs), torch.cat(ds))["loss"]
    want = torch.autograd.grad(want_loss, params)

    torch.manual_seed(7)
    _, _, terms = encode_and_score(model, batch["query"], batch["docs"], loss_of, mini_batch_size=2)
    after_first_pass = torch.get_rng_state()
    (terms["loss"] * 0.5).backward()  # a scaled loss (as gradient accumulation does) scales every gradient
    assert torch.equal(torch.get_rng_state(), after_first_pass)  # replaying left the RNG stream alone
    assert terms["loss"].item() == pytest.approx(want_loss.item(), rel=1e-6)
    for p, g in zip(params, want, strict=True):
        torch.testing.assert_close(p.grad, 0.5 * g, **TOL)

    torch.manual_seed(8)  # the check has teeth: another dropout stream gives other gradients
    model.zero_grad()
    _, _, terms = encode_and_score(model, batch["query"], batch["docs"], loss_of, mini_batch_size=2)
    terms["loss"].backward()
    assert not torch.allclose(params[0].grad, want[0], **TOL)


def test_cached_step_lets_the_representations_go_before_the_replay():
    """Only the cached gradients outlive the cached step; the logged terms no longer hold the graph."""
    model = ddp_worker.build_tiny_model().eval()  # no dropout: the chunks must equal one forward
    batch = GroupCollator(model)(ddp_worker.EXAMPLES)
    loss_fn = build_loss(LossConfig(loss="infonce", flops_doc_weight=0.05, flops_query_weight=0.1), False)
    with torch.no_grad():
        want_q, want_d = model(query=batch["query"], docs=batch["docs"])
    seen: list[weakref.ref] = []

    def loss_of(q, d):
        seen.extend([weakref.ref(q), weakref.ref(d)])
        return {**loss_fn(LossInputs(q, d)), "q_mean": q.mean()}  # a logged term left attached to the graph

    q, d, terms = encode_and_score(model, batch["query"], batch["docs"], loss_of, mini_batch_size=3)
    torch.testing.assert_close(q, want_q, **TOL)  # chunks of 3 + 1 groups, written in place
    torch.testing.assert_close(d, want_d, **TOL)
    assert {"infonce", "flops_doc", "flops_query", "q_mean"} <= set(terms)
    assert [name for name, value in terms.items() if value.requires_grad] == ["loss"]
    del q, d
    assert len(seen) == 2 and all(ref() is None for ref in seen)  # the graph's leaves are gone
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_rows_trims_common_padding_and_rejects_bad_chunks():
    features = {
        "input_ids": torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]),
    }
    part = rows(features, 1, 3)
    assert part["input_ids"].tolist() == [[4, 5], [6, 0]]
    assert part["attention_mask"].tolist() == [[1, 1], [1, 0]]
    model = ddp_worker.build_tiny_model()
    batch = GroupCollator(model)(ddp_worker.EXAMPLES)
    with pytest.raises(ValueError, match="mini_batch_size must be >= 1"):
        encode_and_score(model, batch["query"], batch["docs"], lambda q, d: {"loss": q.sum()}, 0)
