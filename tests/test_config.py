"""YAML recipes onto dataclasses: overrides, types, unknown keys, impossible values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_tune.config import ConfigError, load_train_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_recipe_loads(tmp_path):
    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_train_config(recipe, {"output_dir": str(tmp_path / recipe.stem)})
        assert cfg.training.output_dir == str(tmp_path / recipe.stem)


def test_overrides_parse_and_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 100\nflops_doc_weight: 0.1\nhead: splade\n")
    over = parse_overrides(["--max_steps", "5", "--train_file=x.jsonl", "--output_dir", str(tmp_path), "--bf16"])
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
        ("learning_rate", -1e-5, "learning_rate must be a number >= 0"),
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
