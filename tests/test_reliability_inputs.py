"""Bad input through the real CLI: one line naming the file, the line and what is wrong; exit code 2.

No traceback unless ``--debug``. ``--skip_bad_lines`` (train) / ``--skip-bad-lines`` (score)
skip and count bad lines instead, and say how many at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_beir"
GOOD = {"query": "aspirin heart", "pos": ["Aspirin helps the heart."], "neg": ["Cats sleep.", "Rain falls."]}
GOOD2 = {"query": "vitamin bone", "pos": ["Vitamin D and bones."], "neg": ["Jupiter.", "Chess openings."]}
RECIPE = (
    "max_steps: 1\nper_device_train_batch_size: 2\ndocs_per_query: 3\nmax_doc_length: 32\n"
    "max_query_length: 16\nlearning_rate: 1.0e-4\nlogging_steps: 1\nsave_steps: 100\n"
    "dataloader_num_workers: 0\ndisable_tqdm: true\n"
)


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def _train(tmp_path: Path, train_file: Path, *extra: str) -> list[str]:
    return [
        "train",
        str(_recipe(tmp_path)),
        "--train_file",
        str(train_file),
        "--output_dir",
        str(tmp_path / "out"),
        *extra,
    ]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    return err.strip()


def _write(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode("utf-8"))
    return path


# -- training data ---------------------------------------------------------------------------------

BAD_LINES = [
    ('{"query": "q", "pos": ["p"], "neg": ["n"]', "malformed JSON"),
    ('{"pos": ["p"], "neg": ["n"]}', 'missing "query"'),
    ('{"query": "  ", "pos": ["p"], "neg": ["n"]}', '"query" is empty'),
    ('{"query": "q", "pos": [], "neg": ["n"]}', '"pos" is empty'),
    ('{"query": "q", "pos": [""], "neg": ["n"]}', '"pos" is empty'),
    ('{"query": 3, "pos": ["p"], "neg": ["n"]}', '"query" must be a string, got int'),
    ('{"query": "q", "pos": ["p", 7], "neg": ["n"]}', '"pos"[1] must be a string, got int'),
    ('{"query": "q", "pos": ["p"], "neg": [null]}', '"neg"[0] must be a string, got NoneType'),
    ('{"query": "q", "answers": ["p"]}', "unknown format"),
    ('["q", "p", "n"]', "expected a JSON object, got list"),
]


@pytest.mark.parametrize("bad, fragment", BAD_LINES, ids=[f for _, f in BAD_LINES])
@pytest.mark.parametrize("crlf_bom", [False, True], ids=["lf", "crlf+bom"])
def test_bad_training_line_is_one_line_with_file_and_line(tmp_path, capsys, bad, fragment, crlf_bom):
    path = _write(
        tmp_path / "train.jsonl",
        [json.dumps(GOOD), bad, json.dumps(GOOD2)],
        newline="\r\n" if crlf_bom else "\n",
        bom=crlf_bom,
    )
    assert main(_train(tmp_path, path)) == 2
    line = _one_line(capsys)
    assert line.startswith(f"sparse-tune train: error: {path}:2: ")
    assert fragment in line


def test_empty_training_file(tmp_path, capsys):
    path = _write(tmp_path / "empty.jsonl", ["", "  "])
    assert main(_train(tmp_path, path)) == 2
    assert _one_line(capsys) == f"sparse-tune train: error: {path}: empty file: no training examples"
    path.write_bytes(b"")
    assert main(_train(tmp_path, path)) == 2
    assert "empty file" in _one_line(capsys)


def test_missing_and_non_utf8_training_file(tmp_path, capsys):
    assert main(_train(tmp_path, tmp_path / "nope.jsonl")) == 2
    assert "nope.jsonl does not exist" in _one_line(capsys)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps({"query": "caf\u00e9", "pos": ["p"]}, ensure_ascii=False).encode("latin-1") + b"\n"
    )
    assert main(_train(tmp_path, path)) == 2
    assert "not UTF-8" in _one_line(capsys)


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = _write(tmp_path / "train.jsonl", ['{"query": "q"'])
    assert main([*_train(tmp_path, path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "DataError" in err and f"{path}:1" in err


def test_docs_per_query_larger_than_the_data_has(tmp_path, capsys):
    only_positives = [{"query": "q1", "pos": ["p1"]}, {"query": "q2", "pos": ["p2"]}]
    path = _write(tmp_path / "train.jsonl", [json.dumps(r) for r in only_positives])
    assert main(_train(tmp_path, path, "--docs_per_query", "4")) == 2
    line = _one_line(capsys)
    assert line.startswith(
        f"sparse-tune train: error: {path}: example 1: docs_per_query=4 needs 3 negative(s)"
    )


def test_skip_bad_lines_trains_and_reports_the_count_at_the_end(tmp_path, capsys, caplog):
    lines = [json.dumps(GOOD), '{"query": "broken"', json.dumps(GOOD2), '{"query": "q", "pos": []}']
    path = _write(tmp_path / "train.jsonl", lines, newline="\r\n", bom=True)
    with caplog.at_level(logging.WARNING):
        assert main(_train(tmp_path, path, "--skip_bad_lines", "true")) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    last = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING][-1]
    assert last.startswith(
        f"skipped 2 bad line(s) of {path} (skip_bad_lines); first: {path}:2: malformed JSON"
    )


def test_score_skip_bad_lines_reports_the_count(tmp_path, capsys):
    path = _write(tmp_path / "mined.jsonl", [json.dumps(GOOD), "not json", json.dumps(GOOD2)])
    out = tmp_path / "scored.jsonl"
    args = [
        "score",
        "--input",
        str(path),
        "--output",
        str(out),
        "--teacher",
        "sparse:splade-tiny",
        "--max-doc-length",
        "32",
        "--device",
        "cpu",
    ]
    assert main(args) == 2
    assert _one_line(capsys).startswith(f"sparse-tune score: error: {path}:2: malformed JSON")
    assert not out.exists()
    assert main([*args, "--skip-bad-lines"]) == 0
    assert f"skipped 1 bad line(s) of {path}" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 2


# -- configs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--learning_rat", "1e-4"], "unknown config key(s): 'learning_rat' (did you mean learning_rate"),
        (["--max_doc_length", "many"], "max_doc_length: expected an integer, got 'many'"),
        (["--learning_rate", "-1e-4"], "learning_rate must be > 0, got -0.0001"),
        (["--flops_doc_weight", "-0.1"], "flops_doc_weight must be >= 0, got -0.1"),
        (["--docs_per_query", "0"], "docs_per_query must be >= 1, got 0"),
        (["--skip_bad_lines", "maybe"], "skip_bad_lines: expected true/false, got 'maybe'"),
    ],
)
def test_bad_config_is_one_line(tmp_path, capsys, extra, fragment):
    path = _write(tmp_path / "train.jsonl", [json.dumps(GOOD)])
    assert main(_train(tmp_path, path, *extra)) == 2
    line = _one_line(capsys)
    assert fragment in line
    if "unknown" in fragment:
        assert "Valid keys:" in line and "skip_bad_lines" in line


def test_exponent_without_a_dot_is_a_number():
    from sparse_tune.config import load_train_config, parse_overrides

    # YAML 1.1 reads `1e-4` as a string; it must still be accepted as the number it means.
    cfg = load_train_config(None, parse_overrides(["--learning_rate", "1e-4", "--train_file", "x.jsonl"]))
    assert cfg.training.learning_rate == 1e-4


def test_invalid_yaml_recipe_is_one_line(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("max_steps: 1\n  oops: [\n")
    assert main(["train", str(recipe)]) == 2
    assert f"{recipe}: not valid YAML" in _one_line(capsys)


# -- evaluation data -------------------------------------------------------------------------------


def _beir_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    shutil.copytree(TINY, folder)
    return folder


def _evaluate(folder: Path, tmp_path: Path) -> list[str]:
    return [
        "evaluate",
        "--model",
        "splade-tiny",
        "--dataset",
        str(folder),
        "--output",
        str(tmp_path / "eval"),
    ]


def test_qrels_id_absent_from_the_corpus(tmp_path, capsys):
    folder = _beir_copy(tmp_path)
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_bytes(qrels.read_bytes().rstrip(b"\r\n") + b"\r\nq3\td404\t1\r\n")  # CRLF like BEIR
    assert main(_evaluate(folder, tmp_path)) == 2
    assert _one_line(capsys) == (
        f"sparse-tune evaluate: error: {qrels}:5: corpus id 'd404' is not in corpus.jsonl"
    )


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('{"_id": "d9", "text": "unterminated', "malformed JSON"),
        ('{"_id": "d9", "text": 5}', '"text" must be a string, got int'),
        ('{"_id": "d1", "text": "again"}', "duplicate document id 'd1' (first on line 1)"),
        ('{"text": "no id"}', 'missing "_id"'),
    ],
)
def test_bad_corpus_line(tmp_path, capsys, line, fragment):
    folder = _beir_copy(tmp_path)
    corpus = folder / "corpus.jsonl"
    n = len(corpus.read_text().splitlines())
    corpus.write_text(corpus.read_text() + line + "\n")
    assert main(_evaluate(folder, tmp_path)) == 2
    line = _one_line(capsys)
    assert line.startswith(f"sparse-tune evaluate: error: {corpus}:{n + 1}: {fragment}")


def test_empty_corpus_and_missing_split(tmp_path, capsys):
    folder = _beir_copy(tmp_path)
    (folder / "corpus.jsonl").write_bytes(b"\xef\xbb\xbf\r\n")
    assert main(_evaluate(folder, tmp_path)) == 2
    assert _one_line(capsys).endswith("corpus.jsonl: empty corpus")
    assert main([*_evaluate(_beir_copy(tmp_path / "x"), tmp_path), "--split", "dev"]) == 2
    assert "missing qrels/dev.tsv; splits present: test" in _one_line(capsys)


# -- model files -----------------------------------------------------------------------------------


def test_checkpoint_folder_missing_files(tmp_path, splade_tiny, capsys):
    ckpt = tmp_path / "checkpoint-5"
    splade_tiny.save_pretrained(ckpt)
    (ckpt / "model.safetensors").unlink()
    capsys.readouterr()  # the save's progress bar
    args = ["evaluate", "--model", str(ckpt), "--dataset", str(TINY), "--output", str(tmp_path / "eval")]
    assert main(args) == 2
    assert (
        _one_line(capsys)
        == f"sparse-tune evaluate: error: {ckpt}: model folder is missing model.safetensors (its weights)"
    )


@pytest.mark.parametrize(
    "weight, fragment",
    [
        ("NaN", "weight is not finite (nan)"),
        ("Infinity", "weight is not finite (inf)"),
        ("-0.5", "weight is negative (-0.5)"),
    ],
)
def test_idf_json_with_bad_weights(tmp_path, splade_tiny, capsys, weight, fragment):
    from sparse_tune.models.io import load_model

    folder = tmp_path / "model"
    splade_tiny.save_pretrained(folder)
    idf = tmp_path / "idf.json"
    idf.write_text(f'{{"heart": 1.5, "attack": {weight}}}')
    with pytest.raises(ValueError) as info:
        load_model(str(folder), head="inference_free", idf_path=str(idf))
    assert str(info.value) == f"{idf}: token 'attack': {fragment}"


def test_scored_row_with_fewer_scores_than_docs_is_one_line(tmp_path, capsys):
    good = {
        "query": "aspirin heart",
        "docs": ["Aspirin helps the heart.", "Cats sleep.", "Rain."],
        "scores": [3, 1, 0],
    }
    bad = {
        "query": "vitamin bone",
        "docs": ["Vitamin D and bones.", "Jupiter.", "Chess."],
        "scores": [2.0, 1.0],
    }
    path = _write(tmp_path / "scored.jsonl", [json.dumps(good), json.dumps(bad)])
    assert main(_train(tmp_path, path, "--loss", "kl")) == 2
    assert _one_line(capsys) == f"sparse-tune train: error: {path}:2: 'docs' has 3 items but 'scores' has 2"
