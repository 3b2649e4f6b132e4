"""YAML recipes onto dataclasses: overrides, types, unknown keys, impossible values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_tune.config import ConfigError, load_train_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_recipe_loads(tmp_path):
    from sparse_tune.pipeline.config import load_pipeline_config

    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        if recipe.name.startswith("pipeline_"):  # a distillation pipeline, which names training recipes
            pipeline = load_pipeline_config(recipe, str(tmp_path / recipe.stem))
            assert pipeline.student_train_config().training.output_dir == str(
                tmp_path / recipe.stem / "student"
            )
            continue
        cfg = load_train_config(recipe, {"output_dir": str(tmp_path / recipe.stem)})
        assert cfg.training.output_dir == str(tmp_path / recipe.stem)


def test_overrides_parse_and_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 100\nflops_doc_weight: 0.1\nhead: splade\n")
    over = parse_overrides(
        ["--max_steps", "5", "--train_file=x.jsonl", "--output_dir", str(tmp_path), "--bf16"]
    )
    assert over == {"max_steps": 5, "train_file": "x.jsonl", "output_dir": str(tmp_path), "bf16": True}
    cfg = load_train_config(recipe, {k: v for k, v in over.items() if k != "bf16"})
    assert cfg.training.max_steps == 5
    assert cfg.data.train_file == "x.jsonl"
    assert cfg.loss.flops_doc_weight == pytest.approx(0.1)
    assert cfg.model.head == "splade"


def test_unknown_key_lists_valid_ones_and_suggests(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_train_config(None, {"flops_doc_wieght": 1.0, "output_dir": str(tmp_path)})
    msg = str(err.value)
    assert "flops_doc_wieght" in msg and "did you mean flops_doc_weight" in msg
    assert "docs_per_query" in msg and "TrainingArguments" in msg


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("flops_doc_weight", -0.1, "flops_doc_weight must be >= 0"),
        ("learning_rate", -1e-5, "learning_rate must be > 0"),
        ("docs_per_query", 0, "docs_per_query must be >= 1"),
        ("docs_per_query", "many", "expected an integer"),
        ("head", "colbert", "not one of"),
        ("normalize", "maybe", "expected true/false"),
        ("scale", "nan", "finite"),
        ("teachers", [{"type": "dense"}], "must have keys"),
        ("mini_batch_size", 0, "mini_batch_size must be >= 1"),
        ("cached", "sometimes", "expected true/false"),
        ("gather_across_devices", "maybe", "expected true/false"),
    ],
)
def test_bad_values_are_rejected(tmp_path, key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_train_config(None, {key: value, "output_dir": str(tmp_path)})


def test_yaml_safe_load_only(tmp_path):
    recipe = tmp_path / "evil.yaml"
    recipe.write_text("output_dir: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(recipe)


def test_recipe_must_be_mapping(tmp_path):
    recipe = tmp_path / "list.yaml"
    recipe.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_train_config(recipe)


# -- relative paths in a recipe ---------------------------------------------------------------------
RECIPE_WITH_PATHS = """\
model_name_or_path: ckpt
idf_path: idf.json
train_file: data/train.jsonl
beir_dir: beir
hf_dataset: hfds
teachers:
  - {type: dense, model: teacher, weight: 0.5}
  - {type: sparse, model: splade-tiny}
"""


@pytest.fixture
def recipe_elsewhere(tmp_path, monkeypatch):
    """A recipe in tmp/exp/ with every path it names beside it; the working directory is tmp/run/."""
    exp = tmp_path / "exp"
    for folder in ("ckpt", "data", "beir", "hfds", "teacher", "splade-tiny"):
        (exp / folder).mkdir(parents=True)
    (exp / "idf.json").write_text("{}")
    (exp / "data" / "train.jsonl").write_text("")
    (exp / "r.yaml").write_text(RECIPE_WITH_PATHS + f"output_dir: {tmp_path / 'out'}\n")
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    return exp


def test_relative_paths_are_read_next_to_the_recipe(recipe_elsewhere, tmp_path, monkeypatch):
    exp = recipe_elsewhere
    cfg = load_train_config(exp / "r.yaml")
    assert cfg.model.model_name_or_path == str(exp / "ckpt")
    assert cfg.model.idf_path == str(exp / "idf.json")
    assert cfg.data.train_file == str(exp / "data" / "train.jsonl")
    assert cfg.data.beir_dir == str(exp / "beir")
    assert cfg.data.hf_dataset == str(exp / "hfds")
    # a registered model name stays a name, even with a folder of that name around
    assert [t.model for t in cfg.loss.teachers] == [str(exp / "teacher"), "splade-tiny"]
    assert cfg.source["train_file"] == "data/train.jsonl"  # recipe.yaml of the run keeps what was written
    monkeypatch.chdir(tmp_path)  # the recipe given by a relative path: the same absolute result
    assert load_train_config("exp/r.yaml").data.train_file == str(exp / "data" / "train.jsonl")


def test_the_working_directory_wins_and_overrides_are_not_moved(recipe_elsewhere, tmp_path):
    (tmp_path / "run" / "data").mkdir()
    (tmp_path / "run" / "data" / "train.jsonl").write_text("")
    cfg = load_train_config(recipe_elsewhere / "r.yaml", {"idf_path": "idf.json"})
    assert cfg.data.train_file == "data/train.jsonl"  # exists from the working directory: as written
    assert cfg.data.beir_dir == str(recipe_elsewhere / "beir")
    assert cfg.model.idf_path == "idf.json"  # typed on the command line: relative to the working directory


def test_a_path_found_nowhere_stays_as_written_and_the_warning_names_both_places(
    recipe_elsewhere, tmp_path, caplog
):
    from sparse_tune.data.errors import DataError
    from sparse_tune.data.formats import read_training_jsonl

    recipe = recipe_elsewhere / "r.yaml"
    recipe.write_text(
        recipe.read_text().replace("data/train.jsonl", "missing.jsonl").replace("ckpt", "org/model")
    )
    with caplog.at_level("WARNING", logger="sparse_tune.config"):
        cfg = load_train_config(recipe)
    assert cfg.data.train_file == "missing.jsonl" and cfg.model.model_name_or_path == "org/model"
    [record] = [r for r in caplog.records if r.name == "sparse_tune.config"]  # not for the hub id
    message = record.getMessage()
    assert "train_file" in message
    assert str(tmp_path / "run" / "missing.jsonl") in message
    assert str(recipe_elsewhere / "missing.jsonl") in message
    with pytest.raises(DataError, match="file not found"):
        read_training_jsonl(cfg.data.train_file)
