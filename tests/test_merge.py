"""WiSE-FT merging: alpha 0 / 1 are the models bit for bit, 0.5 the exact average; refusals; alpha on validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sparse_tune.models.io import load_model
from sparse_tune.models.merge import MergeError, _tensors, merge_models

ROOT_DATA = "tests/data/tiny_beir"


def _perturbed(model, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture
def pair(splade_tiny, _splade_tiny):
    import copy

    return splade_tiny, _perturbed(copy.deepcopy(_splade_tiny))


def test_alpha_zero_and_one_are_the_models_bit_for_bit(pair):
    base, tuned = pair
    for alpha, expected in ((0.0, base), (1.0, tuned)):
        merged = _tensors(merge_models(base, tuned, alpha))
        for name, tensor in _tensors(expected).items():
            assert torch.equal(merged[name], tensor), (alpha, name)


def test_half_is_the_exact_average(pair):
    base, tuned = pair
    merged, b, t = _tensors(merge_models(base, tuned, 0.5)), _tensors(base), _tensors(tuned)
    for name in b:
        if b[name].is_floating_point():
            assert torch.equal(merged[name], (b[name] + t[name]) / 2), name
        else:
            assert torch.equal(merged[name], b[name]), name
    assert not torch.equal(merged["backbone.cls.predictions.bias"], t["backbone.cls.predictions.bias"])


def test_the_inputs_are_left_unchanged(pair):
    base, tuned = pair
    before = {k: v.clone() for k, v in _tensors(tuned).items()}
    merge_models(base, tuned, 0.3)
    assert all(torch.equal(before[k], v) for k, v in _tensors(tuned).items())


def test_mismatched_architectures_are_refused(splade_tiny, tmp_path):
    dense = load_model("splade-tiny", head="dense")
    with pytest.raises(
        MergeError, match="^cannot merge a splade base with a dense tuned model: the heads differ$"
    ):
        merge_models(splade_tiny, dense, 0.5)
    with pytest.raises(MergeError, match=r"alpha must be in \[0, 1\]"):
        merge_models(splade_tiny, splade_tiny, 1.5)


def test_cli_merge_saves_a_loadable_model_and_mismatch_is_one_line(pair, tmp_path):
    base, tuned = pair
    base.save_pretrained(tmp_path / "base")
    tuned.save_pretrained(tmp_path / "tuned")
    run = [sys.executable, "-m", "sparse_tune.cli", "merge", str(tmp_path / "base"), str(tmp_path / "tuned")]
    proc = subprocess.run(
        [*run, "--alpha", "0.5", "--output", str(tmp_path / "m")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    merged = _tensors(load_model(str(tmp_path / "m")))
    expected = _tensors(merge_models(base, tuned, 0.5))
    assert all(torch.equal(merged[k], expected[k]) for k in expected)  # saved and read back bit for bit
    assert json.loads((tmp_path / "m" / "merge_report.json").read_text())["alpha"] == 0.5
    load_model("splade-tiny", head="dense").save_pretrained(tmp_path / "dense")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparse_tune.cli",
            "merge",
            str(tmp_path / "base"),
            str(tmp_path / "dense"),
            "--alpha",
            "0.5",
            "--output",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "sparse-tune merge: error: cannot merge a splade base with a dense tuned model: the heads differ"
    )
    no_split = subprocess.run(
        [*run, "--output", str(tmp_path / "y")], capture_output=True, text=True, timeout=300
    )
    assert no_split.returncode == 2 and "needs validation queries" in no_split.stderr


def test_auto_picks_the_best_validation_alpha_and_shows_the_second_dataset(pair, sample_dir, tmp_path):
    from sparse_tune.data.holdout import load_validation_split
    from sparse_tune.evaluation.validation import RetrievalValidator
    from sparse_tune.experiments.merge import ValidationChoice, run_merge

    base, tuned = pair
    for model in pair:
        model.config.max_doc_length = 32  # short documents: the figures are compared, not judged
    base.save_pretrained(tmp_path / "base")
    tuned.save_pretrained(tmp_path / "tuned")
    choice = ValidationChoice(str(sample_dir), "test", None, 0, 5)
    report = run_merge(
        str(tmp_path / "base"),
        str(tmp_path / "tuned"),
        None,
        str(tmp_path / "m"),
        choice,
        ROOT_DATA,
        "test",
        grid=(0.0, 1.0),
    )
    # the same figures as the validator gives the two models themselves
    val = RetrievalValidator(load_validation_split(sample_dir, "test", None, "train", 0, 5))
    other = RetrievalValidator(load_validation_split(ROOT_DATA, "test", None, "train", 0))
    by_alpha = {r["alpha"]: r for r in report["rows"]}
    for alpha, model in ((0.0, base), (1.0, tuned)):
        assert by_alpha[alpha]["in_domain"] == pytest.approx(val.evaluate(model).metrics["ndcg@10"], abs=1e-9)
        assert by_alpha[alpha]["second"] == pytest.approx(other.evaluate(model).metrics["ndcg@10"], abs=1e-9)
    top = max(r["in_domain"] for r in report["rows"])
    within = [r["alpha"] for r in report["rows"] if r["in_domain"] >= top - 0.005]
    assert report["alpha"] == min(within) and report["tolerance"] == 0.005
    assert "tiny_beir/test" in report["table"]


def test_validation_candidates_follow_the_tuned_runs_own_settings(tmp_path):
    """On the run's own split, alpha 1 is scored on the pool the run validated on (its recipe.yaml)."""
    from sparse_tune.experiments.merge import ValidationChoice

    (tmp_path / "recipe.yaml").write_text("eval_corpus_budget: 2000\neval_pool_bm25_k: 20\nseed: 1\n")
    assert ValidationChoice().candidates(str(tmp_path)) == (2000, 20)
    assert ValidationChoice(corpus_budget=500).candidates(str(tmp_path)) == (500, 20)  # given wins
    assert ValidationChoice(dataset="elsewhere", split="dev").candidates(str(tmp_path)) == (20000, 100)
    (tmp_path / "recipe.yaml").write_text("seed: 1\n")  # the run kept the defaults
    assert ValidationChoice().candidates(str(tmp_path)) == (20000, 100)
    assert ValidationChoice().candidates(str(tmp_path / "no-run")) == (20000, 100)


