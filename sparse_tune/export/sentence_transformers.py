"""sentence-transformers folders, written by hand (the package never imports sentence_transformers).

Layouts, as sentence-transformers' own ``save_pretrained`` writes them (module ``type`` paths
are the v5 names, which v5 loads directly and v6 maps through its deprecated-import table):

* SPLADE -> ``SparseEncoder``: ``modules.json`` = [MLMTransformer at the root, ``1_SpladePooling``].
* inference-free -> ``SparseEncoder``: one ``Router`` (``router_config.json``) whose ``query``
  route is a ``SparseStaticEmbedding`` (``query_0_SparseStaticEmbedding/``: tokenizer +
  ``model.safetensors`` with one ``weight`` of shape ``(vocab,)``) and whose ``document`` route
  is MLMTransformer + SpladePooling (``document_0_MLMTransformer/``, ``document_1_SpladePooling/``).
* dense -> ``SentenceTransformer``: [Transformer at the root, ``1_Pooling``, ``2_Normalize``?].

Equivalences this relies on (checked in tests/test_export.py):

* ``SpladePooling(activation_function="relu")`` is log1p(relu(x)) = our ``log1p_relu``;
  its ``"log1p_relu"`` applies log1p twice = our ``log1p_log1p_relu``.
* ``SparseStaticEmbedding`` tokenises *without* special tokens and truncates at the tokenizer's
  ``model_max_length``; we add [CLS]/[SEP], truncate at ``max_query_length`` and zero the special
  columns. So its tokenizer gets ``model_max_length = max_query_length - specials`` and its
  weights get zeros at special ids, which makes the two identical.
* Transformer modules truncate at ``max_seq_length``: ``max_doc_length`` for the document side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparse_tune.data.idf import excluded_token_ids
from sparse_tune.fsio import atomic_path, atomic_write_text
from sparse_tune.models.retriever import SETTINGS_FILE, Retriever

#: Oldest sentence-transformers that reads these layouts (SparseEncoder and Router appeared in v5.0).
LAYOUT_VERSION = "5.0.0"

MLM_TRANSFORMER = "sentence_transformers.sparse_encoder.models.MLMTransformer"
SPLADE_POOLING = "sentence_transformers.sparse_encoder.models.SpladePooling"
SPARSE_STATIC_EMBEDDING = "sentence_transformers.sparse_encoder.models.SparseStaticEmbedding"
ROUTER = "sentence_transformers.models.Router"
TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"

#: our activation -> SpladePooling's ``activation_function``
SPLADE_ACTIVATION = {"log1p_relu": "relu", "log1p_log1p_relu": "log1p_relu"}


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def save_tokenizer(tokenizer, folder: Path, model_max_length: int) -> None:
    """Save the tokenizer and pin ``model_max_length`` (what sentence-transformers truncates at)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    cfg["model_max_length"] = int(model_max_length)
    _write_json(cfg_path, cfg)


