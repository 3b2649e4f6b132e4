"""Every verb that loads a model says in one line (exit 2) what is wrong with a broken model folder or a missing path.

The broken folders are a real saved splade-tiny with one thing wrong each: the weights cut in
half, the tokenizer files deleted, or a config.json of another architecture (T5: encoder-decoder;
GPT-2: decoder-only). A path that does not exist (absolute, and relative in the shape of a hub
id) is named as such, never as a network problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sparse_tune.cli.__main__ import main
from sparse_tune.models.folder_check import safetensors_problem
from tests.test_pipeline import pipeline_config, write_beir, write_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_beir"
TRAIN_ROWS = [
    {"query": "aspirin heart", "pos": ["Aspirin helps the heart."], "neg": ["Cats sleep.", "Rain falls."]},
    {"query": "vitamin bone", "pos": ["Vitamin D and bones."], "neg": ["Jupiter.", "Chess openings."]},
]
TOKENIZER_NAMES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

# case -> (what the line must say, whether a tokenizer-only verb (idf) fails on it too)
CASES = {
    "truncated": (r"model\.safetensors is truncated \(\d+ bytes of \d+\)", False),
    "no_tokenizer": (r"model folder has no tokenizer \(none of tokenizer\.json, vocab\.txt", True),
    "t5_config": (r"config\.json describes a t5 model \(encoder-decoder\)", False),
    "gpt2_config": (r"config\.json describes a gpt2 model \(a decoder-only language model\)", False),
    "missing_absolute": (r"no such folder .*, and not a registered name \(splade-tiny, minilm-l6\)$", True),
    "missing_relative": (r"no such folder .*not a registered name \(splade-tiny, minilm-l6\), and no Hugging Face "
                         r"Hub model of that id could be loaded$", True),
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory, _splade_tiny) -> dict[str, str]:
    root = tmp_path_factory.mktemp("broken")
    out = {}
    for case in ("truncated", "no_tokenizer", "t5_config", "gpt2_config"):
        folder = root / case
        _splade_tiny.save_pretrained(folder)
        out[case] = str(folder)
    weights = root / "truncated" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    for name in TOKENIZER_NAMES:
        (root / "no_tokenizer" / name).unlink(missing_ok=True)
    t5 = {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True,
          "d_model": 128, "vocab_size": 30522}  # fmt: skip
    (root / "t5_config" / "config.json").write_text(json.dumps(t5))
    gpt2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 128, "vocab_size": 30522}
    (root / "gpt2_config" / "config.json").write_text(json.dumps(gpt2))
    out["missing_absolute"] = "/no/such/model/folder"
    out["missing_relative"] = (
        "runs/no-such-run"  # relative to the working directory; also a valid hub id shape
    )
    return out


def _verb_args(verb: str, model: str, tmp: Path) -> list[str]:
    if verb == "train":
        train = tmp / "train.jsonl"
        train.write_text("".join(json.dumps(r) + "\n" for r in TRAIN_ROWS))
        recipe = tmp / "recipe.yaml"
        recipe.write_text("max_steps: 1\nper_device_train_batch_size: 2\ndocs_per_query: 3\n")
        return ["train", str(recipe), "--model_name_or_path", model, "--train_file", str(train),
                "--output_dir", str(tmp / "run")]  # fmt: skip
    if verb == "evaluate":
        return [
            "evaluate",
            "--model",
            model,
            "--dataset",
            str(TINY),
            "--output",
            str(tmp / "eval"),
            "--no-plot",
        ]
    if verb == "encode":
        return ["encode", "--model", model, "--dataset", str(TINY), "--output", str(tmp / "c.npz")]
    if verb == "score":
        mined = tmp / "mined.jsonl"
        mined.write_text("".join(json.dumps(r) + "\n" for r in TRAIN_ROWS))
        return [
            "score",
            "--input",
            str(mined),
            "--output",
            str(tmp / "s.jsonl"),
            "--teacher",
            f"sparse:{model}",
        ]
    if verb == "mine":
        return ["mine", "--dataset", str(TINY), "--split", "test", "--method", "model", "--model", model,
                "--output", str(tmp / "m.jsonl")]  # fmt: skip
    if verb == "export":
        return ["export", "--model", model, "--format", "hf", "--output", str(tmp / "export")]
    if verb == "idf":
        return ["idf", "--corpus", str(TINY), "--tokenizer", model, "--output", str(tmp / "idf.json")]
    if verb == "distill-pipeline":
        write_beir(tmp / "beir")
        teachers = [{"name": "given", "type": "sparse", "model": model}]
        return ["distill-pipeline", str(write_config(tmp, pipeline_config(tmp, teachers=teachers)))]
    raise AssertionError(verb)


VERBS = ("train", "evaluate", "encode", "score", "mine", "export", "distill-pipeline", "idf")
PARAMS = [(v, c) for v in VERBS for c, (_, tokenizer_only) in CASES.items() if v != "idf" or tokenizer_only]


@pytest.mark.parametrize(("verb", "case"), PARAMS, ids=[f"{v}-{c}" for v, c in PARAMS])
def test_every_verb_names_the_broken_folder_in_one_line(verb, case, folders, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = folders[case]
    rc = main(_verb_args(verb, model, tmp_path))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if not x.startswith(("INFO ", "WARNING "))]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    line = lines[0]
    assert line.startswith(f"sparse-tune {verb}: error: ") and model in line, line
    assert re.search(CASES[case][0], line), line
    assert "internet" not in line.lower() and "huggingface.co" not in line


def test_a_whole_safetensors_file_has_no_problem(folders, _splade_tiny, tmp_path):
    _splade_tiny.save_pretrained(tmp_path / "whole")
    assert safetensors_problem(tmp_path / "whole" / "model.safetensors") is None
    cut = Path(folders["truncated"]) / "model.safetensors"
    size = cut.stat().st_size
    assert safetensors_problem(cut) == (
        f"model.safetensors is truncated ({size} bytes of {(tmp_path / 'whole' / 'model.safetensors').stat().st_size})"
    )


def test_a_relative_path_into_an_existing_folder_is_a_missing_folder_not_a_hub_id(tmp_path, monkeypatch):
    from sparse_tune.models.folder_check import ModelNotFoundError, check_model_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelNotFoundError) as info:
        check_model_source("runs/base")
    assert str(info.value) == (
        f"model runs/base: no such folder ({tmp_path / 'runs' / 'base'}), and not a registered name "
        "(splade-tiny, minilm-l6)"
    )
