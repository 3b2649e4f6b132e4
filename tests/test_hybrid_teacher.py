"""Hybrid teachers (a retriever fused with BM25) and the student row of the teacher report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sparse_tune.config import ConfigError, TeacherConfig, load_train_config
from sparse_tune.index.fusion import Fusion
from sparse_tune.training.hybrid_teacher import DEFAULT_FUSION, HybridTeacher, fuse_rows, teacher_fusion
from sparse_tune.training.teacher_report import ENSEMBLE, STUDENT, format_report, rerank_report
from sparse_tune.training.teachers import TeacherEnsemble

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["what causes malaria", "how to boil pasta"]
DOCS = [
    [
        "Malaria is caused by Plasmodium parasites that mosquitoes transmit to humans.",
        "The stock market closed higher on Friday after strong earnings.",
        "Pasta should be boiled in plenty of salted water.",
    ],
    [
        "Pasta should be boiled in plenty of salted water.",
        "Malaria is caused by Plasmodium parasites that mosquitoes transmit to humans.",
        "Mosquito nets reduce malaria in children.",
    ],
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A corpus JSONL of the candidate documents plus two more (BM25's statistics)."""
    folder = tmp_path_factory.mktemp("corpus")
    texts = sorted({d for docs in DOCS for d in docs}) + [
        "Parasites of the liver.",
        "Salted water boils later.",
    ]
    lines = [json.dumps({"_id": f"d{i}", "title": "", "text": t}) for i, t in enumerate(texts)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder)


def test_fuse_rows_by_hand() -> None:
    model = torch.tensor([[4.0, 2.0, 0.0], [1.0, 1.0, 3.0]])
    bm25 = torch.tensor([[0.0, 10.0, 5.0], [2.0, 0.0, 2.0]])
    # min-max per row and retriever (a row's minimum becomes 0.001), then the weighted mean.
    fused = fuse_rows([model, bm25], Fusion("minmax", (0.6, 0.4)))
    expected = torch.tensor(
        [
            [0.6 * 1.0 + 0.4 * 0.001, 0.6 * 0.5 + 0.4 * 1.0, 0.6 * 0.001 + 0.4 * 0.5],
            [0.6 * 0.001 + 0.4 * 1.0, 0.6 * 0.001 + 0.4 * 0.001, 0.6 * 1.0 + 0.4 * 1.0],
        ]
    )
    assert torch.allclose(fused, expected, atol=1e-7)
    # RRF: 1 / (60 + rank) per list, ties broken by candidate position; weights 1 and 1 (rescaled to 0.5).
    rrf = fuse_rows([model, bm25], Fusion("rrf", (1.0, 1.0)))
    r = [1 / 61, 1 / 62, 1 / 63]
    assert rrf[0].tolist() == pytest.approx([0.5 * (r[0] + r[2]), 0.5 * (r[1] + r[0]), 0.5 * (r[2] + r[1])])
    total = fuse_rows([model, bm25], Fusion("sum", (1.0, 0.5)))
    assert torch.equal(total, model + 0.5 * bm25)
    with pytest.raises(ValueError, match="share one"):
        fuse_rows([model, bm25[:, :2]], DEFAULT_FUSION)


def test_fusion_comes_from_the_setting_then_hybrid_json_then_opensearchs_default(tmp_path: Path) -> None:
    fusion, source = teacher_fusion({"fusion": "rrf", "weights": [3, 1]}, str(tmp_path))
    assert fusion == Fusion("rrf", (0.75, 0.25)) and "setting" in source
    assert teacher_fusion(None, str(tmp_path)) == (DEFAULT_FUSION, teacher_fusion(None, "splade-tiny")[1])
    assert DEFAULT_FUSION == Fusion("minmax", (0.5, 0.5))
    saved = {"fusion": "sum", "weights": [1.0, 0.2], "retrievers": ["model", "bm25"], "step": 100}
    (tmp_path / "hybrid.json").write_text(json.dumps(saved))
    fusion, source = teacher_fusion(None, str(tmp_path))
    assert fusion == Fusion("sum", (1.0, 0.2)) and "hybrid.json" in source and "step 100" in source
    (tmp_path / "hybrid.json").write_text(json.dumps({**saved, "retrievers": ["model", "dense"]}))
    with pytest.raises(ValueError, match="not the model with BM25"):
        teacher_fusion(None, str(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "sparse", "model": "splade-tiny", "bm25": "x"}, "belong to a hybrid teacher"),
        ({"type": "hybrid", "model": "splade-tiny", "fusion": {"fusion": "rrf"}}, "expected keys fusion"),
        (
            {"type": "hybrid", "model": "splade-tiny", "fusion": {"fusion": "rrf", "weights": [1]}},
            "2 numbers",
        ),
        (
            {"type": "hybrid", "model": "splade-tiny", "fusion": {"fusion": "max", "weights": [1, 1]}},
            "unknown",
        ),
        ({"type": "hybrid", "model": "splade-tiny", "weight": -1}, "weight must be"),
        ({"type": "bm25", "weight": float("nan")}, "weight must be"),
    ],
)
def test_bad_hybrid_teacher_settings_fail_in_one_line(kwargs: dict, message: str) -> None:
    from sparse_tune.pipeline.config import TeacherSpec

    with pytest.raises(ConfigError, match=message):
        TeacherConfig(**kwargs)
    with pytest.raises(ConfigError, match=message):  # a pipeline's teacher: the same check, at load
        TeacherSpec(name="t", **kwargs)


