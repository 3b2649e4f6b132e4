"""Each head against a hand computation: SPLADE pooling and masking, IDF query vectors, dense pooling."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForMaskedLM

from sparse_tune.models.activations import log1p_log1p_relu, log1p_relu
from sparse_tune.models.dense import DenseEncoder
from sparse_tune.models.idf_query import IdfQueryEncoder
from sparse_tune.registry import ModelPackageMissing, resolve_model_path


def test_activations_hand_computed():
    x = torch.tensor([-1.0, 0.0, 1.0, math.e - 1])
    assert torch.allclose(log1p_relu(x), torch.tensor([0.0, 0.0, math.log(2), 1.0]))
    assert torch.allclose(log1p_log1p_relu(x), torch.tensor([0.0, 0.0, math.log1p(math.log(2)), math.log(2)]))


def test_splade_head_equals_plain_mlm_logits_with_padding(splade_tiny):
    """Our head (fused pooling on a deferred projection) == HF logits -> log1p(relu) -> masked max."""
    texts = [
        "aspirin and heart attack risk",
        "a much longer document about vitamin d and bone density in adults",
    ]
    feats = splade_tiny.tokenize(texts, "document")
    assert feats["attention_mask"][0].sum() < feats["attention_mask"][1].sum()  # row 0 is padded
    ours = splade_tiny.encode_document(feats)  # (2, vocab)
    plain = AutoModelForMaskedLM.from_pretrained(resolve_model_path("splade-tiny")).eval()
    with torch.no_grad():
        logits = plain(**feats).logits  # (2, seq, vocab)
        ref = (torch.log1p(torch.relu(logits)) * feats["attention_mask"].unsqueeze(-1)).amax(1)
        # Padding must not leak: pooling only over the real tokens of row 0 gives the same vector.
        n = int(feats["attention_mask"][0].sum())
        row0 = torch.log1p(torch.relu(logits[0, :n])).amax(0)
    splade_tiny.eval()
    with torch.no_grad():
        ours = splade_tiny.encode_document(feats)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(ours[0], row0, atol=1e-5)
    assert (ours >= 0).all()
    assert 0 < int((ours[0] > 0).sum()) < 500


def test_idf_query_vector_hand_computed(splade_tiny):
    tok = splade_tiny.tokenizer
    vocab = tok.get_vocab()
    idf = torch.zeros(len(vocab))
    idf[vocab["heart"]] = 2.5
    idf[vocab["attack"]] = 1.5
    idf[vocab["[CLS]"]] = 9.0  # special tokens never contribute
    enc = IdfQueryEncoder(idf, tok.all_special_ids)
    feats = dict(tok(["heart heart attack", "attack"], padding=True, return_tensors="pt"))
    q = enc(feats)  # (2, vocab)
    assert q[0, vocab["heart"]].item() == 2.5  # presence, not count
    assert q[0, vocab["attack"]].item() == 1.5
    assert q[0].sum().item() == pytest.approx(4.0)
    assert q[1].sum().item() == pytest.approx(1.5)  # padding positions do not count
    assert q[:, vocab["[CLS]"]].sum().item() == 0.0


def test_idf_query_trainable_flag_and_nonnegative():
    idf = torch.tensor([1.0, -2.0, 3.0])
    enc = IdfQueryEncoder(idf, special_ids=[0], trainable=True)
    assert enc.idf.requires_grad
    feats = {"input_ids": torch.tensor([[0, 1, 2]]), "attention_mask": torch.tensor([[1, 1, 1]])}
    out = enc(feats)
    assert out.tolist() == [[0.0, 0.0, 3.0]]  # special id 0 excluded, negative weight clamped
    assert not IdfQueryEncoder(idf, [0]).idf.requires_grad


class _FakeBackbone(torch.nn.Module):
    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, **_: torch.Tensor):
        return type("Out", (), {"last_hidden_state": self.hidden})()


def test_dense_pooling_hand_computed():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # last token is padding
    mask = torch.tensor([[1, 1, 0]])
    feats = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": mask}
    assert DenseEncoder(_FakeBackbone(hidden), "cls")(feats).tolist() == [[1.0, 2.0]]
    assert DenseEncoder(_FakeBackbone(hidden), "mean")(feats).tolist() == [[2.0, 3.0]]
    normed = DenseEncoder(_FakeBackbone(hidden), "mean", normalize=True)(feats)
    assert torch.allclose(normed, torch.tensor([[2.0, 3.0]]) / math.sqrt(13))


def test_registry_names_and_missing_package(monkeypatch):
    assert resolve_model_path("some/hub-id") == "some/hub-id"
    import sparse_tune.registry as reg

    monkeypatch.setitem(reg.MODELS, "ghost", reg.PackagedModel("no_such_pkg_xyz", "no-such-pkg", "model", ""))
    with pytest.raises(ModelPackageMissing, match="pip install no-such-pkg"):
        resolve_model_path("ghost")
