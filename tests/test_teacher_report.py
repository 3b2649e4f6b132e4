"""Cross-encoder teachers, the teacher report of `sparse-tune score --evaluate`, bad teacher specs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sparse_tune.cli.__main__ import main
from sparse_tune.registry import resolve_model_path
from sparse_tune.training.cross_encoder import CrossEncoderTeacher
from sparse_tune.training.teacher_report import ENSEMBLE, format_report, rerank_report
from sparse_tune.training.teachers import TeacherConfig, TeacherEnsemble

QUERY = "what causes malaria"
DOCS = [
    "Malaria is caused by Plasmodium parasites that mosquitoes transmit to humans.",
    "The stock market closed higher on Friday after strong earnings.",
    "Pasta should be boiled in plenty of salted water.",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 1-layer BERT reranker built from a config, saved with splade-tiny's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=1,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("cross") / "ce"
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny")).save_pretrained(folder)
    return str(folder)


def test_cross_encoder_teacher_scores_each_pair_with_the_models_logit(tiny_cross_encoder: str) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    ensemble = TeacherEnsemble(
        [TeacherConfig(type="cross_encoder", model=tiny_cross_encoder)], device="cpu", batch_size=2
    )
    assert isinstance(ensemble.models[0], CrossEncoderTeacher)
    assert not ensemble.models[0].training and not any(
        p.requires_grad for p in ensemble.models[0].parameters()
    )
    (raw,) = ensemble.teacher_scores([QUERY, QUERY], [DOCS, [DOCS[2], DOCS[0], DOCS[2]]])
    assert raw.shape == (2, 3)
    # Repeated (query, doc) pairs are scored once, so they are bit-identical.
    assert raw[0, 0] == raw[1, 1] and raw[0, 2] == raw[1, 0] == raw[1, 2]
    tokenizer = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder).eval()
    with torch.no_grad():
        for j, doc in enumerate(DOCS):  # one pair at a time, no padding
            expected = model(**tokenizer(QUERY, doc, return_tensors="pt")).logits[0, 0]
            assert raw[0, j].item() == pytest.approx(expected.item(), abs=1e-5)


def test_two_label_cross_encoder_scores_the_log_odds(tiny_cross_encoder: str, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_cross_encoder, num_labels=2)
    torch.manual_seed(1)
    two = AutoModelForSequenceClassification.from_config(config)
    two.save_pretrained(tmp_path / "two")
    AutoTokenizer.from_pretrained(tiny_cross_encoder).save_pretrained(tmp_path / "two")
    teacher = CrossEncoderTeacher(str(tmp_path / "two"), torch.device("cpu"))
    scores = teacher.score_pairs([QUERY], [DOCS[0]], batch_size=4)
    with torch.no_grad():
        logits = two.eval()(**teacher.tokenizer(QUERY, DOCS[0], return_tensors="pt")).logits[0]
    assert scores.item() == pytest.approx((logits[1] - logits[0]).item(), abs=1e-5)


def test_rerank_report_by_hand(monkeypatch: pytest.MonkeyPatch, tiny_cross_encoder: str) -> None:
    ensemble = TeacherEnsemble(
        [
            TeacherConfig("cross_encoder", tiny_cross_encoder, 1.0),
            TeacherConfig("cross_encoder", tiny_cross_encoder, 3.0),
        ],
        score_scale=1.0,
        device="cpu",
    )
    # Two examples, positive first: teacher a ranks each positive 1st; teacher b ranks it 3rd.
    a = torch.tensor([[3.0, 2.0, 1.0], [5.0, 4.0, 0.0]])
    b = torch.tensor([[0.0, 2.0, 1.0], [0.0, 9.0, 8.0]])
    monkeypatch.setattr(ensemble, "teacher_scores", lambda q, d: [a[: len(q)], b[: len(q)]])
    examples = [
        {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"]},
        {"query": "q2", "pos": ["p2"], "neg": ["n3", "n4"]},
        {"query": "q3", "pos": ["p3"], "neg": []},  # nothing to rank: left out
    ]
    report = rerank_report(ensemble, examples, queries_per_batch=8)
    label = f"cross_encoder:{tiny_cross_encoder}"
    assert list(report) == [label, f"{label}#2", ENSEMBLE]
    assert report[label]["nDCG@10"] == pytest.approx(1.0)
    third = 1 / math.log2(4)  # one relevant document at rank 3
    assert report[f"{label}#2"]["nDCG@10"] == pytest.approx(third)
    assert report[f"{label}#2"]["MRR@10"] == pytest.approx(1 / 3)
    # ensemble = 1 * minmax(a) + 3 * minmax(b): q1 [1, 3.5, 1.5] -> positive 3rd;
    # q2 [1, 3.8, 3] -> positive 3rd.
    assert report[ENSEMBLE]["nDCG@10"] == pytest.approx(third)
    table = format_report(report)
    assert table.splitlines()[0].split() == ["teacher", "nDCG@10", "MRR@10"]
    assert f"{ENSEMBLE}" in table.splitlines()[-1] and "0.5000" in table.splitlines()[-1]


def test_score_evaluate_writes_the_report(tiny_cross_encoder: str, tmp_path: Path, capsys) -> None:
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps({"query": QUERY, "pos": [DOCS[0]], "neg": DOCS[1:]}) + "\n", encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    argv = ["score", "--input", str(mined), "--output", str(out), "--device", "cpu", "--evaluate",
            "--teacher", f"cross_encoder:{tiny_cross_encoder}:1", "--teacher", "sparse:splade-tiny:1"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "scored.jsonl.teachers.json").read_text())
    assert set(report) == {f"cross_encoder:{tiny_cross_encoder}", "sparse:splade-tiny", ENSEMBLE}
    assert report["sparse:splade-tiny"]["nDCG@10"] == pytest.approx(1.0)  # the obvious positive wins
    assert "teacher report:" in capsys.readouterr().out
    row = json.loads(out.read_text().splitlines()[0])
    assert len(row["scores"]) == 3 and max(row["scores"]) <= 60.0 + 1e-4  # default score_scale 30, 2 teachers


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bm99:minilm-l6", "unknown teacher type 'bm99'"),
        ("minilm-l6", "expected type:model"),
        ("dense:minilm-l6:-1", "weight must be a finite number >= 0"),
        ("dense:/no/such/model/folder", "dense teacher '/no/such/model/folder' cannot be loaded"),
    ],
)
def test_bad_teacher_specs_are_one_line_and_exit_2(spec: str, message: str, tmp_path: Path, capsys) -> None:
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps({"query": QUERY, "pos": [DOCS[0]], "neg": DOCS[1:]}) + "\n", encoding="utf-8")
    code = main(["score", "--input", str(mined), "--output", str(tmp_path / "o.jsonl"), "--teacher", spec])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("sparse-tune score: error:") and not (tmp_path / "o.jsonl").exists()


def test_teacher_weights_must_sum_to_a_positive_number(tmp_path: Path, capsys) -> None:
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps({"query": QUERY, "pos": [DOCS[0]], "neg": DOCS[1:]}) + "\n", encoding="utf-8")
    argv = ["score", "--input", str(mined), "--output", str(tmp_path / "o.jsonl"),
            "--teacher", "dense:minilm-l6:0", "--teacher", "sparse:splade-tiny:0"]  # fmt: skip
    assert main(argv) == 2
    assert "teacher weights must sum to a positive number, got [0.0, 0.0]" in capsys.readouterr().err
    from sparse_tune.config import ConfigError, LossConfig

    with pytest.raises(ConfigError, match="unknown teacher type 'bm99'"):
        LossConfig(loss="kl", teachers=[{"type": "bm99", "model": "x"}])


def test_bm25_teacher_scores_like_the_embedded_bm25_index() -> None:
    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.index.bm25 import BM25Index

    mini = Path(__file__).resolve().parent.parent / "examples" / "scifact-mini"
    corpus = load_corpus_any(mini)
    ensemble = TeacherEnsemble([TeacherConfig(type="bm25", model=str(mini))], device="cpu")
    queries = ["vitamin d deficiency and bone fractures", "aspirin lowers the risk of heart attack"]
    docs = [corpus.texts[:3], [corpus.texts[5], "aspirin heart attack risk", corpus.texts[0]]]
    (raw,) = ensemble.teacher_scores(queries, docs)
    full = BM25Index(corpus.texts).score(queries)  # (2, n_docs): the index's own scores
    expected0 = full[0, :3]
    assert raw[0].tolist() == pytest.approx(expected0.tolist(), rel=1e-6, abs=1e-6)
    assert raw[1, 0].item() == pytest.approx(float(full[1, 5]), rel=1e-6, abs=1e-6)
    assert raw[1, 2].item() == pytest.approx(float(full[1, 0]), rel=1e-6, abs=1e-6)
    assert raw[1, 1] > raw[1, 0] and raw[1, 1] > 0  # a text outside the corpus is scored with its statistics


def test_bm25_pair_scores_by_hand() -> None:
    from sparse_tune.index.bm25 import BM25Index

    index = BM25Index(["cats chase mice", "dogs chase cats", "birds sing"])  # avgdl = 8 / 3
    # "cat" is in 2 of 3 documents: idf = log(1 + (3 - 2 + 0.5) / (2 + 0.5)) = log(1.6)
    idf = math.log(1.6)
    # a new text "cat" (dl 1): tf 1 / (1 + 1.2 * (1 - 0.75 + 0.75 * 1 / (8 / 3)))
    expected = idf * 1 / (1 + 1.2 * (0.25 + 0.75 * 3 / 8))
    (score,) = index.score_pairs(["cats"], ["a cat"]).tolist()  # "a" is a stop word
    assert score == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="one text per query"):
        index.score_pairs(["a", "b"], ["c"])
