"""Ship a trained model: a Hugging Face folder, a sentence-transformers folder, or an OpenSearch bundle.

``export_model(checkpoint, format, output)`` loads the checkpoint once and hands it to the
writer registered for the format in :data:`FORMATS`; each writer lives in its own module
(:mod:`.hf`, :mod:`.sentence_transformers`, :mod:`.opensearch`) and every folder gets a
README.md built from the same facts (:mod:`.model_card`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sparse_tune.export.model_card import CardInputs, build_model_card, card_inputs, recipe_and_evaluation
from sparse_tune.models.retriever import Retriever

ExportFormat = Literal["hf", "sentence-transformers", "opensearch"]
Writer = Callable[[Retriever, Path, CardInputs, dict[str, Any]], list[Path]]


class ExportError(ValueError):
    """The export cannot run as asked (format, options, output folder); the message says what to change."""


def _hf(model: Retriever, output: Path, inputs: CardInputs, options: dict[str, Any]) -> list[Path]:
    from sparse_tune.export.hf import export_hf

    return export_hf(model, output, build_model_card(inputs))


def _sentence_transformers(
    model: Retriever, output: Path, inputs: CardInputs, options: dict[str, Any]
) -> list[Path]:
    from sparse_tune.export.sentence_transformers import export_sentence_transformers

    return export_sentence_transformers(model, output, build_model_card(inputs))


def _opensearch(model: Retriever, output: Path, inputs: CardInputs, options: dict[str, Any]) -> list[Path]:
    from sparse_tune.export.opensearch import OpenSearchNames, export_opensearch

    names = OpenSearchNames(model_name=inputs.name, **options)
    bundle = export_opensearch(model, output, names, card_sections=recipe_and_evaluation(inputs))
    return sorted(p for p in bundle.folder.iterdir() if p.is_file())


#: format name -> writer(model, output, card facts, format options) -> files written
FORMATS: dict[str, Writer] = {
    "hf": _hf,
    "sentence-transformers": _sentence_transformers,
    "opensearch": _opensearch,
}


def export_model(
    checkpoint: str | Path,
    fmt: ExportFormat,
    output: str | Path,
    *,
    results: str | Path | None = None,
    recipe: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    model: Retriever | None = None,
    **options: Any,
) -> list[Path]:
    """Export ``checkpoint`` (name, folder or hub id) as ``fmt`` into ``output``; returns the files written.

    ``options`` go to the format's writer (OpenSearch: ``version``, ``index``, ``text_field``,
    ``embedding_field``, ``url_base``). ``model`` skips loading when the caller already holds
    the checkpoint's model (tests, notebooks).
    """
    from sparse_tune.models.io import load_model

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if options and fmt != "opensearch":
        raise ExportError(f"options {sorted(options)} only apply to --format opensearch")
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ExportError(
            f"{out} exists and is not an empty folder; pass --overwrite or choose another --output"
        )
    if model is None:
        model = load_model(str(checkpoint))
    model.eval()
    name = name or Path(str(checkpoint).rstrip("/")).name
    checkpoint_dir = Path(checkpoint) if Path(checkpoint).is_dir() else None
    if fmt == "opensearch" and checkpoint_dir is not None:
        from sparse_tune.index.fusion import read_hybrid

        options.setdefault("hybrid", read_hybrid(checkpoint_dir))  # fusion with BM25 chosen in training
    inputs = card_inputs(
        model, name, fmt, checkpoint=checkpoint_dir, results_path=results, recipe_path=recipe
    )
    out.mkdir(parents=True, exist_ok=True)
    return FORMATS[fmt](model, out, inputs, {k: v for k, v in options.items() if v is not None})


__all__ = ["FORMATS", "ExportError", "ExportFormat", "export_model"]
