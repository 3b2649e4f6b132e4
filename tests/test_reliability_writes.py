"""Atomic writes (an interrupted write leaves the previous file intact and no partial file) and safe loading.

Each writer is interrupted midway by a monkeypatched failure; afterwards the file under the
final name must be the previous, complete one, and no temporary file may be left behind.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_tune.cli.__main__ import main
from sparse_tune.types import Encoded, EvalResult

PACKAGE = Path(__file__).resolve().parents[1] / "sparse_tune"


class Interrupted(Exception):
    pass


def _only(folder: Path) -> list[str]:
    """Every file in ``folder`` (temporary ones included)."""
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_text_keeps_the_old_file(tmp_path, monkeypatch):
    from sparse_tune import fsio

    target = tmp_path / "config.json"
    fsio.atomic_write_text(target, "old")

    def fail(fd):
        raise Interrupted

    monkeypatch.setattr(fsio.os, "fsync", fail)  # after the new text is written, before the rename
    with pytest.raises(Interrupted):
        fsio.atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "old" and _only(tmp_path) == ["config.json"]


def test_atomic_path_renames_only_when_the_block_succeeds(tmp_path):
    from sparse_tune.fsio import atomic_path

    target = tmp_path / "enc.npz"
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".enc.npz.") and tmp.name.endswith(".tmp.npz")
        np.savez(tmp, a=np.arange(3))  # savez keeps a name that already ends in .npz
        assert _only(tmp_path) == [tmp.name]  # nothing under the final name yet
    assert _only(tmp_path) == ["enc.npz"] and np.load(target)["a"].tolist() == [0, 1, 2]
    with pytest.raises(Interrupted), atomic_path(target):
        raise Interrupted  # before the writer even created the temporary file
    assert _only(tmp_path) == ["enc.npz"] and np.load(target)["a"].tolist() == [0, 1, 2]


def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path):
    """Results, idf.json and exported files are meant to be shared: mkstemp's 0600 is not kept."""
    from sparse_tune.fsio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644


def _die(*args, **kwargs):
    raise Interrupted


def test_results_json(tmp_path, monkeypatch):
    from sparse_tune import fsio
    from sparse_tune.evaluation import results_file

    def write(value):
        result = EvalResult(model="m", metrics={"nDCG@10": value})
        row = results_file.result_row(result, "d", "test", "embedded")
        results_file.write_rows(tmp_path / "results.json", {results_file.row_key(row): row})

    write(0.5)
    before = (tmp_path / "results.json").read_text()
    monkeypatch.setattr(
        fsio.os, "replace", _die
    )  # the new text is in the temporary file; the rename never happens
    with pytest.raises(Interrupted):
        write(0.9)
    assert (tmp_path / "results.json").read_text() == before and _only(tmp_path) == ["results.json"]


def test_idf_json(tmp_path, monkeypatch):
    from sparse_tune import fsio
    from sparse_tune.data.idf import read_idf, save_idf

    path = tmp_path / "idf.json"
    save_idf(path, {"a": 1.0, "b": 2.0})
    monkeypatch.setattr(fsio.os, "replace", _die)
    with pytest.raises(Interrupted):
        save_idf(path, {f"t{i}": float(i) for i in range(5000)})
    assert read_idf(path) == {"a": 1.0, "b": 2.0} and _only(tmp_path) == ["idf.json"]


def test_encoded_corpus_cache_npz(tmp_path, monkeypatch):
    from sparse_tune.evaluation import beir_eval

    path = tmp_path / "enc.npz"
    enc = Encoded(["d1", "d2"], sp.csr_matrix(np.eye(2, 3, dtype=np.float32)), "sparse", ["x", "y", "z"])
    beir_eval.save_encoded(path, enc)
    real_savez = np.savez

    def half(file, **arrays):
        real_savez(file, **{k: arrays[k] for k in list(arrays)[:2]})  # part of the arrays...
        raise Interrupted  # ...then the process "dies"

    monkeypatch.setattr(beir_eval.np, "savez", half)
    with pytest.raises(Interrupted):
        beir_eval.save_encoded(
            path, Encoded(["z"], sp.csr_matrix(np.ones((1, 3), np.float32)), "sparse", ["x", "y", "z"])
        )
    again = beir_eval.load_encoded(path)
    assert again.ids == ["d1", "d2"] and _only(tmp_path) == ["enc.npz"]


