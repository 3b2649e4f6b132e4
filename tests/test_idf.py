"""Corpus IDF with the model's tokenizer, the idf.json format, and the `idf` CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_tune.data.errors import DataError
from sparse_tune.data.idf import (
    MISSING_TOKEN_WEIGHT,
    compute_idf,
    document_frequencies,
    excluded_token_ids,
    idf_table,
    idf_weight,
    load_idf,
    read_idf,
    save_idf,
)

MINI = Path(__file__).resolve().parents[1] / "examples" / "scifact-mini"


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from sparse_tune.registry import ModelPackageMissing, resolve_model_path

    try:
        return AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny"))
    except ModelPackageMissing as e:
        pytest.skip(str(e))


def test_hand_computed_idf(tokenizer):
    idf = compute_idf(["the cat", "the dog", "a cat cat"], tokenizer)
    assert idf["cat"] == pytest.approx(math.log(1 + (3 - 2 + 0.5) / (2 + 0.5)))  # df 2, counted once per doc
    assert idf["dog"] == pytest.approx(math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)))
    assert idf["zebra"] == pytest.approx(math.log(1 + 3.5 / 0.5))  # unseen: idf(df=0)
    for special in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"):
        assert special not in idf
    assert len(idf) == len(tokenizer) - len(set(tokenizer.all_special_ids))
    seen = compute_idf(["the cat", "the dog", "a cat cat"], tokenizer, include_unseen=False)
    assert set(seen) == {"the", "cat", "dog", "a"}


def test_special_tokens_in_text_are_not_counted(tokenizer):
    df = document_frequencies(["[SEP] word [CLS]"], tokenizer)
    assert df[tokenizer.sep_token_id] == 0 and df[tokenizer.cls_token_id] == 0
    assert df[tokenizer.convert_tokens_to_ids("word")] == 1


def test_excluded_tokens_are_the_special_ones(tokenizer):
    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert excluded_token_ids(tokenizer, len(tokenizer)) == [0, 100, 101, 102, 103]
    assert tokenizer.convert_ids_to_tokens([0, 100, 101, 102, 103]) == names
    assert excluded_token_ids(tokenizer, 101) == [0, 100]  # ids past the model's vocabulary are dropped


def test_idf_table_keeps_every_other_token_and_its_weight():
    class Tok:
        all_special_ids = [0, 3, 99]

    table = idf_table(["[PAD]", "a", "b", "[SEP]"], [5.0, 1.5, 0.0, 2.0], Tok())
    assert table == {"a": 1.5, "b": 0.0}
    with pytest.raises(ValueError):  # vocabulary and weights of different lengths
        idf_table(["a", "b"], [1.0], Tok())


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10**7), st.data())
def test_idf_positive_finite_and_decreasing_in_df(n_docs, data):
    df1 = data.draw(st.integers(min_value=0, max_value=n_docs - 1))
    df2 = data.draw(st.integers(min_value=df1 + 1, max_value=n_docs))
    w = idf_weight(np.array([df1, df2]), n_docs)
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    assert w[0] > w[1]


WORDS = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join), min_size=1, max_size=12))
def test_compute_idf_matches_brute_force_document_frequency(tokenizer, docs):
    idf = compute_idf(docs, tokenizer, batch_size=5)
    for word in WORDS:
        df = sum(word in doc.split() for doc in docs)
        assert idf[word] == pytest.approx(math.log(1 + (len(docs) - df + 0.5) / (df + 0.5)))
        assert idf[word] > 0


def test_save_load_round_trip_and_default(tmp_path, tokenizer):
    path = tmp_path / "idf.json"
    save_idf(path, {"cat": 2.5, "dog": 0.0, "[PAD]": 0.5})
    assert json.loads(path.read_text()) == {"cat": 2.5, "dog": 0.0, "[PAD]": 0.5}
    w = load_idf(path, tokenizer)
    assert tuple(w.shape) == (len(tokenizer),)
    assert w[tokenizer.convert_tokens_to_ids("cat")] == 2.5
    assert w[tokenizer.convert_tokens_to_ids("dog")] == 0.0
    assert w[tokenizer.convert_tokens_to_ids("zebra")] == MISSING_TOKEN_WEIGHT == 1.0
    assert load_idf(path, tokenizer, default=0.0)[tokenizer.convert_tokens_to_ids("zebra")] == 0.0


@pytest.mark.parametrize(
    "bad", ['{"cat": -1.0}', '{"cat": NaN}', '{"cat": Infinity}', '{"cat": "2"}', '{"cat": true}']
)
def test_bad_weights_name_the_token(tmp_path, tokenizer, bad):
    path = tmp_path / "idf.json"
    path.write_text(bad)
    with pytest.raises(DataError, match="token 'cat'"):
        load_idf(path, tokenizer)


def test_bad_files(tmp_path):
    path = tmp_path / "idf.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_idf(path)
    path.write_text('{"a": 1,\n "b": }')
    with pytest.raises(DataError, match="malformed JSON") as err:
        read_idf(path)
    assert err.value.line == 2
    with pytest.raises(DataError, match="not found"):
        read_idf(tmp_path / "none.json")
    with pytest.raises(DataError, match="token 'x'"):
        save_idf(path, {"x": float("nan")})


def test_tokens_outside_the_vocabulary_warn(tmp_path, tokenizer):
    path = tmp_path / "idf.json"
    save_idf(path, {"cat": 1.5, "▁katze": 3.0})
    with pytest.warns(UserWarning, match="1 of 2 tokens are not in the tokenizer's vocabulary"):
        w = load_idf(path, tokenizer)
    assert w[tokenizer.convert_tokens_to_ids("cat")] == 1.5


def test_cli_writes_idf_json(tmp_path, tokenizer):
    from sparse_tune.cli.__main__ import main

    out = tmp_path / "idf.json"
    assert main(["idf", "--corpus", str(MINI), "--tokenizer", "splade-tiny", "--output", str(out)]) == 0
    idf = read_idf(out)
    assert idf["the"] < idf["protein"] < idf["zebra"]
    assert (
        main(
            ["idf", "--corpus", str(tmp_path / "missing"), "--tokenizer", "splade-tiny", "--output", str(out)]
        )
        == 2
    )


def test_cli_registers_with_subparsers():
    import argparse

    from sparse_tune.cli import idf, mine

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    idf.add_parser(sub)
    mine.add_parser(sub)
    args = parser.parse_args(["idf", "--corpus", "c", "--tokenizer", "t", "--output", "o"])
    assert args.func is idf.run
    args = parser.parse_args(["mine", "--dataset", "d", "--output", "o", "--range", "3-50"])
    assert args.func is mine.run and args.rank_range == (3, 50) and args.method == "bm25"