def test_a_recipes_hybrid_teacher_takes_bm25_from_beir_dir(tmp_path: Path) -> None:
    recipe = tmp_path / "kd.yaml"
    recipe.write_text(
        f"model_name_or_path: splade-tiny\nhead: inference_free\nbeir_dir: {ROOT / 'examples' / 'scifact-mini'}\n"
        "loss: kl\nteachers:\n  - {type: hybrid, model: splade-tiny, weight: 1.0}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    cfg = load_train_config(recipe)
    (teacher,) = cfg.loss.teachers
    assert teacher.type == "hybrid" and teacher.bm25 == str(ROOT / "examples" / "scifact-mini")


def test_hybrid_teacher_scores_are_its_model_and_bm25_fused(corpus: str) -> None:
    fusion = {"fusion": "minmax", "weights": [0.6, 0.4]}
    ensemble = TeacherEnsemble(
        [
            TeacherConfig("hybrid", "splade-tiny", 1.0, bm25=corpus, fusion=fusion),
            TeacherConfig("sparse", "splade-tiny", 1.0),
            TeacherConfig("bm25", corpus, 1.0),
        ],
        device="cpu",
        max_doc_length=64,
    )
    hybrid, sparse, bm25 = ensemble.models
    assert isinstance(hybrid, HybridTeacher) and hybrid.fusion == Fusion("minmax", (0.6, 0.4))
    assert not hybrid.model.training and not any(p.requires_grad for p in hybrid.model.parameters())
    fused, model_scores, bm25_scores = ensemble.teacher_scores(QUERIES, DOCS)
    assert fused.shape == (2, 3)
    # The same model and BM25 scored alone, fused by hand, give the hybrid's scores.
    assert torch.allclose(
        fused, fuse_rows([model_scores, bm25_scores], Fusion("minmax", (0.6, 0.4))), atol=1e-6
    )
    assert (fused[:, 0:1] > fused[:, 1:]).all()  # the obvious positive first
    # The fused scores lie in [0.001 * w, 1]: min-max per query, weights summing to 1.
    assert fused.max().item() <= 1.0 + 1e-6 and fused.min().item() >= 0.0


def test_a_hybrid_teacher_refuses_a_pair_teacher_as_its_model(corpus: str) -> None:
    from sparse_tune.training.bm25_teacher import BM25Teacher

    bm25 = BM25Teacher(corpus, torch.device("cpu"))
    with pytest.raises(ValueError, match="sparse or dense model"):
        HybridTeacher(bm25, bm25, DEFAULT_FUSION)  # type: ignore[arg-type]


def test_report_shows_the_student_beside_the_teachers_with_each_gap(corpus: str, monkeypatch) -> None:
    ensemble = TeacherEnsemble([TeacherConfig("bm25", corpus, 1.0)], score_scale=1.0, device="cpu")
    teacher = torch.tensor([[3.0, 2.0, 1.0], [5.0, 4.0, 0.0]])  # positive first in both
    student = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0]])  # positive 3rd, then 1st
    marker = object()

    def scores(q, d, models=None):
        if models is None:
            return [teacher[: len(q)]]
        assert models == [marker]
        return [student[: len(q)]]

    monkeypatch.setattr(ensemble, "teacher_scores", scores)
    examples = [
        {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"]},
        {"query": "q2", "pos": ["p2"], "neg": ["n3", "n4"]},
    ]
    report = rerank_report(ensemble, examples, labels=["bm25"], others={STUDENT: marker})
    assert list(report) == ["bm25", ENSEMBLE, STUDENT]
    third = 1 / math.log2(4)
    assert report[STUDENT]["nDCG@10"] == pytest.approx((third + 1.0) / 2)
    lines = format_report(report).splitlines()
    assert lines[0].split()[-2:] == ["vs", "student"]
    gap = 1.0 - (third + 1.0) / 2
    assert lines[1].split()[-1] == f"{gap:+.4f}" and lines[2].split()[-1] == f"{gap:+.4f}"
    assert lines[3].startswith(STUDENT) and len(lines[3].split()) == 4  # no gap to itself
    with pytest.raises(ValueError, match="repeat a teacher"):
        rerank_report(ensemble, examples, labels=["bm25"], others={"bm25": marker})


def test_score_cli_hybrid_teacher_needs_and_uses_a_bm25_corpus(corpus: str, tmp_path: Path, capsys) -> None:
    from sparse_tune.cli.__main__ import main
    from sparse_tune.data.teacher_scores import iter_scored_rows

    mined = tmp_path / "mined.jsonl"
    mined.write_text(
        "".join(
            json.dumps({"query": q, "pos": d[:1], "neg": d[1:]}) + "\n"
            for q, d in zip(QUERIES, DOCS, strict=True)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "scored.jsonl"
    argv = ["score", "--input", str(mined), "--output", str(out), "--device", "cpu", "--score-scale", "1",
            "--max-doc-length", "64", "--teacher", "hybrid:splade-tiny"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs --bm25-corpus" in err
    assert main([*argv, "--bm25-corpus", corpus]) == 0
    rows = list(iter_scored_rows(out))
    ensemble = TeacherEnsemble(
        [TeacherConfig("hybrid", "splade-tiny", 1.0, bm25=corpus)],
        score_scale=1.0,
        device="cpu",
        max_doc_length=64,
    )
    expected = ensemble.score(QUERIES, DOCS)  # min-max 0.5/0.5 (no hybrid.json), then min-max per query
    for row, want in zip(rows, expected.tolist(), strict=True):
        assert row["scores"] == pytest.approx(want, abs=1e-6)
