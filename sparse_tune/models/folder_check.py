"""Why a model name or folder cannot be loaded, found before transformers tries and fails deep inside.

transformers answers a path that does not exist with a 50-line traceback that ends in "check
your internet connection", and a truncated weights file with a ``SafetensorError``. Checking
what a folder must hold (config.json of an encoder architecture, a tokenizer, complete
safetensors weights) costs a few file reads and lets every verb say, in one line, which
folder is wrong and how.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from sparse_tune.registry import MODELS, resolve_model_path

#: Files any one of which makes a tokenizer loadable (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")  # fmt: skip


class CheckpointError(ValueError):
    """A model folder that cannot be loaded; the message names the folder and what is wrong."""


class ModelNotFoundError(FileNotFoundError):
    """A model that is neither a folder, a registered name nor a loadable hub id."""


def _registered() -> str:
    return ", ".join(MODELS)


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file (truncated, not safetensors), or ``None`` when whole.

    The format is an 8-byte little-endian header length, a JSON header whose ``data_offsets``
    say where each tensor ends, then the data: a file shorter than the last offset was cut.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"{path.name} is truncated ({size} bytes; its header alone needs {8 + n})"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return f"{path.name} is not a safetensors file (unreadable header)"
    if not isinstance(header, dict):
        return f"{path.name} is not a safetensors file (unreadable header)"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return f"{path.name} is truncated ({size} bytes of {expected})"
    return None


def _weights_problem(folder: Path) -> str | None:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError):
            return f"{index.name} is not valid JSON with a weight_map"
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            return f"weights shard {missing[0]} is missing"
        files = [folder / s for s in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        if any(folder.glob("*.bin")):
            return None  # a PyTorch .bin folder: read with weights_only loading
        return "model folder is missing model.safetensors (its weights)"
    for f in files:
        problem = safetensors_problem(f)
        if problem:
            return problem
    return None


def _architecture_problem(folder: Path, config: dict) -> str | None:
    """Our heads sit on an encoder: a masked LM (SPLADE) or any bidirectional encoder (dense)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.get("model_type")
    if not kind:
        return "config.json has no model_type: not a transformers model folder"
    if config.get("is_encoder_decoder"):
        return f"config.json describes a {kind} model (encoder-decoder); sparse_tune trains encoders (BERT-like models)"
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return f"config.json describes a {kind} model (a decoder-only language model); sparse_tune trains encoders (BERT-like models)"
    from transformers import AutoConfig

    try:
        AutoConfig.for_model(kind)
    except (ValueError, KeyError):
        return f"config.json has an unknown model_type {kind!r} (this transformers version cannot build it)"
    return None


def model_folder_problem(folder: Path, weights: bool = True, architecture: bool = True) -> str | None:
    """The first reason ``folder`` cannot be loaded as a model (``None``: it looks loadable)."""
    config_file = folder / "config.json"
    if weights or architecture:
        if not config_file.is_file():
            return "model folder has no config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            return f"config.json is not valid JSON ({exc})"
        if not isinstance(config, dict):
            return "config.json is not a JSON object"
        if architecture:
            problem = _architecture_problem(folder, config)
            if problem:
                return problem
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"model folder has no tokenizer (none of {', '.join(TOKENIZER_FILES)})"
    if weights:
        return _weights_problem(folder)
    return None


def check_model_source(name_or_path: str, weights: bool = True, architecture: bool = True) -> str:
    """The path ``from_pretrained`` should read for ``name_or_path``, or a one-line error.

    ``weights=False``: only the tokenizer is needed (``sparse-tune idf``). ``architecture=False``:
    any transformers model (a cross-encoder teacher is a sequence classifier).
    """
    path = resolve_model_path(name_or_path)
    folder = Path(path)
    if folder.is_dir():
        problem = model_folder_problem(folder, weights, architecture)
        if problem:
            raise CheckpointError(f"{folder}: {problem}")
        return path
    if folder.exists():
        raise CheckpointError(f"model {name_or_path}: {folder} is a file, not a model folder")
    first = Path(name_or_path).parts[0] if Path(name_or_path).parts else ""
    if not _hub_id_shaped(name_or_path) or (len(Path(name_or_path).parts) > 1 and Path(first).is_dir()):
        # not a hub id, or a path into a local folder (runs/base with runs/ here): a missing folder
        raise ModelNotFoundError(
            f"model {name_or_path}: no such folder ({folder.absolute()}), and not a registered name ({_registered()})"
        )
    if not _hub_model_available(name_or_path):
        raise ModelNotFoundError(
            f"model {name_or_path}: no such folder ({folder.absolute()}), not a registered name ({_registered()}), "
            "and no Hugging Face Hub model of that id could be loaded"
        )
    return path


def _hub_id_shaped(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _hub_model_available(name: str) -> bool:
    """Whether ``name``'s config.json can be had: from the local Hub cache, else from the Hub when online.

    The online probe's retry warnings are silenced (the one-line error that follows says what
    matters); offline (``HF_HUB_OFFLINE=1``) only the cache is looked at.
    """
    import logging

    from huggingface_hub import constants, hf_hub_download

    try:
        hf_hub_download(name, "config.json", local_files_only=True)
        return True
    except Exception:  # not cached (or an unreadable cache entry)
        pass
    if constants.HF_HUB_OFFLINE:
        return False
    http_log = logging.getLogger("huggingface_hub")
    level = http_log.level
    http_log.setLevel(logging.CRITICAL)
    try:
        hf_hub_download(name, "config.json")
    except Exception:  # unknown repo, gated, network down: each means "cannot load it here"
        return False
    finally:
        http_log.setLevel(level)
    return True
