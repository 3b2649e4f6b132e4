"""Save -> load gives identical encodings, for every head; broken folders give a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparse_tune.models import CheckpointError, load_model
from sparse_tune.models.inference import encode_texts

TEXTS = ["aspirin lowers the risk of heart attack", "vitamin d", "bone density in older adults and fractures"]


def _encode(model, side):
    return encode_texts(model, ["a", "b", "c"], TEXTS, side, batch_size=2, progress=False).matrix


def _same(a, b):
    """Encodings of one set of weights: equal within fp32 tolerance, not bit for bit.

    The same weights can encode differently in the last bits when the tensors land at other
    addresses or another CPU runs the GEMMs (AMX / AVX-512 / AVX2, 1 or 2 threads): up to
    ~5e-7 was seen on an AMD EPYC. The saved weights themselves are checked bit for bit
    (``_same_weights``), which is what save/load promises.
    """
    if hasattr(a, "toarray"):
        a, b = a.toarray(), b.toarray()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _same_weights(a, b):
    """Every tensor of the state dict is bit-identical after the round trip."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_splade_round_trip(splade_tiny, tmp_path):
    with torch.no_grad():
        splade_tiny.backbone.cls.predictions.transform.dense.bias.add_(0.01)  # differ from the base
    splade_tiny.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "sparse_tune.json").read_text())
    assert saved["head"] == "splade" and saved["activation"] == "log1p_relu"
    again = load_model(str(tmp_path / "m"))
    assert again.head_name == "splade"
    _same_weights(splade_tiny, again)
    _same(_encode(splade_tiny, "document"), _encode(again, "document"))
    _same(_encode(splade_tiny, "query"), _encode(again, "query"))


def test_inference_free_round_trip_with_trained_idf(tmp_path):
    idf = {"risk": 3.0, "heart": 2.0, "vitamin": 1.25}
    (tmp_path / "idf.json").write_text(json.dumps(idf))
    model = load_model(
        "splade-tiny", head="inference_free", idf_path=str(tmp_path / "idf.json"), train_idf=True
    )
    assert model.idf.requires_grad
    with torch.no_grad():
        model.idf[model.tokenizer.convert_tokens_to_ids("heart")] = 0.0  # a trained-away token
    q = _encode(model, "query")
    model.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    assert again.head_name == "inference_free"
    _same_weights(model, again)
    np.testing.assert_array_equal(q.toarray(), _encode(again, "query").toarray())  # IDF lookup: exact
    _same(q, _encode(again, "query"))
    _same(_encode(model, "document"), _encode(again, "document"))
    row = q[0].toarray().ravel()
    assert row[model.tokenizer.convert_tokens_to_ids("risk")] == pytest.approx(3.0)
    assert row[model.tokenizer.convert_tokens_to_ids("heart")] == 0.0


def test_dense_minilm_settings_from_sentence_transformers_folder(tmp_path):
    model = load_model("minilm-l6")
    assert (model.head_name, model.config.pooling, model.config.normalize) == ("dense", "mean", True)
    emb = _encode(model, "document")
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    from sentence_transformers import SentenceTransformer

    from sparse_tune.registry import resolve_model_path

    st = SentenceTransformer(resolve_model_path("minilm-l6"), device="cpu")
    np.testing.assert_allclose(st.encode(TEXTS), emb, atol=1e-5)
    model.save_pretrained(tmp_path / "d")
    again = load_model(str(tmp_path / "d"))
    _same_weights(model, again)
    _same(emb, _encode(again, "document"))


def test_inference_free_without_idf_is_a_clear_error():
    with pytest.raises(CheckpointError, match="sparse-tune idf"):
        load_model("splade-tiny", head="inference_free")


def test_checkpoint_missing_weights_is_a_clear_error(splade_tiny, tmp_path):
    splade_tiny.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_model(str(tmp_path / "m"))
