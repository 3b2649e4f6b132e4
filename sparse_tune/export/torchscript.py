"""TorchScript document encoder in the shape ml-commons' ``SPARSE_ENCODING`` runtime calls.

ml-commons (``SparseEncodingTranslator``) tokenises one text with the zip's ``tokenizer.json``
and calls the traced module with a single ``Dict[str, Tensor]`` holding ``input_ids`` and
``attention_mask`` (``(1, seq_len)``; no ``token_type_ids``). Whatever one tensor the module
returns is read as a vocabulary-sized vector: every non-zero index is decoded back to its
token with ``tokenizer.decode([id], skip_special_tokens=True)`` and empty strings (special
tokens) are dropped. So the module returns the *raw* ``(batch, vocab)`` vector, as
opensearch-py-ml's ``NeuralSparseModel`` does (``{"output": values}``), and the token mapping
is left to the server. Unlike opensearch-py-ml we do not zero special-token columns in the
module: the server drops them anyway, and keeping the module equal to our eager encoder is
what makes the export testable to 1e-5.

The backbone is reloaded from a saved Hugging Face folder with eager attention: SDPA paths in
transformers take data-dependent shortcuts (e.g. skipping an all-ones mask) that tracing would
freeze into the graph.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sparse_tune.fsio import atomic_path
from sparse_tune.models.activations import ACTIVATIONS

OUTPUT_KEY = "output"


class SparseEncodingModule(nn.Module):
    """``{"input_ids", "attention_mask"} -> {"output": (batch, vocab)}``: SPLADE's reference head.

    Same maths as ``splade_pool(..., impl="reference")``: full MLM logits, activation, padding
    masked out, max over tokens -- plain ops only, so ``torch.jit.trace`` records all of it.
    """

    def __init__(self, mlm: nn.Module, activation: str) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        self.mlm = mlm
        self.activation = activation

    def forward(self, input: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: A002 (ml-commons' name)
        mask = input["attention_mask"]  # (batch, seq_len)
        logits = self.mlm(input_ids=input["input_ids"], attention_mask=mask).logits  # (batch, seq_len, vocab)
        weights = ACTIVATIONS[self.activation](logits) * mask.unsqueeze(-1).to(
            logits.dtype
        )  # (batch, seq_len, vocab)
        return {OUTPUT_KEY: weights.amax(dim=1)}  # (batch, vocab)


def load_eager_mlm(hf_folder: str | Path) -> nn.Module:
    """The folder's masked-LM in float32 with eager attention, ready to trace."""
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(
        str(hf_folder), attn_implementation="eager", dtype=torch.float32, use_safetensors=True
    )
    return mlm.eval()


def trace_sparse_encoder(
    hf_folder: str | Path, activation: str, example: dict[str, torch.Tensor]
) -> torch.jit.ScriptModule:
    """Trace :class:`SparseEncodingModule` on ``example`` (a padded batch, so the mask path is recorded)."""
    module = SparseEncodingModule(load_eager_mlm(hf_folder), activation).eval()
    inputs = {"input_ids": example["input_ids"], "attention_mask": example["attention_mask"]}
    with torch.no_grad(), warnings.catch_warnings():
        # transformers' mask builder compares key length with mask length in Python; for an
        # encoder both are seq_len for every input, so the constant the tracer records holds.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (inputs,), strict=False, check_trace=False)
    return traced


def save_traced(traced: torch.jit.ScriptModule, path: str | Path) -> Path:
    """``torch.jit.save`` to a temporary name, then rename (readers never see half a file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp))
    return path
