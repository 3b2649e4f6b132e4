"""Faults: OpenSearch unreachable, failing mid-search or killed mid-ingest; NaN losses; TLS verification.

Server faults are injected by the loopback proxy in ``tests/faultproxy.py`` in front of the
session's OpenSearch-compatible test server.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from opensearchpy import OpenSearch

from sparse_tune.cli.__main__ import main
from sparse_tune.index.opensearch import OpenSearchBackend, OpenSearchLostError
from sparse_tune.index.opensearch_mappings import SPARSE_FIELD, decode_feature
from sparse_tune.types import Encoded
from tests.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_beir"
FAST = {"progress": False, "initial_backoff": 0.01, "max_backoff": 0.02}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docs(n: int, vocab_size: int = 30, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    m = sp.random(n, vocab_size, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    m.data = (m.data * 3 + 0.5).astype(np.float32)
    return Encoded([f"doc-{i}" for i in range(n)], m, "sparse", [f"tok{j}" for j in range(vocab_size)])


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("URL", "USER", "PASSWORD", "CA_CERTS"):
        monkeypatch.delenv(f"SPARSE_TUNE_OPENSEARCH_{var}", raising=False)


# -- unreachable at start ---------------------------------------------------------------------------


def test_evaluate_with_unreachable_opensearch_is_one_line_without_the_password(capsys):
    port = _closed_port()
    rc = main(
        [
            "evaluate",
            "--model",
            "splade-tiny",
            "--dataset",
            str(TINY),
            "--backend",
            "opensearch",
            "--opensearch-url",
            f"http://user:secret@127.0.0.1:{port}",
            "--output",
            "unused",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"sparse-tune evaluate: error: cannot reach OpenSearch at http://***@127.0.0.1:{port}: "
    )
    assert "secret" not in err and "user" not in err.replace("_USER", "")
    assert "SPARSE_TUNE_OPENSEARCH_URL" in err


@pytest.mark.parametrize("verb", ["evaluate", "mine"])
def test_tls_verification_is_off_only_with_insecure_and_warns(verb, capsys, caplog, tmp_path):
    port = _closed_port()
    common = [
        "--dataset",
        str(TINY),
        "--backend",
        "opensearch",
        "--opensearch-url",
        f"https://127.0.0.1:{port}",
    ]
    args = (
        ["evaluate", "--model", "splade-tiny", "--output", str(tmp_path / "ev"), *common]
        if verb == "evaluate"
        else ["mine", "--split", "test", "--output", str(tmp_path / "mined.jsonl"), *common]
    )
    with caplog.at_level(logging.WARNING):
        assert main(args) == 2  # unreachable either way
    assert not any("verification is DISABLED" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--insecure"]) == 2
    warnings = [r.getMessage() for r in caplog.records if "verification is DISABLED" in r.getMessage()]
    assert warnings == [
        f"TLS certificate verification is DISABLED for https://127.0.0.1:{port} (verify_certs=False); "
        "use SPARSE_TUNE_OPENSEARCH_CA_CERTS to trust a private CA instead"
    ]
    assert capsys.readouterr().err.count("cannot reach OpenSearch") == 2


# -- lost mid-search ----------------------------------------------------------------------------------


@pytest.mark.opensearch
def test_msearch_retries_429_503_and_dropped_connections(opensearch_url, fresh_index):
    docs = _docs(40)
    queries = Encoded([f"q{i}" for i in range(12)], _docs(12, seed=1).matrix, "sparse", docs.vocab)
    direct = OpenSearchBackend(url=opensearch_url, **FAST)
    direct.create(fresh_index, "sparse")
    direct.add(fresh_index, docs)
    direct.finalize(fresh_index)
    expected = direct.search(fresh_index, queries, top_k=5)
    script = ["429", "drop", "503", "drop_after", "pass", "503", "429", "pass", "drop"]
    with FaultProxy(opensearch_url, faults={"/_msearch": script}) as proxy:
        b = OpenSearchBackend(url=proxy.url, msearch_chunk=4, max_retries=4, **FAST)
        got = {}
        for start in (0, 4, 8):  # one search call per 4 queries, as evaluate's batches do
            chunk = Encoded(
                queries.ids[start : start + 4], queries.matrix[start : start + 4], "sparse", queries.vocab
            )
            got.update(b.search(fresh_index, chunk, top_k=5))
    assert proxy.injected == {"429": 2, "503": 2, "drop": 2, "drop_after": 1}
    assert got.keys() == expected.keys()
    for qid in expected:
        assert got[qid] == pytest.approx(expected[qid])
    assert all(got[q] for q in got)


@pytest.mark.opensearch
def test_msearch_gives_up_after_the_retries_with_a_clear_error(opensearch_url, fresh_index):
    direct = OpenSearchBackend(url=opensearch_url, **FAST)
    direct.create(fresh_index, "sparse")
    direct.add(fresh_index, _docs(5))
    direct.finalize(fresh_index)
    with FaultProxy(
        opensearch_url, rule=lambda m, p, n: "503" if p.startswith("/_msearch") else "pass"
    ) as proxy:
        b = OpenSearchBackend(url=proxy.url, max_retries=2, **FAST)
        with pytest.raises(OpenSearchLostError) as info:
            b.search(fresh_index, _docs(2, seed=3), top_k=3)
    assert str(info.value) == (
        f"gave up on OpenSearch at {proxy.url} during search (HTTP 503, after 2 retries): "
        f"index '{fresh_index}' is complete (5 documents) and kept; a re-run reuses it without indexing again"
    )
    assert info.value.__cause__.status_code == 503
    assert proxy.injected["503"] == 3  # first try + 2 retries


# -- lost mid-run, through the CLI: one line, exit code 2, and what a re-run does -----------------------


class _Cut:
    """Proxy rule: the server "dies" at the ``after + 1``-th request to ``prefix``: every request from then on
    is dropped unanswered."""

    def __init__(self, prefix: str, after: int) -> None:
        self.prefix, self.after, self.seen, self.cut = prefix, after, 0, False

    def __call__(self, method: str, path: str, n: int) -> str:
        if not self.cut and path.startswith(self.prefix):
            self.seen += 1
            self.cut = self.seen > self.after
        return "drop" if self.cut else "pass"


def _fast_cli_backend(monkeypatch, **options) -> None:
    """The verbs build their backend through ``sparse_tune.index.get_backend``: quick retries, small chunks."""
    import sparse_tune.index as index_pkg

    real = index_pkg.get_backend
    monkeypatch.setattr(
        index_pkg, "get_backend", lambda name, **o: real(name, **{**o, **FAST, "max_retries": 2, **options})
    )


def _one_error_line(err: str, verb: str) -> str:
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith(f"sparse-tune {verb}: error:")]
    assert err.rstrip("\n").endswith(line)  # the last thing printed
    return line


def _requests(proxy: FaultProxy, method: str, prefix: str) -> int:
    return sum(1 for m, p, _ in proxy.requests if m == method and p.startswith(prefix))


def _evaluate_args(output: Path) -> list[str]:
    return ["evaluate", "--model", "splade-tiny", "--dataset", str(TINY), "--backend", "opensearch",
            "--output", str(output), "--no-plot"]  # fmt: skip


#: The start of the one line (the server dropped every connection after the cut; 2 retries in these tests).
_LOST = r"sparse-tune {verb}: error: gave up on OpenSearch at {url} during {stage} " + re.escape(
    "(Remote end closed connection without response, after 2 retries): "
)


@pytest.mark.opensearch
def test_evaluate_losing_opensearch_mid_ingest_is_one_line_and_the_rerun_rebuilds(
    opensearch_url, tmp_path, capsys, monkeypatch
):
    _fast_cli_backend(monkeypatch, bulk_chunk_size=2)  # 5 documents: 3 bulk requests
    args = _evaluate_args(tmp_path / "ev")
    with FaultProxy(opensearch_url, rule=_Cut("/_bulk", after=1)) as proxy:
        capsys.readouterr()
        rc = main([*args, "--opensearch-url", proxy.url, "--reindex"])
    line = _one_error_line(capsys.readouterr().err, "evaluate")
    assert rc == 2
    m = re.fullmatch(
        _LOST.format(verb="evaluate", url=proxy.url, stage="ingest")
        + r"2 of 5 documents indexed; index '(sparse-tune-[0-9a-f]{16})' kept but incomplete, "
        r"so a re-run rebuilds it \(only a complete index is reused\)",
        line,
    )
    assert m, line
    index = m.group(1)
    raw = OpenSearch(hosts=[opensearch_url])
    raw.indices.refresh(index=index)
    assert raw.count(index=index)["count"] == 2  # kept, as said
    direct = OpenSearchBackend(url=opensearch_url, **FAST)
    assert not direct.exists(index)
    assert main([*args, "--opensearch-url", opensearch_url]) == 0  # the re-run rebuilds it
    assert direct.exists(index) and direct.stats(index)["doc_count"] == 5


@pytest.mark.opensearch
def test_evaluate_losing_opensearch_mid_search_is_one_line_and_the_rerun_reuses_the_index(
    opensearch_url, tmp_path, capsys, monkeypatch
):
    _fast_cli_backend(monkeypatch)
    args = _evaluate_args(tmp_path / "ev")
    with FaultProxy(opensearch_url, rule=_Cut("/_msearch", after=1)) as proxy:  # 3 queries, one per request
        capsys.readouterr()
        rc = main([*args, "--opensearch-url", proxy.url, "--reindex"])
    line = _one_error_line(capsys.readouterr().err, "evaluate")
    assert rc == 2
    m = re.fullmatch(
        _LOST.format(verb="evaluate", url=proxy.url, stage="search")
        + r"index '(sparse-tune-[0-9a-f]{16})' is complete \(5 documents\) and kept; "
        r"a re-run reuses it without indexing again",
        line,
    )
    assert m, line
    assert _requests(proxy, "POST", "/_msearch") == 1 + 3  # one answered, then the first try and 2 retries
    with FaultProxy(opensearch_url) as healthy:
        assert main([*args, "--opensearch-url", healthy.url]) == 0
    assert _requests(healthy, "POST", "/_bulk") == 0 and _requests(healthy, "PUT", f"/{m.group(1)}") == 0
    assert _requests(healthy, "POST", "/_msearch") == 3
    assert json.loads((tmp_path / "ev" / "results.json").read_text())


@pytest.mark.opensearch
@pytest.mark.parametrize("stage", ["ingest", "search"])
def test_mine_losing_opensearch_mid_run_is_one_line_and_the_rerun_reuses_a_complete_index(
    stage, opensearch_url, fresh_index, tmp_path, capsys, monkeypatch
):
    _fast_cli_backend(monkeypatch, bulk_chunk_size=100, msearch_chunk=16)  # 466 documents, 40 queries
    out = tmp_path / "mined.jsonl"
    args = ["mine", "--dataset", str(ROOT / "examples" / "scifact-mini"), "--backend", "opensearch",
            "--index", fresh_index, "--negatives", "2", "--output", str(out)]  # fmt: skip
    cut = _Cut("/_bulk", after=2) if stage == "ingest" else _Cut("/_msearch", after=1)
    with FaultProxy(opensearch_url, rule=cut) as proxy:
        capsys.readouterr()
        rc = main([*args, "--opensearch-url", proxy.url])
    line = _one_error_line(capsys.readouterr().err, "mine")
    assert rc == 2 and not out.exists()
    if stage == "ingest":
        kept = (
            f"200 of 466 documents indexed; index '{fresh_index}' kept but incomplete, so a re-run rebuilds it "
            "(only a complete index is reused)"
        )
    else:
        kept = f"index '{fresh_index}' is complete (466 documents) and kept; a re-run reuses it without indexing again"
    assert re.fullmatch(_LOST.format(verb="mine", url=proxy.url, stage=stage) + re.escape(kept), line), line
    with FaultProxy(opensearch_url) as healthy:
        assert main([*args, "--opensearch-url", healthy.url]) == 0
    assert _requests(healthy, "POST", "/_bulk") == (5 if stage == "ingest" else 0)
    assert len(out.read_text().splitlines()) == 40


# -- killed mid-ingest, then re-run -------------------------------------------------------------------

# Ingest 60 documents in chunks of 10 and SIGKILL this very process when the 4th chunk is sent:
# three chunks were acknowledged, the rest never reached the server.
_KILLER = """
import os, signal, sys, pickle
import numpy as np, scipy.sparse as sp
from sparse_tune.index import opensearch_bulk
from sparse_tune.index.opensearch import OpenSearchBackend, OpenSearchLostError
from tests.test_reliability_faults import _docs
real = opensearch_bulk.helpers.streaming_bulk
calls = [0]
def bulk(*a, **k):
    calls[0] += 1
    if calls[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
opensearch_bulk.helpers.streaming_bulk = bulk
b = OpenSearchBackend(url=sys.argv[1], progress=False, bulk_chunk_size=10)
b.create(sys.argv[2], "sparse")
b.add(sys.argv[2], _docs(60))
b.finalize(sys.argv[2])
"""


@pytest.mark.opensearch
def test_ingest_killed_midway_then_rerun_has_every_document_once(opensearch_url, fresh_index):
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, opensearch_url, fresh_index],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    raw = OpenSearch(hosts=[opensearch_url])
    raw.indices.refresh(index=fresh_index)
    assert raw.count(index=fresh_index)["count"] == 30  # what was acknowledged before the kill

    docs = _docs(60)
    b = OpenSearchBackend(url=opensearch_url, bulk_chunk_size=10, **FAST)
    assert not b.exists(fresh_index)  # no "complete" marker: a later run never trusts it
    # The re-run goes through a flaky connection too: resent chunks must not duplicate documents.
    with FaultProxy(opensearch_url, faults={"/_bulk": ["drop_after", "pass", "429", "drop_after"]}) as proxy:
        flaky = OpenSearchBackend(url=proxy.url, bulk_chunk_size=10, max_retries=4, **FAST)
        flaky.add(fresh_index, docs)
        flaky.finalize(fresh_index)
    assert proxy.injected["drop_after"] == 2
    assert b.exists(fresh_index)
    raw.indices.refresh(index=fresh_index)
    assert raw.count(index=fresh_index)["count"] == 60
    hits = raw.search(index=fresh_index, body={"size": 200, "_source": False})["hits"]["hits"]
    ids = [h["_id"] for h in hits]
    assert len(ids) == len(set(ids)) == 60 and set(ids) == set(docs.ids)
    for row in (0, 29, 30, 59):  # spot check: acknowledged before the kill, and sent after it
        src = raw.get(index=fresh_index, id=docs.ids[row])["_source"][SPARSE_FIELD]
        lo, hi = docs.matrix.indptr[row], docs.matrix.indptr[row + 1]
        want = {
            docs.vocab[j]: float(w)
            for j, w in zip(docs.matrix.indices[lo:hi], docs.matrix.data[lo:hi], strict=True)
        }
        got = {decode_feature(k): v for k, v in src.items()}
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k], rel=1e-2) for k in want)


# -- NaN / inf in a loss -------------------------------------------------------------------------------


def test_nan_loss_stops_with_term_and_step_after_saving(tmp_path, capsys, monkeypatch):
    import torch

    import sparse_tune.training.run as run_module

    real_build = run_module.build_loss

    def build_loss(*args, **kwargs):
        loss = real_build(*args, **kwargs)
        forward = loss.forward

        def poisoned(batch):
            terms = forward(batch)
            if batch.step == 2:  # the third step: two good optimiser steps first
                terms["flops_doc"] = terms["flops_doc"] * float("nan")
                terms["loss"] = terms["loss"] + terms["flops_doc"]
            return terms

        loss.forward = poisoned
        return loss

    monkeypatch.setattr(run_module, "build_loss", build_loss)
    train_file = tmp_path / "train.jsonl"
    rows = [{"query": f"q{i} heart", "pos": [f"heart text {i}"], "neg": ["cats", "rain"]} for i in range(6)]
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "max_steps: 5\nper_device_train_batch_size: 2\ndocs_per_query: 3\nmax_doc_length: 32\n"
        "max_query_length: 16\nsave_steps: 100\ndataloader_num_workers: 0\ndisable_tqdm: true\n"
        "flops_doc_weight: 0.001\nlearning_rate: 1.0e-4\n"
    )
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["train", str(recipe), "--train_file", str(train_file), "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    saved = out / "nonfinite-step-2"
    assert errors == [
        f"sparse-tune train: error: loss term 'flops_doc' is nan at step 2; the model before this step was saved "
        f"to {saved}. Lower the learning rate or FLOPS weights, or check the data."
    ]
    assert err.rstrip("\n").endswith(errors[0])  # the last thing printed
    from sparse_tune.models.io import load_model

    model = load_model(str(saved))  # a usable model folder
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (out / "model.safetensors").exists()
