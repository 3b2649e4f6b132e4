"""Live teacher ensemble: normalisation and combination by hand, then real dense + sparse teachers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparse_tune.losses.base import LossInputs
from sparse_tune.losses.distill import KLDistillLoss, MarginMSELoss
from sparse_tune.training.teachers import (
    TeacherConfig,
    TeacherEnsemble,
    combine_teacher_scores,
    min_max_normalize,
)


def test_min_max_normalize_by_hand() -> None:
    scores = torch.tensor([[1.0, 3.0, 2.0], [-4.0, 0.0, -2.0], [7.0, 7.0, 7.0]])
    # row 0: (s - 1) / 2; row 1: (s + 4) / 4; row 2 is constant -> zeros by convention.
    expected = torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    assert torch.allclose(min_max_normalize(scores), expected)


def test_float_noise_is_not_a_ranking() -> None:
    # Spans at fp32 noise level (a few ulps, relative to the row's magnitude) count as constant.
    noisy = torch.tensor(
        [
            [1.0, 1.0 + 2.4e-7, 1.0],  # 2 ulps at 1.0
            [30.0, 30.0, 30.0 - 1.9e-6],  # 1 ulp at 30 (1e-5 relative tolerance = 3e-4)
            [0.0, 4e-7, 0.0],  # below the absolute floor 1e-6
        ]
    )
    assert torch.equal(min_max_normalize(noisy), torch.zeros(3, 3))
    # A span just above the tolerance is a real ranking and is scaled as before.
    real = torch.tensor([[1.0, 1.0 + 2e-5, 1.0 + 1e-5], [0.0, 2e-6, 1e-6]])
    assert torch.allclose(
        min_max_normalize(real), torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5]]), atol=1e-2
    )


def test_noise_in_one_teacher_cannot_flip_the_kl_target() -> None:
    # Teacher a prefers doc 0; teacher b cannot tell the docs apart but wobbles by 3e-7.
    a = torch.tensor([[0.9, 0.8, 0.1]])
    for wobble in ([0.5, 0.5 + 3e-7, 0.5], [0.5 + 3e-7, 0.5, 0.5]):
        combined = combine_teacher_scores([a, torch.tensor([wobble])], [1.0, 1.0], score_scale=30.0)
        assert torch.equal(combined, combine_teacher_scores([a], [1.0], score_scale=30.0))
        assert combined.softmax(dim=1).argmax().item() == 0


def test_combination_by_hand_including_a_constant_teacher() -> None:
    a = torch.tensor([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])  # query 1: a cannot tell the docs apart
    b = torch.tensor([[10.0, 0.0, 5.0], [0.0, 2.0, 1.0]])
    # normalised a = [[0, 1, .5], [0, 0, 0]], b = [[1, 0, .5], [0, 1, .5]]
    # weights (1, 3), score_scale 2:
    #   query 0: 2 * (1*[0, 1, .5] + 3*[1, 0, .5]) = 2 * [3, 1, 2] = [6, 2, 4]
    #   query 1: 2 * (1*[0, 0, 0]  + 3*[0, 1, .5]) = 2 * [0, 3, 1.5] = [0, 6, 3]
    out = combine_teacher_scores([a, b], [1.0, 3.0], score_scale=2.0)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([[6.0, 2.0, 4.0], [0.0, 6.0, 3.0]]))


def test_combination_checks_shapes_and_weights() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)|\(2, 4\).*\(2, 3\)"):
        combine_teacher_scores([torch.zeros(2, 3), torch.zeros(2, 4)], [1.0, 1.0])
    with pytest.raises(ValueError, match="one weight per"):
        combine_teacher_scores([torch.zeros(2, 3)], [1.0, 1.0])


# -- real models --------------------------------------------------------------------------------

QUERIES = ["what causes malaria", "how do vaccines train the immune system"]
DOCS = [
    [
        "Malaria is caused by Plasmodium parasites that mosquitoes transmit to humans.",
        "The stock market closed higher on Friday after strong earnings.",
        "Pasta should be boiled in plenty of salted water.",
    ],
    [
        "Vaccines train the immune system by exposing it to harmless antigens.",
        "The football season starts in August with a home game.",
        "Granite is an igneous rock made of quartz and feldspar.",
    ],
]


@pytest.fixture(scope="session")
def ensemble() -> TeacherEnsemble:
    """minilm-l6 (dense) + splade-tiny (sparse), loaded once for the session; tests only read it."""
    return TeacherEnsemble(
        [
            TeacherConfig(type="dense", model="minilm-l6", weight=0.5),
            {"type": "sparse", "model": "splade-tiny", "weight": 0.5},
        ],
        score_scale=10.0,
        device="cpu",
        batch_size=4,  # smaller than the 6 documents: exercises chunked encoding
        max_doc_length=64,
    )


def test_teachers_are_frozen_eval_mode_and_of_the_declared_kind(ensemble: TeacherEnsemble) -> None:
    assert [m.kind for m in ensemble.models] == ["dense", "sparse"]
    for model in ensemble.models:
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())


def test_ensemble_scores_are_batch_by_group_and_rank_the_positive_first(ensemble: TeacherEnsemble) -> None:
    raw = ensemble.teacher_scores(QUERIES, DOCS)
    assert len(raw) == 2
    for teacher_scores in raw:  # each teacher on its own prefers the obvious positive
        assert teacher_scores.shape == (2, 3)
        assert (teacher_scores[:, 0:1] > teacher_scores[:, 1:]).all(), teacher_scores
    scores = ensemble.score(QUERIES, DOCS)
    assert scores.shape == (2, 3) and scores.dtype == torch.float32 and not scores.requires_grad
    # Both teachers put the positive on top, so it gets the full 10 * (0.5 + 0.5) = 10.
    assert torch.allclose(scores[:, 0], torch.tensor([10.0, 10.0]))
    assert (scores[:, 1:] < 10.0).all() and (scores >= 0).all()
    assert torch.allclose(scores, combine_teacher_scores(raw, [0.5, 0.5], 10.0))


def test_scores_serve_as_loss_targets_with_backward(ensemble: TeacherEnsemble) -> None:
    teacher = ensemble.score(QUERIES, DOCS)  # (2, 3)
    q = torch.randn(2, 4, requires_grad=True)
    d = torch.randn(6, 4, requires_grad=True)
    for loss in (KLDistillLoss(temperature=2.0), MarginMSELoss()):
        loss(LossInputs(q=q, d=d, teacher_scores=teacher))["loss"].backward()
    assert q.grad is not None and d.grad is not None


def test_identical_candidates_score_zero(ensemble: TeacherEnsemble) -> None:
    same = [DOCS[0][0]] * 3
    scores = ensemble.score(QUERIES[:1], [same])
    assert torch.equal(scores, torch.zeros(1, 3))


def test_each_distinct_text_is_encoded_once_and_repeats_score_identically(
    ensemble: TeacherEnsemble, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, list[str]]] = []
    encode = ensemble._encode

    def recording(model, texts, side):
        seen.append((side, list(texts)))
        return encode(model, texts, side)

    monkeypatch.setattr(ensemble, "_encode", recording)
    docs = [[DOCS[0][0], DOCS[0][1], DOCS[0][0]], [DOCS[0][1], DOCS[1][0], DOCS[0][0]]]
    raw = ensemble.teacher_scores([QUERIES[0], QUERIES[0]], docs)
    # per teacher: the one distinct query, then the three distinct documents in first-seen order
    expected = [("query", [QUERIES[0]]), ("document", [DOCS[0][0], DOCS[0][1], DOCS[1][0]])]
    assert seen == expected * 2
    for scores in raw:  # the same (query, doc) pair gets bit-identical scores wherever it occurs
        assert scores[0, 0] == scores[0, 2] == scores[1, 2]
        assert scores[0, 1] == scores[1, 0]


def test_bf16_autocast_keeps_the_ranking(ensemble: TeacherEnsemble) -> None:
    ensemble.bf16 = True
    try:
        scores = ensemble.score(QUERIES, DOCS)
    finally:
        ensemble.bf16 = False
    assert scores.dtype == torch.float32
    assert (scores[:, 0:1] > scores[:, 1:]).all()


def test_ragged_candidate_lists_are_refused(ensemble: TeacherEnsemble) -> None:
    with pytest.raises(ValueError, match=r"same number.*\[2, 3\]"):
        ensemble.score(QUERIES, [DOCS[0], DOCS[1][:2]])
    with pytest.raises(ValueError, match="2 queries and 1 lists"):
        ensemble.score(QUERIES, DOCS[:1])


def test_declared_type_must_match_the_checkpoint() -> None:
    with pytest.raises(ValueError, match="declared sparse but loads as a dense"):
        TeacherEnsemble([TeacherConfig(type="sparse", model="minilm-l6")], device="cpu")


# -- pre-computed scores: `sparse-tune score` ---------------------------------------------------


def test_parse_teacher_spec() -> None:
    from sparse_tune.cli.score import parse_teacher

    assert parse_teacher("dense:minilm-l6:0.5") == TeacherConfig(type="dense", model="minilm-l6", weight=0.5)
    assert parse_teacher("sparse:splade-tiny") == TeacherConfig(
        type="sparse", model="splade-tiny", weight=1.0
    )
    assert parse_teacher("sparse:C:/models/x:2") == TeacherConfig(
        type="sparse", model="C:/models/x", weight=2.0
    )
    assert parse_teacher("cross_encoder:org/reranker:2").type == "cross_encoder"
    with pytest.raises(ValueError, match="expected type:model"):
        parse_teacher("minilm-l6")
    with pytest.raises(ValueError, match="dense, sparse, cross_encoder"):
        parse_teacher("cross:some-model:1")


def test_score_cli_writes_rows_that_match_the_live_ensemble(
    ensemble: TeacherEnsemble, tmp_path: Path
) -> None:
    from sparse_tune.cli.__main__ import main
    from sparse_tune.data.teacher_scores import read_scored_jsonl

    mined = tmp_path / "mined.jsonl"
    rows = [
        {"query": QUERIES[0], "pos": [DOCS[0][0]], "neg": DOCS[0][1:]},
        {"query": QUERIES[1], "positive": DOCS[1][0], "negative": DOCS[1][1:]},  # another accepted spelling
        {"query": "no negatives here", "pos": ["x"]},  # skipped: nothing to contrast with
    ]
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    argv = ["score", "--input", str(mined), "--output", str(out), "--device", "cpu", "--score-scale", "10",
            "--teacher", "dense:minilm-l6:0.5", "--teacher", "sparse:splade-tiny:0.5", "--max-doc-length", "64",
            "--queries-per-batch", "1", "--docs-per-query", "3"]  # fmt: skip
    assert main(argv) == 0
    examples = read_scored_jsonl(out, docs_per_query=3)
    assert [e["docs"] for e in examples] == DOCS and [e["query"] for e in examples] == QUERIES
    live = ensemble.score(QUERIES, DOCS)
    assert torch.allclose(torch.tensor([e["scores"] for e in examples]), live, atol=1e-4)


def test_score_cli_reports_bad_input_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from sparse_tune.cli.__main__ import main

    mined = tmp_path / "mined.jsonl"
    mined.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q"\n', encoding="utf-8")
    code = main(
        [
            "score",
            "--input",
            str(mined),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--teacher",
            "dense:minilm-l6",
        ]
    )
    assert code == 2
    assert f"{mined}:2:" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
