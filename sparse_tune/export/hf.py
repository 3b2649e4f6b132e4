"""Hugging Face folder: backbone + tokenizer (+ idf.json) + sparse_tune.json + a model card.

The folder is what :meth:`Retriever.save_pretrained` writes, so it loads with
``AutoModelForMaskedLM`` (sparse heads) or ``AutoModel`` (dense) *and* with our own
``load_model``; the card adds what a Hub visitor needs: the pooling formula, the lengths the
model was trained with, and its scores.
"""

from __future__ import annotations

from pathlib import Path

from sparse_tune.fsio import atomic_write_text
from sparse_tune.models.retriever import Retriever


def export_hf(model: Retriever, output: str | Path, card: str) -> list[Path]:
    """Write the Hugging Face folder and its README.md; returns the files written."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    atomic_write_text(out / "README.md", card)
    return sorted(p for p in out.iterdir() if p.is_file())
