"""Inference under torchrun: two gloo ranks give what one process gives.

``evaluate``, ``encode``, ``mine --method model`` and ``score`` run through the real CLI, once
under ``torch.distributed.run --nproc_per_node=2`` (``tests/shard_worker.py``) and once in this
process, on 48 documents and 8 + 8 queries cut from the scifact sample. Each rank encodes every second length-sorted piece
of the corpus and rank 0 gathers them, so every batch is computed as the single process computes
it: metrics are compared exactly, vectors and teacher scores within 1e-6 (they are equal bit
for bit on one machine, the tolerance only guards against a kernel that depends on the thread).
Also here, without torchrun: the resumable encode reuses finished pieces, and evaluating
several checkpoints reads the corpus and builds the BM25 index once.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparse_tune.cli.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "scifact-mini"
TOL = dict(rtol=1e-6, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(commands: list[list[str]], tmp: Path, nproc: int = 2, ok: bool = True) -> str:
    """Run ``commands`` (sparse-tune argument lists) under torchrun with ``nproc`` gloo ranks; the log.

    ``ok=False``: the run must fail (non-zero exit), and within the timeout rather than hang.
    """
    spec = tmp / "commands.json"
    spec.write_text(json.dumps(commands), encoding="utf-8")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        str(ROOT / "tests" / "shard_worker.py"), str(spec),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert (proc.returncode == 0) == ok, proc.stderr[-4000:]
    return proc.stderr


def small_beir(folder: Path, n_queries: int = 8, n_docs: int = 48) -> Path:
    """A BEIR folder cut from the scifact sample: the first queries of each split, their positives, filler documents."""
    from sparse_tune.data.beir import load_corpus_any

    corpus = load_corpus_any(SAMPLE)
    keep_q: set[str] = set()
    keep_d: list[str] = []
    (folder / "qrels").mkdir(parents=True)
    for split in ("test", "train"):
        lines = (SAMPLE / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        rows = [line.split("\t") for line in lines[1:]]
        qids = list(dict.fromkeys(q for q, _, _ in rows))[:n_queries]
        kept = [r for r in rows if r[0] in qids]
        keep_q.update(qids)
        keep_d.extend(d for _, d, _ in kept)
        (folder / "qrels" / f"{split}.tsv").write_text(
            "\n".join([lines[0], *("\t".join(r) for r in kept)]) + "\n", encoding="utf-8"
        )
    docs = list(dict.fromkeys([*keep_d, *corpus.ids]))[:n_docs]
    raw = {
        json.loads(line)["_id"]: line
        for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    }
    (folder / "corpus.jsonl").write_text("\n".join(raw[d] for d in docs) + "\n", encoding="utf-8")
    queries = [
        line for line in (SAMPLE / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line)["_id"] in keep_q
    ]  # fmt: skip
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    return folder


def commands(data: Path, mined: Path, out: Path) -> list[list[str]]:
    """The four verbs: small batches, so that each rank gets several pieces."""
    return [
        ["evaluate", "--model", "splade-tiny", "--dataset", str(data), "--output", str(out / "eval"),
         "--batch-size", "4", "--no-plot"],
        ["encode", "--model", "splade-tiny", "--dataset", str(data), "--output", str(out / "corpus.npz"),
         "--batch-size", "4"],
        ["mine", "--dataset", str(data), "--split", "train", "--method", "model", "--model", "splade-tiny",
         "--batch-size", "4", "--negatives", "4", "--output", str(out / "mined.jsonl")],
        ["score", "--input", str(mined), "--output", str(out / "scored.jsonl"),
         "--teacher", "sparse:splade-tiny", "--queries-per-batch", "2", "--batch-size", "8"],
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    data = small_beir(tmp_path_factory.mktemp("data") / "small")
    mined = data.parent / "bm25.jsonl"  # BM25 negatives for score: cheap, and not what is under test
    assert (
        main(["mine", "--dataset", str(data), "--split", "train", "--negatives", "3", "--output", str(mined)])
        == 0
    )
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    for argv in commands(data, mined, one):
        assert main(argv) == 0, argv
    log = torchrun(commands(data, mined, two), two)
    return {"one": one, "two": two, "log": log}


def _rows(folder: Path, sub: str = "eval") -> list[dict]:
    return list(json.loads((folder / sub / "results.json").read_text(encoding="utf-8")).values())


@pytest.mark.ddp
def test_evaluate_metrics_equal_one_process_exactly(runs):
    one, two = _rows(runs["one"]), _rows(runs["two"])
    assert len(one) == len(two) == 1
    timing = {"encode_seconds", "latency_p50_ms", "latency_p95_ms", "index_size_bytes"}
    want = {k: v for k, v in one[0].items() if k not in timing}
    got = {k: v for k, v in two[0].items() if k not in timing}
    assert got == want  # nDCG@10 and every other metric to the last digit
    assert want["num_docs"] == 48 and want["nDCG@10"] > 0


@pytest.mark.ddp
def test_encoded_vectors_equal_one_process(runs):
    from sparse_tune.models.encoded_file import load_encoded

    one, two = load_encoded(runs["one"] / "corpus.npz"), load_encoded(runs["two"] / "corpus.npz")
    assert two.ids == one.ids and len(one.ids) == 48
    assert (two.matrix != one.matrix).nnz == 0 or np.allclose(
        two.matrix.toarray(), one.matrix.toarray(), **TOL
    )
    assert np.array_equal(two.matrix.indptr, one.matrix.indptr)  # the same non-zeros per document
    np.testing.assert_allclose(two.matrix.toarray(), one.matrix.toarray(), **TOL)
    assert not any(runs["two"].glob(".corpus.npz.pieces"))  # resume pieces removed after the write


@pytest.mark.ddp
def test_mined_and_scored_files_equal_one_process(runs):
    one = (runs["one"] / "mined.jsonl").read_text(encoding="utf-8")
    assert (runs["two"] / "mined.jsonl").read_text(encoding="utf-8") == one and one.count("\n") == 8
    read = lambda p: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]  # noqa: E731
    want, got = read(runs["one"] / "scored.jsonl"), read(runs["two"] / "scored.jsonl")
    assert [(r["query"], r["docs"]) for r in got] == [(r["query"], r["docs"]) for r in want] and len(
        want
    ) >= 8
    np.testing.assert_allclose(
        [s for r in got for s in r["scores"]], [s for r in want for s in r["scores"]], **TOL
    )


@pytest.mark.ddp
def test_log_names_world_size_and_each_rank_shard(runs):
    log = runs["log"]
    assert (
        "encode documents: world size 2; rank 0 encodes pieces 0, 2, ..., 10 (stride 2) (6 of 12 pieces"
        in log
    )
    assert (
        "encode documents: world size 2; rank 1 encodes pieces 1, 3, ..., 11 (stride 2) (6 of 12 pieces"
        in log
    )


def _sample_texts(n: int) -> tuple[list[str], list[str]]:
    from sparse_tune.data.beir import load_corpus_any

    corpus = load_corpus_any(SAMPLE)
    return corpus.ids[:n], corpus.texts[:n]


def test_finished_pieces_are_reused_and_the_result_equals_a_clean_run(splade_tiny, tmp_path, monkeypatch):
    """A run killed after two of five pieces resumes: those two are loaded, not encoded again."""
    from sparse_tune.models.inference import encode_texts
    from sparse_tune.models.sharded_encode import encode_sharded, piece_plan

    ids, texts = _sample_texts(40)
    clean = encode_texts(splade_tiny, ids, texts, "document", batch_size=4, progress=False)
    assert [len(p) for p in piece_plan(10, max_pieces=5)] == [2, 2, 2, 2, 2]  # 10 batches of 4 -> 5 pieces
    kwargs = dict(batch_size=4, progress=False, model_key="splade-tiny", resume_dir=tmp_path, max_pieces=5)
    encode_sharded(splade_tiny, ids, texts, "document", **kwargs)  # writes every piece
    (folder,) = tmp_path.iterdir()
    files = sorted(folder.glob("*.npz"))
    assert [f.name for f in files] == [f"{p:06d}.npz" for p in range(5)]
    for f in files[2:]:
        f.unlink()  # "killed" after pieces 0 and 1

    encoded_rows: list[int] = []
    real = splade_tiny.encode_document

    def counting(features):
        encoded_rows.append(int(features["input_ids"].shape[0]))
        return real(features)

    monkeypatch.setattr(splade_tiny, "encode_document", counting)
    resumed = encode_sharded(splade_tiny, ids, texts, "document", **kwargs).full
    assert sum(encoded_rows) == 40 - 16 and len(encoded_rows) == 6  # pieces 2-4 only: 6 batches of 4
    assert resumed.ids == clean.ids
    np.testing.assert_allclose(resumed.matrix.toarray(), clean.matrix.toarray(), **TOL)
    assert (resumed.matrix != clean.matrix).nnz == 0  # bit for bit: the same batches in one process

    encoded_rows.clear()  # another corpus never picks up these pieces: its fingerprint differs
    encode_sharded(splade_tiny, ids[:39], texts[:39], "document", **kwargs)
    assert sum(encoded_rows) == 39


def test_a_damaged_piece_is_encoded_again(splade_tiny, tmp_path, caplog):
    from sparse_tune.models.sharded_encode import encode_sharded

    ids, texts = _sample_texts(8)
    kwargs = dict(batch_size=4, progress=False, model_key="splade-tiny", resume_dir=tmp_path)
    first = encode_sharded(splade_tiny, ids, texts, "document", **kwargs).full
    (piece, *_) = sorted(next(tmp_path.iterdir()).glob("*.npz"))
    piece.write_bytes(b"not a zip")
    again = encode_sharded(splade_tiny, ids, texts, "document", **kwargs).full
    assert "ignoring unreadable piece" in caplog.text
    assert (again.matrix != first.matrix).nnz == 0


def test_resume_dir_needs_a_model_key(splade_tiny, tmp_path):
    from sparse_tune.models.sharded_encode import encode_sharded

    with pytest.raises(ValueError, match="resume_dir needs a model_key"):
        encode_sharded(splade_tiny, ["a"], ["text"], "document", resume_dir=tmp_path)


def test_evaluate_over_checkpoints_reads_the_corpus_and_builds_bm25_once(splade_tiny, tmp_path, monkeypatch):
    """Two checkpoints and BM25: one corpus parse, one BM25 index, one index per checkpoint."""
    import sparse_tune.data.beir as beir
    from sparse_tune.index.embedded import EmbeddedBackend

    for name in ("ckpt-a", "ckpt-b"):
        splade_tiny.save_pretrained(tmp_path / name)
    reads, creates = [], []
    real_read, real_create = beir.read_corpus_jsonl, EmbeddedBackend.create
    monkeypatch.setattr(beir, "read_corpus_jsonl", lambda *a, **k: reads.append(a) or real_read(*a, **k))

    def create(self, index, kind, dim=None, with_text=False, fingerprint=None):
        creates.append(with_text)
        return real_create(self, index, kind, dim=dim, with_text=with_text, fingerprint=fingerprint)

    monkeypatch.setattr(EmbeddedBackend, "create", create)
    tiny = ROOT / "tests" / "data" / "tiny_beir"
    argv = ["evaluate", "--model", str(tmp_path / "ckpt-a"), str(tmp_path / "ckpt-b"), "--bm25",
            "--dataset", str(tiny), "--output", str(tmp_path / "eval"), "--no-plot", "--no-cache"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text(encoding="utf-8"))
    assert len(rows) == 3 and len(reads) == 1
    assert sorted(creates) == [False, False, True]  # one vector index per checkpoint, one BM25 index


@pytest.mark.ddp
def test_opensearch_ranks_index_their_own_shards_and_the_index_is_reused(
    opensearch_url, tmp_path, monkeypatch, caplog
):
    """Two ranks bulk-index 3 + 2 documents into one index; one process then reuses it by fingerprint."""
    import logging

    for var in ("URL", "USER", "PASSWORD", "CA_CERTS"):
        monkeypatch.delenv(f"SPARSE_TUNE_OPENSEARCH_{var}", raising=False)
    tiny = ROOT / "tests" / "data" / "tiny_beir"
    base = ["evaluate", "--model", "splade-tiny", "--dataset", str(tiny), "--batch-size", "1", "--no-plot",
            "--no-cache", "--backend", "opensearch", "--opensearch-url", opensearch_url]  # fmt: skip
    log = torchrun([[*base, "--output", str(tmp_path / "two"), "--reindex"]], tmp_path)
    assert "rank 0 bulk-indexes its 3 documents into sparse-tune-" in log
    assert "rank 1 bulk-indexes its 2 documents into sparse-tune-" in log

    caplog.set_level(logging.INFO)
    assert main([*base, "--output", str(tmp_path / "reused")]) == 0
    assert "indexing" not in caplog.text and "bulk-indexes" not in caplog.text  # complete: reused as is
    assert main([*base, "--output", str(tmp_path / "rebuilt"), "--reindex"]) == 0
    assert "indexing 5 documents into sparse-tune-" in caplog.text
    timing = {"encode_seconds", "latency_p50_ms", "latency_p95_ms", "index_size_bytes"}
    rows = {
        run: {k: v for k, v in _rows(tmp_path / run, "")[0].items() if k not in timing}
        for run in ("two", "reused", "rebuilt")
    }  # fmt: skip
    assert rows["two"] == rows["reused"] == rows["rebuilt"] and rows["two"]["num_docs"] == 5

    # The same name held by an index sparse_tune did not create: rank 0 refuses it, and rank 1 stops on
    # its own, saying why (torchrun's agent would kill it; a launcher that does not, such as srun,
    # would leave it waiting for rank 0's answer until the collective times out, 30 minutes).
    from opensearchpy import OpenSearch

    [index] = set(re.findall(r"rank 0 bulk-indexes its 3 documents into (sparse-tune-\S+)", log))
    client = OpenSearch(opensearch_url)
    client.indices.delete(index=index)
    client.indices.create(index=index, body={"mappings": {"properties": {"text": {"type": "text"}}}})
    failed = torchrun([[*base, "--output", str(tmp_path / "foreign")]], tmp_path, ok=False)
    assert f"index '{index}' on {opensearch_url} exists and was not created by sparse-tune" in failed
    assert "rank 0 stopped with an error (in its log); rank 1 stops too" in failed
    assert client.indices.get_mapping(index=index)[index]["mappings"] == {
        "properties": {"text": {"type": "text"}}
    }  # untouched
