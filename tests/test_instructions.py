"""query_instruction / doc_instruction: applied wherever texts are tokenised, saved, exported; refused for inference-free."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparse_tune.config import ConfigError, ModelConfig, load_train_config
from sparse_tune.models.inference import encode_texts
from sparse_tune.models.io import CheckpointError, load_model

QI, DI = "Represent this sentence for searching relevant passages: ", "passage: "


def _instructed(model):
    model.config.query_instruction, model.config.doc_instruction = QI, DI
    return model


def test_tokenize_puts_each_side_instruction_in_front(splade_tiny):
    model = _instructed(splade_tiny)
    q = model.tokenize(["aspirin"], "query")
    assert (
        q["input_ids"].tolist()
        == model.tokenizer([QI + "aspirin"], return_tensors="pt")["input_ids"].tolist()
    )
    d = model.tokenize(["aspirin"], "document")
    assert (
        d["input_ids"].tolist()
        == model.tokenizer([DI + "aspirin"], return_tensors="pt")["input_ids"].tolist()
    )


def test_encoding_with_instructions_equals_encoding_the_prefixed_texts(splade_tiny):
    texts = ["aspirin and the heart", "vitamin d"]
    plain = encode_texts(splade_tiny, ["a", "b"], [QI + t for t in texts], "query", progress=False)
    instructed = encode_texts(_instructed(splade_tiny), ["a", "b"], texts, "query", progress=False)
    np.testing.assert_allclose(instructed.matrix.toarray(), plain.matrix.toarray(), rtol=1e-5, atol=1e-5)


def test_instructions_are_saved_and_read_back(splade_tiny, tmp_path):
    _instructed(splade_tiny).save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "sparse_tune.json").read_text())
    assert (saved["query_instruction"], saved["doc_instruction"]) == (QI, DI)
    again = load_model(str(tmp_path / "m"))
    assert (again.config.query_instruction, again.config.doc_instruction) == (QI, DI)


def test_no_instruction_keeps_the_settings_file_as_it_was(splade_tiny, tmp_path):
    splade_tiny.save_pretrained(tmp_path / "m")
    assert "query_instruction" not in json.loads((tmp_path / "m" / "sparse_tune.json").read_text())


def test_recipe_keys_reach_the_model_config():
    cfg = load_train_config(None, {"query_instruction": QI, "doc_instruction": DI, "train_file": "x.jsonl"})
    assert (cfg.model.query_instruction, cfg.model.doc_instruction) == (QI, DI)


def test_inference_free_refuses_a_query_instruction(tmp_path):
    with pytest.raises(ConfigError, match="^query_instruction cannot apply to an inference_free model"):
        ModelConfig(head="inference_free", query_instruction=QI)
    ModelConfig(head="inference_free", doc_instruction=DI)  # documents are encoded: fine
    idf = tmp_path / "idf.json"
    idf.write_text(json.dumps({"aspirin": 2.0}))
    with pytest.raises((CheckpointError, ConfigError), match="its queries are not encoded"):
        load_model("splade-tiny", head="inference_free", idf_path=str(idf), query_instruction=QI)


def test_sentence_transformers_export_writes_the_prompts(splade_tiny, tmp_path):
    from sparse_tune.export.sentence_transformers import export_sentence_transformers

    export_sentence_transformers(_instructed(splade_tiny), tmp_path / "st", card="card")
    config = json.loads((tmp_path / "st" / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": QI, "document": DI}


def test_opensearch_ingest_pipeline_applies_the_document_instruction():
    from sparse_tune.export.opensearch import INSTRUCTED_FIELD, OpenSearchNames, ingest_pipeline_body

    names = OpenSearchNames(model_name="m")
    plain = ingest_pipeline_body(names)
    assert [list(p) for p in plain["processors"]] == [["sparse_encoding"]]
    body = ingest_pipeline_body(names, DI)
    script, encode, remove = body["processors"]
    assert script["script"]["params"] == {
        "instruction": DI,
        "source": "passage_text",
        "target": INSTRUCTED_FIELD,
    }
    assert encode["sparse_encoding"]["field_map"] == {INSTRUCTED_FIELD: "passage_embedding"}
    assert remove == {"remove": {"field": INSTRUCTED_FIELD}}


@pytest.mark.slow
def test_opensearch_bundle_carries_the_instructions(splade_tiny, tmp_path):
    from sparse_tune.export.opensearch import OpenSearchNames, export_opensearch

    bundle = export_opensearch(_instructed(splade_tiny), tmp_path / "os", OpenSearchNames(model_name="m"))
    assert json.loads(bundle.bodies["instructions.json"].read_text()) == {
        "query_instruction": QI,
        "doc_instruction": DI,
    }
    query = json.loads(bundle.bodies["query.json"].read_text())
    assert query["query"]["neural_sparse"]["passage_embedding"]["query_text"].startswith(QI)
    assert "query instruction" in (tmp_path / "os" / "README.md").read_text()