def test_unreadable_cache_is_re_encoded_not_trusted(tmp_path, capsys):
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--model",
        "splade-tiny",
        "--dataset",
        str(Path(__file__).parent / "data" / "tiny_beir"),
        "--output",
        str(out),
    ]
    assert main(args) == 0
    key = f"splade-tiny on {Path(__file__).parent / 'data' / 'tiny_beir'} (test, embedded)"
    first = json.loads((out / "results.json").read_text())[key]["nDCG@10"]
    cache = next((out / "encoded").glob("*.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # a damaged cache (e.g. copied half-way)
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text())[key]["nDCG@10"] == first
    assert np.load(cache, allow_pickle=False)["kind"] == "sparse"  # rewritten whole


def test_mined_training_jsonl(tmp_path):
    from sparse_tune.data.formats import read_training_jsonl, write_training_jsonl

    path = tmp_path / "mined.jsonl"
    write_training_jsonl(path, [{"query": "q", "pos": ["p"], "neg": ["n"]}])

    def examples():
        yield {"query": "q2", "pos": ["p2"], "neg": []}
        raise Interrupted

    with pytest.raises(Interrupted):
        write_training_jsonl(path, examples())
    assert read_training_jsonl(path) == [{"query": "q", "pos": ["p"], "neg": ["n"]}]
    assert _only(tmp_path) == ["mined.jsonl"]


def test_scored_jsonl(tmp_path, monkeypatch, capsys):
    import sparse_tune.cli.score as score

    mined = tmp_path / "mined.jsonl"
    mined.write_text(
        "".join(json.dumps({"query": f"q{i}", "pos": ["p"], "neg": ["n1", "n2"]}) + "\n" for i in range(3))
    )
    out = tmp_path / "scored.jsonl"
    out.write_text("previous\n")
    real_dumps = json.dumps
    calls = [0]

    def dumps(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:  # the second row: the first is already in the temporary file
            raise Interrupted
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(score.json, "dumps", dumps)
    with pytest.raises(Interrupted):
        main(
            [
                "score",
                "--input",
                str(mined),
                "--output",
                str(out),
                "--teacher",
                "sparse:splade-tiny",
                "--max-doc-length",
                "32",
                "--device",
                "cpu",
            ]
        )
    assert out.read_text() == "previous\n" and _only(tmp_path) == ["mined.jsonl", "scored.jsonl"]


def test_export_zip(tmp_path):
    from sparse_tune.export.opensearch import write_zip

    path = tmp_path / "model.zip"
    write_zip(path, {"a.txt": b"old"})
    before = path.read_bytes()
    with pytest.raises(FileNotFoundError):  # a member file vanished halfway through the zip
        write_zip(path, {"a.txt": b"new", "b.pt": tmp_path / "missing.pt"})
    assert path.read_bytes() == before and _only(tmp_path) == ["model.zip"]


# -- safe loading -------------------------------------------------------------------------------------

UNSAFE = [
    (re.compile(r"\bimport pickle\b|\bpickle\.loads?\("), "pickle"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\byaml\.(load|unsafe_load|full_load)\("), "yaml.load (use yaml.safe_load)"),
]


def test_package_never_unpickles_or_evals():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(PACKAGE.parent)
        for pattern, what in UNSAFE:
            for m in pattern.finditer(text):
                problems.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {what}")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in ("eval", "exec") and isinstance(func, ast.Name):
                problems.append(f"{rel}:{node.lineno}: {name}()")
            if (
                isinstance(func, ast.Attribute)
                and name == "load"
                and getattr(func.value, "id", "") == "torch"
            ):
                safe = any(
                    k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords
                )
                if not safe:
                    problems.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
    assert problems == []


def test_the_scan_catches_what_it_looks_for(tmp_path):
    bad = "import pickle\nnp.load(f, allow_pickle=True)\nyaml.load(s)\neval(x)\ntorch.load(p)\n"
    hits = [what for pattern, what in UNSAFE if pattern.search(bad)]
    assert len(hits) == 3
    tree = ast.parse(bad.replace("import pickle\n", ""))
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(isinstance(f, ast.Name) and f.id == "eval" for f in calls)
    assert any(isinstance(f, ast.Attribute) and f.attr == "load" and f.value.id == "torch" for f in calls)


def test_cache_files_load_without_pickle(tmp_path):
    from sparse_tune.evaluation.beir_eval import load_encoded, save_encoded

    path = tmp_path / "enc.npz"
    save_encoded(path, Encoded(["a", "b\u00e9"], np.ones((2, 4), np.float32), "dense"))
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    assert load_encoded(path).ids == ["a", "b\u00e9"]
