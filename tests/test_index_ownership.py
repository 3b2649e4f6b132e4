"""Indices are ours only if marked: a hand-made index is never changed without --overwrite-index.

Each verb that builds OpenSearch indices (``mine``, ``evaluate`` and its ``--bm25``, the
distillation pipeline's mining) is pointed at an index created here with opensearch-py, with a
mapping and documents of its own, under the name the user gave or the one the verb generates.
The verb must exit 2 with one line and leave the index as it was: mapping, settings (uuid and
creation date included, so even a delete and identical re-creation would show) and documents.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main
from sparse_tune.index.fingerprint import IndexNameError, check_index_name
from sparse_tune.index.opensearch_mappings import META_KEY
from sparse_tune.index.ownership import ForeignIndexError, replacement_note

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_beir"
FOREIGN_BODY = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {
        "_meta": {"owner": "crm"},
        "properties": {"name": {"type": "text"}, "age": {"type": "integer"}},
    },
}
FOREIGN_DOCS = {
    "c1": {"name": "Ada", "age": 36},
    "c2": {"name": "Alan", "age": 41},
    "c3": {"name": "Grace", "age": 85},
}
OVERWRITE_HINT = "--overwrite-index"


# -- the rules, without a server ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Bad Name", "must be lowercase and must not contain whitespace or any of"),
        ("a:b", "(found ':')"),
        ("a,b*c", "(found ',', '*')"),
        ("-x", "must not start with '-', '_' or '+'"),
        ("_x", "must not start with '-', '_' or '+'"),
        ("..", "must not be empty, '.' or '..'"),
        ("", "must not be empty, '.' or '..'"),
        ("x" * 256, "must be at most 255 bytes (got 256)"),
    ],
)
def test_invalid_index_names_are_one_line_with_a_suggestion(name, fragment):
    with pytest.raises(IndexNameError) as exc:
        check_index_name(name)
    message = str(exc.value)
    assert "\n" not in message and fragment in message and message.startswith(f"invalid index name {name!r}")
    assert check_index_name("bad-name") == "bad-name" and check_index_name(".hidden.ok") == ".hidden.ok"


def test_bad_name_suggestion_is_valid():
    with pytest.raises(IndexNameError, match=r"e\.g\. 'bad-name'$"):
        check_index_name("Bad Name")


def test_replacement_note_says_why_or_refuses():
    ours = {META_KEY: {"created_by": "sparse_tune", "fingerprint": "aaaa", "complete": True}}
    assert replacement_note("x", ours, "bbbb", False, "url") == (
        "rebuilding index 'x': it was built by sparse-tune from other data or settings (fingerprint aaaa, now bbbb)"
    )
    legacy = {META_KEY: {"complete": True, "kind": "sparse"}}  # built before the fingerprint was recorded
    assert "no fingerprint recorded (an older sparse-tune), now bbbb" in replacement_note(
        "x", legacy, "bbbb", False, "u"
    )
    unfinished = {META_KEY: {"fingerprint": "bbbb", "complete": False}}
    assert replacement_note("x", unfinished, "bbbb", False, "u").endswith(
        "an earlier ingest into it did not finish"
    )
    for foreign in ({}, {"owner": "crm"}, {META_KEY: "not a mapping"}):
        with pytest.raises(
            ForeignIndexError, match=r"^index 'x' on u exists and was not created by sparse-tune"
        ):
            replacement_note("x", foreign, "bbbb", False, "u")
        assert replacement_note("x", foreign, "bbbb", True, "u") == (
            "replacing index 'x', which sparse-tune did not create (--overwrite-index)"
        )


# -- against the test server ----------------------------------------------------------------------


@pytest.fixture
def client(opensearch_url):
    from opensearchpy import OpenSearch

    c = OpenSearch(opensearch_url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("URL", "USER", "PASSWORD", "CA_CERTS"):
        monkeypatch.delenv(f"SPARSE_TUNE_OPENSEARCH_{var}", raising=False)


@pytest.fixture
def foreign(client) -> Iterator:
    """``make(name)`` replaces whatever is at ``name`` by a hand-made index; all are removed afterwards
    (the session server is shared, and a foreign index under a generated name would stop other tests)."""
    made: list[str] = []

    def make(name: str) -> str:
        client.indices.delete(index=name, ignore=[404])
        client.indices.create(index=name, body=FOREIGN_BODY)
        for doc_id, doc in FOREIGN_DOCS.items():
            client.index(index=name, id=doc_id, body=doc)
        client.indices.refresh(index=name)
        made.append(name)
        return name

    yield make
    for name in made:
        client.indices.delete(index=name, ignore=[404])


def snapshot(client, index: str) -> str:
    """Mapping, settings and every document (sorted by id) as one JSON text: equal means untouched."""
    hits = client.search(
        index=index, body={"query": {"match_all": {}}, "sort": [{"_id": "asc"}], "size": 100}
    )
    docs = [(h["_id"], h["_source"]) for h in hits["hits"]["hits"]]
    state = {
        "mapping": client.indices.get_mapping(index=index),
        "settings": client.indices.get_settings(index=index),
        "docs": docs,
    }
    return json.dumps(state, sort_keys=True)


def _one_error_line(err: str, verb: str) -> str:
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith(f"sparse-tune {verb}: error:")]
    assert err.rstrip("\n").endswith(line)
    return line


def _refused(line: str, verb: str, index: str, url: str) -> None:
    assert line.startswith(
        f"sparse-tune {verb}: error: index '{index}' on {url} exists and was not created by sparse-tune"
    ), line
    assert "left untouched" in line and OVERWRITE_HINT in line


def _tiny_bm25_index() -> str:
    from sparse_tune.data.beir import load_beir
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.mining.beir import default_index_name

    corpus = load_beir(TINY, "test")[0]
    return default_index_name(str(TINY), "bm25", None, fingerprint_texts(corpus.ids, corpus.texts))


def _mine(tmp_path: Path, url: str, *extra: str) -> list[str]:
    return ["mine", "--dataset", str(TINY), "--split", "test", "--negatives", "1", "--range", "1-5",
            "--backend", "opensearch", "--opensearch-url", url, "--output", str(tmp_path / "m.jsonl"), *extra]  # fmt: skip


@pytest.mark.opensearch
def test_mine_refuses_a_foreign_index_by_name_and_replaces_it_only_when_told(
    opensearch_url, client, foreign, fresh_index, tmp_path, capsys, caplog
):
    index = foreign(fresh_index)
    before = snapshot(client, index)
    capsys.readouterr()
    assert main(_mine(tmp_path, opensearch_url, "--index", index)) == 2
    _refused(_one_error_line(capsys.readouterr().err, "mine"), "mine", index, opensearch_url)
    assert not (tmp_path / "m.jsonl").exists()
    assert (
        main(_mine(tmp_path, opensearch_url, "--index", index, "--reindex")) == 2
    )  # --reindex is not enough
    assert snapshot(client, index) == before

    with caplog.at_level(logging.INFO):
        assert main(_mine(tmp_path, opensearch_url, "--index", index, "--overwrite-index")) == 0
    assert (
        f"replacing index '{index}', which sparse-tune did not create (--overwrite-index)" in caplog.messages
    )
    meta = client.indices.get_mapping(index=index)[index]["mappings"]["_meta"]
    assert list(meta) == [META_KEY] and meta[META_KEY]["created_by"] == "sparse_tune"
    assert meta[META_KEY]["complete"] is True and len(meta[META_KEY]["fingerprint"]) == 16
    assert client.count(index=index)["count"] == len((TINY / "corpus.jsonl").read_text().splitlines())
    assert client.exists(index=index, id="c1") is False  # the foreign documents went with their index

    # Now it is ours: the next run reuses it without the flag and without a rebuild.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(_mine(tmp_path, opensearch_url, "--index", index)) == 0
    assert not [m for m in caplog.messages if "rebuilding" in m or "replacing" in m]


@pytest.mark.opensearch
def test_the_real_cli_prints_exactly_one_line(opensearch_url, client, foreign, fresh_index, tmp_path):
    index = foreign(fresh_index)
    before = snapshot(client, index)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "sparse_tune.cli", *_mine(tmp_path, opensearch_url, "--index", index)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    _refused(proc.stderr.strip(), "mine", index, opensearch_url)
    assert snapshot(client, index) == before


@pytest.mark.opensearch
def test_mine_refuses_a_foreign_index_under_the_generated_name(
    opensearch_url, client, foreign, tmp_path, capsys
):
    index = foreign(_tiny_bm25_index())
    before = snapshot(client, index)
    capsys.readouterr()
    assert main(_mine(tmp_path, opensearch_url)) == 2
    _refused(_one_error_line(capsys.readouterr().err, "mine"), "mine", index, opensearch_url)
    assert snapshot(client, index) == before


@pytest.mark.opensearch
def test_mine_with_a_model_refuses_a_foreign_index_before_loading_the_model(
    opensearch_url, client, foreign, tmp_path, capsys, monkeypatch
):
    from sparse_tune.data.beir import load_beir
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.mining.beir import default_index_name

    corpus = load_beir(TINY, "test")[0]
    index = foreign(
        default_index_name(str(TINY), "model", "splade-tiny", fingerprint_texts(corpus.ids, corpus.texts))
    )
    before = snapshot(client, index)

    def no_load(name):
        raise AssertionError(f"model {name} loaded before the index check")

    monkeypatch.setattr("sparse_tune.models.io.load_model", no_load)
    capsys.readouterr()
    assert main(_mine(tmp_path, opensearch_url, "--method", "model", "--model", "splade-tiny")) == 2
    _refused(_one_error_line(capsys.readouterr().err, "mine"), "mine", index, opensearch_url)
    assert snapshot(client, index) == before


@pytest.mark.opensearch
def test_evaluate_bm25_refuses_a_foreign_index_under_its_generated_name(
    opensearch_url, client, foreign, tmp_path, capsys
):
    index = foreign(_tiny_bm25_index())
    before = snapshot(client, index)
    out = tmp_path / "eval"
    args = ["evaluate", "--bm25", "--dataset", str(TINY), "--backend", "opensearch",
            "--opensearch-url", opensearch_url, "--output", str(out), "--no-plot"]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 2
    _refused(_one_error_line(capsys.readouterr().err, "evaluate"), "evaluate", index, opensearch_url)
    assert snapshot(client, index) == before and not (out / "results.json").exists()
    assert main([*args, "--overwrite-index"]) == 0
    assert json.loads((out / "results.json").read_text())[f"bm25 on {TINY} (test, opensearch)"]["nDCG@10"] > 0


@pytest.mark.opensearch
def test_evaluate_refuses_a_foreign_index_under_the_model_index_name_before_encoding(
    opensearch_url, client, foreign, tmp_path, capsys, monkeypatch
):
    def evaluate(out: Path, *extra: str) -> int:
        return main(["evaluate", "--model", "splade-tiny", "--dataset", str(TINY), "--backend", "opensearch",
                     "--opensearch-url", opensearch_url, "--output", str(out), "--no-plot", *extra])  # fmt: skip

    # 1. The name evaluate generates for this model, corpus and settings: whatever it (re)builds.
    from sparse_tune.index.opensearch import OpenSearchBackend

    created: list[str] = []
    real_create = OpenSearchBackend.create
    with monkeypatch.context() as m:
        m.setattr(
            OpenSearchBackend,
            "create",
            lambda self, index, *a, **k: (created.append(index), real_create(self, index, *a, **k))[1],
        )
        assert evaluate(tmp_path / "first", "--reindex") == 0
    [generated] = created
    # 2. Someone else's index under that name: refused before the corpus is encoded.
    index = foreign(generated)
    before = snapshot(client, index)
    capsys.readouterr()
    out = tmp_path / "second"
    assert evaluate(out) == 2
    _refused(_one_error_line(capsys.readouterr().err, "evaluate"), "evaluate", index, opensearch_url)
    assert snapshot(client, index) == before
    assert not (out / "encoded").exists() and not (out / "results.json").exists()


@pytest.mark.opensearch
def test_distill_pipeline_refuses_a_foreign_index_and_overwrites_only_when_configured(
    opensearch_url, client, foreign, tmp_path, capsys, monkeypatch
):
    from sparse_tune.data.beir import load_beir
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.mining.beir import default_index_name
    from tests.test_pipeline import pipeline_config, write_beir, write_config

    monkeypatch.setenv("SPARSE_TUNE_OPENSEARCH_URL", opensearch_url)
    beir = write_beir(tmp_path / "beir")
    corpus = load_beir(beir, "train")[0]
    index = foreign(default_index_name(str(beir), "bm25", None, fingerprint_texts(corpus.ids, corpus.texts)))
    before = snapshot(client, index)
    mining = {"method": "bm25", "range": "2-20", "negatives": 2, "backend": "opensearch"}
    teachers = [{"name": "bm25", "type": "bm25", "weight": 1.0}]
    config = write_config(tmp_path, pipeline_config(tmp_path, mining=mining, teachers=teachers))
    capsys.readouterr()
    assert main(["distill-pipeline", str(config), "--only", "mine"]) == 2
    _refused(
        _one_error_line(capsys.readouterr().err, "distill-pipeline"),
        "distill-pipeline",
        index,
        opensearch_url,
    )
    assert snapshot(client, index) == before and not (tmp_path / "out" / "mined.jsonl").exists()

    # The flag, or the config key, replaces it; neither is a mining setting (the stage does not rerun for it).
    assert main(["distill-pipeline", str(config), "--only", "mine", "--overwrite-index"]) == 0
    assert (
        client.indices.get_mapping(index=index)[index]["mappings"]["_meta"][META_KEY]["created_by"]
        == "sparse_tune"
    )
    config = write_config(
        tmp_path, pipeline_config(tmp_path, mining={**mining, "overwrite_index": True}, teachers=teachers)
    )
    capsys.readouterr()
    assert main(["distill-pipeline", str(config), "--only", "mine"]) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.opensearch
def test_ours_with_another_fingerprint_is_rebuilt_with_one_log_line(
    opensearch_url, client, fresh_index, tmp_path, caplog
):
    from sparse_tune.mining.beir import mining_fingerprint

    other = tmp_path / "other"
    shutil.copytree(TINY, other)
    lines = (other / "corpus.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["text"] += " (edited)"
    (other / "corpus.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")

    def mine(dataset: Path) -> int:
        args = _mine(tmp_path, opensearch_url, "--index", fresh_index)
        args[args.index(str(TINY))] = str(dataset)
        return main(args)

    def fingerprint() -> str:
        return client.indices.get_mapping(index=fresh_index)[fresh_index]["mappings"]["_meta"][META_KEY][
            "fingerprint"
        ]

    with caplog.at_level(logging.INFO):
        assert mine(TINY) == 0
        old = fingerprint()
        caplog.clear()
        assert mine(other) == 0
    new = fingerprint()
    assert old != new
    # our own log lines only: opensearch-py's trace logger also names the index when it is enabled
    notes = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("sparse_tune") and fresh_index in r.getMessage()
    ]
    assert notes == [
        f"rebuilding index '{fresh_index}': it was built by sparse-tune from other data or settings "
        f"(fingerprint {old}, now {new})"
    ]
    from sparse_tune.data.beir import load_beir
    from sparse_tune.index.fingerprint import fingerprint_texts

    corpus = load_beir(other, "test")[0]
    assert new == mining_fingerprint("bm25", None, fingerprint_texts(corpus.ids, corpus.texts))


@pytest.mark.opensearch
def test_backend_writes_and_deletes_only_its_own_indices(
    opensearch_url, client, foreign, fresh_index, caplog
):
    import numpy as np
    import scipy.sparse as sp

    from sparse_tune.index.opensearch import OpenSearchBackend
    from sparse_tune.types import Encoded

    index = foreign(fresh_index)
    before = snapshot(client, index)
    docs = Encoded(["d1"], sp.csr_matrix(np.array([[1.0, 0.0]], dtype=np.float32)), "sparse", ["a", "b"])
    b = OpenSearchBackend(url=opensearch_url, progress=False)
    for call in (
        lambda: b.exists(index),
        lambda: b.create(index, "sparse", fingerprint="f"),
        lambda: b.add(index, docs),
        lambda: b.finalize(index),
        lambda: b.delete(index),
    ):
        with pytest.raises(ForeignIndexError):
            call()
    assert snapshot(client, index) == before
    assert b.search(index, Encoded(["q"], docs.matrix, "sparse", ["a", "b"]), 3) == {
        "q": {}
    }  # reading is fine
    forced = OpenSearchBackend(url=opensearch_url, progress=False, overwrite_index=True)
    assert forced.exists(index) is False  # not reusable, but replaceable
    with caplog.at_level(logging.WARNING):
        forced.create(index, "sparse", fingerprint="f")
    assert caplog.messages == [
        f"replacing index '{index}', which sparse-tune did not create (--overwrite-index)"
    ]
    forced.add(index, docs)
    forced.finalize(index)
    assert b.exists(index, "f") and not b.exists(index, "g")
    b.delete(index)
    assert not client.indices.exists(index=index)


@pytest.mark.opensearch
def test_bad_index_name_is_one_line_from_us_and_from_the_server(
    opensearch_url, tmp_path, capsys, monkeypatch
):
    capsys.readouterr()
    assert main(_mine(tmp_path, opensearch_url, "--index", "Bad Name")) == 2
    line = _one_error_line(capsys.readouterr().err, "mine")
    assert line.startswith(
        "sparse-tune mine: error: invalid index name 'Bad Name': an OpenSearch index name must be"
    )
    assert line.endswith("e.g. 'bad-name'")

    # A name only the server refuses (our check switched off) is one line too, with the server's reason.
    from sparse_tune.index import opensearch as os_backend

    monkeypatch.setattr(os_backend, "check_index_name", lambda name: name)
    b = os_backend.OpenSearchBackend(url=opensearch_url, progress=False)
    with pytest.raises(IndexNameError) as exc:
        b.create("Bad Name", "sparse")
    assert str(exc.value).startswith(
        f"OpenSearch at {opensearch_url} refused the index name 'Bad Name': Invalid index name"
    )
    assert "\n" not in str(exc.value)


def test_overwrite_index_is_passed_to_mining_but_is_not_a_mining_setting():
    from sparse_tune.config import MiningSpec

    forced = MiningSpec(backend="opensearch", overwrite_index=True)
    assert (
        forced.mine_kwargs()["overwrite_index"] is True
        and MiningSpec().mine_kwargs()["overwrite_index"] is False
    )
    # what a mined file's sidecar and a pipeline marker compare: unchanged by the permission
    assert forced.identity() == MiningSpec(backend="opensearch").identity()
    assert "overwrite_index" not in forced.identity()