def test_auto_takes_the_smallest_alpha_within_the_tolerance_of_the_best():
    """Merging is for keeping the base: of alphas that score alike in-domain, the one nearest the base."""
    from sparse_tune.evaluation.alpha_search import AlphaRow, AlphaSearch

    rows = [AlphaRow(0.0, 0.7351), AlphaRow(0.25, 0.7579), AlphaRow(0.5, 0.7704), AlphaRow(0.75, 0.7815),
            AlphaRow(1.0, 0.7834)]  # fmt: skip
    assert AlphaSearch("ndcg@10", rows, tolerance=0.0).chosen.alpha == 1.0
    assert AlphaSearch("ndcg@10", rows, tolerance=0.005).chosen.alpha == 0.75  # 0.7815 >= 0.7834 - 0.005
    assert AlphaSearch("ndcg@10", rows, tolerance=0.02).chosen.alpha == 0.5
    assert AlphaSearch("ndcg@10", rows, tolerance=1.0).chosen.alpha == 0.0
    tied = [AlphaRow(0.5, 0.8), AlphaRow(1.0, 0.8)]
    assert AlphaSearch("ndcg@10", tied).chosen.alpha == 0.5  # a tie: the smaller alpha
    table = AlphaSearch("ndcg@10", rows, tolerance=0.005).table()
    assert "| 0.75 * | 0.7815 |" in table and "| 1.00 | 0.7834 |" in table
