"""Property-based tests (hypothesis) for the data loaders and the query tokenizer / IDF path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_tune.data.errors import DataError
from sparse_tune.data.formats import FORMATS, scan_training_jsonl
from sparse_tune.models.idf_query import IdfQueryEncoder

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Words the WordPiece vocabulary splits in different ways, special-token spellings, punctuation, accents.
WORDS = [
    "heart",
    "attack",
    "aspirin",
    "unbelievably",
    "x",
    "##ing",
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[MASK]",
    "[UNK]",
    ".",
    ",",
    "?",
    "café",
    "naïve",
    "日本",
    "covid-19",
    "",
    "  ",
    "\t",
]
query_texts = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sparse_tune.registry import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny"))


# -- the query tokenizer / IDF path ------------------------------------------------------------------


@SETTINGS
@given(
    texts=st.lists(query_texts, min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
    max_length=st.integers(2, 12),
)
def test_idf_query_vector_is_the_idf_of_each_distinct_non_special_token(tokenizer, texts, seed, max_length):
    vocab = len(tokenizer)
    rng = np.random.default_rng(seed)
    idf = torch.from_numpy(rng.uniform(-1.0, 5.0, vocab).astype(np.float32))  # some negative: clamped to 0
    special = set(tokenizer.all_special_ids)
    enc = IdfQueryEncoder(idf, tokenizer.all_special_ids)
    feats = dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    q = enc(feats)  # (batch, vocab)
    assert q.shape == (len(texts), vocab)
    assert (q >= 0).all() and torch.isfinite(q).all()
    for row, text in enumerate(texts):
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        want = {i for i in ids if i not in special}
        nonzero = set(torch.nonzero(q[row]).flatten().tolist())
        assert nonzero <= want  # only tokens of this text (never padding, never special tokens)
        for i in want:
            assert q[row, i].item() == max(idf[i].item(), 0.0)  # presence x relu(idf), not a count


@pytest.mark.filterwarnings("ignore:.*not in the tokenizer's vocabulary")
@SETTINGS
@given(
    weights=st.dictionaries(
        st.sampled_from(["heart", "attack", "aspirin", "x", ".", "##ing", "café"]),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
        max_size=7,
    ),
    default=st.floats(0, 10),
)
def test_idf_json_round_trips_into_the_query_encoder(tokenizer, tmp_path, weights, default):
    from sparse_tune.data.idf import load_idf, read_idf, save_idf

    path = tmp_path / "idf.json"
    save_idf(path, weights)
    assert read_idf(path) == weights
    table = load_idf(path, tokenizer, default=default)  # (vocab,)
    vocab = tokenizer.get_vocab()
    for token, w in weights.items():
        if token in vocab:
            assert table[vocab[token]].item() == pytest.approx(w, rel=1e-6)
    untouched = torch.ones(len(tokenizer), dtype=torch.bool)
    untouched[[vocab[t] for t in weights if t in vocab]] = False
    assert torch.all(table[untouched] == torch.tensor(default, dtype=torch.float32))


@SETTINGS
@given(
    weight=st.one_of(
        st.floats(max_value=-1e-12),
        st.just(float("nan")),
        st.just(float("inf")),
        st.just(float("-inf")),
        st.booleans(),
        st.text(max_size=3),
    )
)
def test_idf_json_never_accepts_a_negative_non_finite_or_non_number(tmp_path, weight):
    from sparse_tune.data.idf import read_idf

    path = tmp_path / "idf.json"
    path.write_text(json.dumps({"ok": 1.0, "bad": weight}))
    with pytest.raises(DataError) as info:
        read_idf(path)
    assert str(info.value).startswith(f"{path}: token 'bad': ")


# -- training JSONL loaders ---------------------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=20)
nonblank = text.filter(lambda s: s.strip() != "")


@st.composite
def spelled_records(draw):
    """A valid record in any accepted spelling, and the normalised example it must load as."""
    fmt = draw(st.sampled_from(FORMATS))
    query = draw(nonblank)
    pos = draw(st.lists(nonblank, min_size=1, max_size=3))
    neg = draw(st.lists(nonblank, max_size=3))
    blank_negs = draw(st.lists(st.sampled_from(["", " ", "\t"]), max_size=2))  # dropped on load
    record = {"query": query, fmt.pos_key: pos[0] if len(pos) == 1 and draw(st.booleans()) else pos}
    if neg or blank_negs or draw(st.booleans()):
        record[fmt.neg_key] = neg + blank_negs
    if draw(st.booleans()):
        record["extra"] = draw(st.integers())  # extra keys are ignored
    return record, {"query": query, "pos": pos, "neg": neg}


@SETTINGS
@given(
    rows=st.lists(spelled_records(), min_size=1, max_size=6),
    crlf=st.booleans(),
    bom=st.booleans(),
    blank_every=st.integers(0, 3),
)
def test_every_spelling_loads_as_its_normalised_example(tmp_path, rows, crlf, bom, blank_every):
    lines = []
    for i, (record, _) in enumerate(rows):
        if blank_every and i % blank_every == 0:
            lines.append("   ")
        lines.append(json.dumps(record, ensure_ascii=bool(i % 2)))
    nl = "\r\n" if crlf else "\n"
    path = tmp_path / "train.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (nl.join(lines) + nl).encode("utf-8"))
    examples, errors = scan_training_jsonl(path)
    assert errors == []
    assert examples == [expected for _, expected in rows]


junk_line = st.one_of(
    st.text(max_size=40),
    st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["query", "pos", "neg", "positive", "negative", "pos_doc", "negs", "x"]),
                    children,
                    max_size=4,
                )
            ),
            max_leaves=8,
        ),
    ),
)


@SETTINGS
@given(lines=st.lists(junk_line, min_size=1, max_size=8))
def test_any_line_is_either_an_example_or_one_data_error_with_its_line(tmp_path, lines):
    lines = [line.replace("\r", " ").replace("\n", " ") for line in lines]  # one record per physical line
    path = tmp_path / "junk.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples, errors = scan_training_jsonl(path)  # never raises for a line
    nonblank_lines = [i + 1 for i, line in enumerate(lines) if line.strip()]
    assert len(examples) + len(errors) == len(nonblank_lines)
    for err in errors:
        assert isinstance(err, DataError) and err.path == str(path) and err.line in nonblank_lines
        assert "\n" not in str(err) and str(err).startswith(f"{path}:{err.line}: ")
    for ex in examples:
        assert isinstance(ex["query"], str) and ex["query"].strip()
        assert ex["pos"] and all(isinstance(p, str) and p.strip() for p in ex["pos"])
        assert all(isinstance(n, str) and n.strip() for n in ex["neg"])


# -- BEIR corpus loader -------------------------------------------------------------------------------


@SETTINGS
@given(
    docs=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and s),
        st.tuples(st.text(max_size=10), text),
        min_size=1,
        max_size=6,
    ),
    crlf=st.booleans(),
    int_ids=st.booleans(),
)
def test_corpus_jsonl_round_trip(tmp_path, docs, crlf, int_ids):
    from sparse_tune.data.beir import read_corpus_jsonl

    if int_ids:
        docs = {str(i): v for i, v in enumerate(docs.values())}
    nl = "\r\n" if crlf else "\n"
    rows = [
        json.dumps({"_id": int(d) if int_ids else d, "title": t, "text": x}) for d, (t, x) in docs.items()
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes((nl.join(rows) + nl).encode("utf-8"))
    corpus = read_corpus_jsonl(path)
    assert corpus.ids == list(docs)
    assert corpus.texts == [(t + " " + x).strip() for t, x in docs.values()]
    assert corpus.titles == [t for t, _ in docs.values()]
