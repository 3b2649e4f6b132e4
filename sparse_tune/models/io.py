"""Build a :class:`Retriever` from a name, folder or hub id, and read our saved folders back.

Which head a checkpoint uses comes from its ``sparse_tune.json`` when it has one, else from
an explicit ``head``, else from the checkpoint's architecture (masked-LM -> splade,
anything else -> dense) -- never from matching substrings of the name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparse_tune.config import ModelConfig
from sparse_tune.models.folder_check import CheckpointError, check_model_source
from sparse_tune.models.retriever import IDF_FILE, SAVED_SETTINGS, SETTINGS_FILE, Retriever


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read JSON: {exc}") from None


def _sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """Pooling and normalisation of a sentence-transformers folder, read from its JSON files."""
    out: dict[str, Any] = {}
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = _read_json(pooling)
        out["pooling"] = "mean" if cfg.get("pooling_mode_mean_tokens") else "cls"
    modules = folder / "modules.json"
    if modules.is_file():
        out["normalize"] = any("Normalize" in m.get("type", "") for m in _read_json(modules))
    return out


def _is_masked_lm(path: str) -> bool:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    return any(a.endswith("ForMaskedLM") for a in (cfg.architectures or []))


def model_config_for(name_or_path: str, **overrides: Any) -> tuple[ModelConfig, str]:
    """The ModelConfig a checkpoint implies, with overrides applied, and its resolved path.

    A name or folder that cannot be loaded fails here, in one line (:mod:`~sparse_tune.models.folder_check`).
    """
    path = check_model_source(name_or_path)
    folder = Path(path)
    settings: dict[str, Any] = {}
    if folder.is_dir():
        if (folder / SETTINGS_FILE).is_file():
            saved = _read_json(folder / SETTINGS_FILE)
            settings.update({k: saved[k] for k in SAVED_SETTINGS if k in saved})
        else:
            settings.update(_sentence_transformers_settings(folder))
        if (folder / IDF_FILE).is_file():
            settings["idf_path"] = str(folder / IDF_FILE)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["model_name_or_path"] = name_or_path
    if settings.get("head") is None:
        settings["head"] = "splade" if _is_masked_lm(path) else "dense"
    return ModelConfig(**settings), path


def load_model(name_or_path: str, **overrides: Any) -> Retriever:
    """Load a retriever; ``overrides`` are ModelConfig fields (head, idf_path, activation, ...)."""
    config, path = model_config_for(name_or_path, **overrides)
    return build_model(config, path)


def build_model(config: ModelConfig, path: str | None = None) -> Retriever:
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from sparse_tune.models.dense import DenseEncoder
    from sparse_tune.models.idf_query import IdfQueryEncoder
    from sparse_tune.models.splade import SpladeEncoder

    path = path or check_model_source(config.model_name_or_path)
    folder = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    head = config.head or "splade"
    config.max_query_length = min(config.max_query_length, tokenizer.model_max_length)
    config.max_doc_length = min(config.max_doc_length, tokenizer.model_max_length)
    if head == "dense":
        backbone = AutoModel.from_pretrained(path, use_safetensors=_has_safetensors(folder))
        encoder = DenseEncoder(backbone, config.pooling, config.normalize)
        return Retriever(config, backbone, tokenizer, encoder)
    backbone = AutoModelForMaskedLM.from_pretrained(path, use_safetensors=_has_safetensors(folder))
    doc = SpladeEncoder(backbone, config.activation, config.splade_impl)
    if head == "splade":
        return Retriever(config, backbone, tokenizer, doc)
    if head == "inference_free":
        if config.query_instruction:
            from sparse_tune.config import INFERENCE_FREE_QUERY_INSTRUCTION

            raise CheckpointError(INFERENCE_FREE_QUERY_INSTRUCTION)
        if not config.idf_path:
            raise CheckpointError(
                f"inference_free model '{config.model_name_or_path}' needs IDF weights: pass idf_path "
                "(make one with `sparse-tune idf --corpus ... --tokenizer ... --output idf.json`)"
            )
        from sparse_tune.data.idf import excluded_token_ids, load_idf

        idf = load_idf(config.idf_path, tokenizer)  # (vocab,)
        vocab_size = backbone.get_output_embeddings().out_features
        if idf.shape[0] != vocab_size:
            raise CheckpointError(f"idf has {idf.shape[0]} entries but the model vocabulary has {vocab_size}")
        special = excluded_token_ids(tokenizer, vocab_size)
        query = IdfQueryEncoder(idf, special, trainable=config.train_idf)
        return Retriever(config, backbone, tokenizer, doc, query)
    raise CheckpointError(f"unknown head {head!r}: choose splade, inference_free or dense")


def _has_safetensors(folder: Path) -> bool | None:
    """Prefer safetensors; a local folder with only .bin files is read with weights_only loading."""
    if folder.is_dir():
        return True if any(folder.glob("*.safetensors")) else None
    return None


def load_weights_into(model: Retriever, checkpoint: str | Path) -> None:
    """Restore a checkpoint saved by :meth:`Retriever.save_pretrained` into an existing model (resume)."""
    from safetensors.torch import load_file

    folder = Path(checkpoint)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no .safetensors weights to resume from")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    # transformers 5 saves some checkpoints under their original key names (BERT's LayerNorm
    # ``gamma``/``beta``); map them back to the module's ``weight``/``bias`` before loading.
    own = model.backbone.state_dict().keys()
    legacy = {".gamma": ".weight", ".beta": ".bias"}
    for key in list(state):
        for old, new in legacy.items():
            if key.endswith(old) and key not in own and key[: -len(old)] + new in own:
                state[key[: -len(old)] + new] = state.pop(key)
    result = model.backbone.load_state_dict(state, strict=False)
    tied = set(getattr(model.backbone, "all_tied_weights_keys", {}) or {})
    missing = [k for k in result.missing_keys if k not in tied and not k.endswith("decoder.weight")]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{folder}: weights do not match the model (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    model.backbone.tie_weights()
    if model.idf is not None and (folder / IDF_FILE).is_file():
        from sparse_tune.data.idf import load_idf

        with torch.no_grad():
            model.idf.copy_(load_idf(folder / IDF_FILE, model.tokenizer))