def _save_transformer(model: Retriever, folder: Path, max_seq_length: int) -> None:
    """Backbone weights + config + tokenizer + ``sentence_bert_config.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(model.tokenizer, folder, max_seq_length)
    _write_json(
        folder / "sentence_bert_config.json", {"max_seq_length": int(max_seq_length), "do_lower_case": False}
    )


def _splade_pooling_config(model: Retriever) -> dict[str, Any]:
    activation = model.config.activation
    if activation not in SPLADE_ACTIVATION:
        raise ValueError(f"activation {activation!r} has no sentence-transformers SpladePooling equivalent")
    return {"pooling_strategy": "max", "activation_function": SPLADE_ACTIVATION[activation]}


def _st_config(model_type: str, similarity: str, model: Retriever | None = None) -> dict[str, Any]:
    """``config_sentence_transformers.json``; the instructions become its ``query`` / ``document`` prompts,
    which sentence-transformers' ``encode_query`` / ``encode_document`` put before the texts."""
    prompts = {"query": "", "document": ""}
    if model is not None:
        prompts = {
            "query": model.config.query_instruction or "",
            "document": model.config.doc_instruction or "",
        }
    return {
        "model_type": model_type,
        "__version__": {
            "sentence_transformers": LAYOUT_VERSION,
            "transformers": _version("transformers"),
            "pytorch": torch.__version__,
        },
        "prompts": prompts,
        "default_prompt_name": None,
        "similarity_fn_name": similarity,
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def static_query_weights(model: Retriever) -> torch.Tensor:
    """The inference-free query table as SparseStaticEmbedding needs it: relu(idf), 0 at special ids."""
    weight = torch.relu(model.idf.detach().float().cpu()).clone()  # (vocab,)
    weight[excluded_token_ids(model.tokenizer, weight.shape[0])] = 0.0
    return weight


def _save_static_embedding(model: Retriever, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    n_special = model.tokenizer.num_special_tokens_to_add(pair=False)
    save_tokenizer(model.tokenizer, folder, max(1, model.config.max_query_length - n_special))
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({"weight": static_query_weights(model).contiguous()}, str(tmp))
    _write_json(folder / "config.json", {"frozen": not model.config.train_idf})


def _module(idx: int, path: str, type_: str) -> dict[str, Any]:
    return {"idx": idx, "name": str(idx), "path": path, "type": type_}


def export_sentence_transformers(model: Retriever, output: str | Path, card: str) -> list[Path]:
    """Write a folder that ``SparseEncoder`` (sparse) or ``SentenceTransformer`` (dense) loads."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    head = model.head_name
    max_doc = model.config.max_doc_length
    if head == "splade":
        _save_transformer(model, out, max_doc)
        _write_json(out / "1_SpladePooling" / "config.json", _splade_pooling_config(model))
        _write_json(
            out / "modules.json",
            [_module(0, "", MLM_TRANSFORMER), _module(1, "1_SpladePooling", SPLADE_POOLING)],
        )
        _write_json(out / "config_sentence_transformers.json", _st_config("SparseEncoder", "dot", model))
        # Our own loader reads the root as a normal sparse_tune checkpoint too.
        _write_json(out / SETTINGS_FILE, model.settings())
    elif head == "inference_free":
        query_dir, doc_dir, pool_dir = (
            "query_0_SparseStaticEmbedding",
            "document_0_MLMTransformer",
            "document_1_SpladePooling",
        )
        _save_static_embedding(model, out / query_dir)
        _save_transformer(model, out / doc_dir, max_doc)
        _write_json(out / pool_dir / "config.json", _splade_pooling_config(model))
        router = {
            "types": {query_dir: SPARSE_STATIC_EMBEDDING, doc_dir: MLM_TRANSFORMER, pool_dir: SPLADE_POOLING},
            "structure": {"query": [query_dir], "document": [doc_dir, pool_dir]},
            "parameters": {"default_route": "document", "allow_empty_key": True},
        }
        _write_json(out / "router_config.json", router)
        _write_json(out / "modules.json", [_module(0, "", ROUTER)])
        _write_json(out / "config_sentence_transformers.json", _st_config("SparseEncoder", "dot", model))
    elif head == "dense":
        _save_transformer(model, out, max_doc)
        hidden = int(model.backbone.config.hidden_size)
        pooling = model.config.pooling
        _write_json(
            out / "1_Pooling" / "config.json",
            {
                "word_embedding_dimension": hidden,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False,
                "include_prompt": True,
            },
        )
        modules = [_module(0, "", TRANSFORMER), _module(1, "1_Pooling", POOLING)]
        if model.config.normalize:
            modules.append(_module(2, "2_Normalize", NORMALIZE))
            (out / "2_Normalize").mkdir(exist_ok=True)
        _write_json(out / "modules.json", modules)
        _write_json(
            out / "config_sentence_transformers.json",
            _st_config("SentenceTransformer", "cosine" if model.config.normalize else "dot", model),
        )
        _write_json(out / SETTINGS_FILE, model.settings())
    else:
        raise ValueError(f"cannot export head {head!r} to sentence-transformers")
    atomic_write_text(out / "README.md", card)
    return sorted(p for p in out.rglob("*") if p.is_file())
