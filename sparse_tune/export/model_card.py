"""README.md model cards for exported folders: what the model is, how it was trained, how it scored.

Everything comes from files that are safe to read without unpickling anything: the
checkpoint's ``sparse_tune.json`` (head, activation, lengths), ``trainer_state.json`` when the
Trainer left one, an optional recipe file (YAML/JSON, shown verbatim) and an optional
``results.json`` from ``sparse-tune evaluate``. ``training_args.bin`` is deliberately never
opened: it is a pickle, and loading it would run code from the checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_tune.models.retriever import Retriever

#: Metrics shown first (and formatted as quality scores); any other numeric keys follow.
QUALITY_COLUMNS = ("nDCG@10", "MRR@10", "Recall@100")
COST_COLUMNS = ("doc_nnz", "query_nnz", "flops", "latency_p50_ms")

HEAD_DESCRIPTIONS = {
    "splade": "a SPLADE sparse retriever: the same masked-LM encoder turns queries and documents into "
    "vocabulary-sized non-negative vectors (max over tokens of the activated MLM logits)",
    "inference_free": "an inference-free sparse retriever: documents are encoded by a SPLADE masked-LM "
    "encoder; queries are only tokenised, each distinct token weighted by a fixed IDF table (idf.json)",
    "dense": "a dense bi-encoder: one transformer embeds queries and documents into the same vector space",
}


@dataclass
class CardInputs:
    """What the card is written from; every field except the model may be missing."""

    name: str
    export_format: str
    settings: dict[str, Any]
    trainer_state: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] | None = None
    recipe_text: str | None = None
    recipe_name: str | None = None


def read_json_file(path: str | Path) -> Any:
    """A JSON file's content; the error names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read JSON: {exc}") from None


def card_inputs(
    model: Retriever,
    name: str,
    export_format: str,
    checkpoint: str | Path | None = None,
    results_path: str | Path | None = None,
    recipe_path: str | Path | None = None,
) -> CardInputs:
    """Gather the card's facts from the model and the (optional) files next to it."""
    trainer_state = None
    if checkpoint is not None and (Path(checkpoint) / "trainer_state.json").is_file():
        trainer_state = read_json_file(Path(checkpoint) / "trainer_state.json")
    results = None
    if results_path is not None:
        results = read_json_file(results_path)
        if not isinstance(results, dict) or not all(isinstance(v, dict) for v in results.values()):
            raise ValueError(f"{results_path}: expected results.json's shape {{model: {{metric: value}}}}")
    recipe_text = None
    if recipe_path is None and checkpoint is not None and (Path(checkpoint) / "recipe.yaml").is_file():
        recipe_path = Path(checkpoint) / "recipe.yaml"  # written by `sparse-tune train`
    if recipe_path is not None:
        recipe_text = Path(recipe_path).read_text(encoding="utf-8")
    settings = model.settings()
    settings["exported_from"] = model.config.model_name_or_path
    return CardInputs(
        name=name,
        export_format=export_format,
        settings=settings,
        trainer_state=trainer_state,
        results=results,
        recipe_text=recipe_text,
        recipe_name=Path(recipe_path).name if recipe_path is not None else None,
    )


def _front_matter(inputs: CardInputs) -> str:
    head = inputs.settings.get("head", "splade")
    tags = ["sparse_tune", "retrieval"]
    if head == "dense":
        tags += ["sentence-transformers", "feature-extraction"]
        pipeline = "feature-extraction"
    else:
        tags += ["sparse", "splade", "learned-sparse-retrieval", "opensearch"]
        if head == "inference_free":
            tags.append("inference-free")
        pipeline = "fill-mask" if inputs.export_format == "hf" else "feature-extraction"
    library = "sentence-transformers" if inputs.export_format == "sentence-transformers" else "transformers"
    lines = ["---", f"library_name: {library}", f"pipeline_tag: {pipeline}", "tags:"]
    lines += [f"- {t}" for t in tags]
    lines.append("---")
    return "\n".join(lines)


def _settings_table(settings: dict[str, Any]) -> str:
    rows = ["| setting | value |", "|---|---|"]
    for key in (
        "exported_from",
        "head",
        "activation",
        "pooling",
        "normalize",
        "max_query_length",
        "max_doc_length",
    ):
        if key in settings:
            if settings.get("head") != "dense" and key in ("pooling", "normalize"):
                continue
            if settings.get("head") == "dense" and key == "activation":
                continue
            rows.append(f"| {key} | `{settings[key]}` |")
    return "\n".join(rows)


def _trainer_summary(state: dict[str, Any]) -> str:
    lines = []
    for key, label in (
        ("global_step", "steps"),
        ("epoch", "epochs"),
        ("max_steps", "max_steps"),
        ("train_batch_size", "per-device batch size"),
        ("best_metric", "best metric"),
        ("best_model_checkpoint", "best checkpoint"),
    ):
        if state.get(key) is not None:
            value = state[key]
            lines.append(f"- {label}: `{round(value, 4) if isinstance(value, float) else value}`")
    logged = [h for h in state.get("log_history", []) if isinstance(h, dict) and "loss" in h]
    if logged:
        last = logged[-1]
        terms = ", ".join(
            f"{k}={v:.4g}"
            for k, v in last.items()
            if isinstance(v, (int, float)) and k not in ("epoch", "step")
        )
        lines.append(f"- last logged training terms (step {last.get('step')}): {terms}")
    return "\n".join(lines)


#: Row fields that ``sparse-tune evaluate`` writes to name what a results.json row measured.
ROW_FIELDS = ("dataset", "split", "backend")


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per evaluated model, quality metrics first, then costs and the rest.

    A row's ``model`` field (results.json from ``evaluate``) names it, else its key; its
    ``dataset`` / ``split`` / ``backend`` become columns when any row has them, and its
    ``settings`` (those that differ from a plain ``evaluate``) when any row has such.
    """
    from sparse_tune.evaluation.results_file import SETTINGS_FIELD, settings_label

    keys: list[str] = []
    for metrics in results.values():
        for k, v in metrics.items():
            if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.append(k)
    ordered = [k for k in QUALITY_COLUMNS + COST_COLUMNS if k in keys]
    ordered += [k for k in keys if k not in ordered]
    where = [f for f in ROW_FIELDS if any(isinstance(m.get(f), str) for m in results.values())]
    labels = {key: settings_label(m) if SETTINGS_FIELD in m else "" for key, m in results.items()}
    if any(labels.values()):
        where.append(SETTINGS_FIELD)
    header = ["model", *where, *ordered]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for key, metrics in results.items():
        cells = [str(metrics.get("model", key))]
        cells += [labels[key] if f == SETTINGS_FIELD else str(metrics.get(f, "")) for f in where]
        for k in ordered:
            v = metrics.get(k)
            if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
                cells.append("")
            elif k in QUALITY_COLUMNS:
                cells.append(f"{v:.4f}")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    shown = {"model", *where}
    context = sorted(
        {f"{k}={v}" for m in results.values() for k, v in m.items() if isinstance(v, str) and k not in shown}
    )
    if context:
        lines += ["", "Evaluation context: " + ", ".join(f"`{c}`" for c in context)]
    return "\n".join(lines)


def _usage(inputs: CardInputs) -> str:
    head = inputs.settings.get("head", "splade")
    fmt = inputs.export_format
    act = inputs.settings.get("activation", "log1p_relu")
    act_expr = "torch.log1p(torch.relu(logits))"
    if act == "log1p_log1p_relu":
        act_expr = "torch.log1p(torch.log1p(torch.relu(logits)))"
    if fmt == "sentence-transformers":
        if head == "dense":
            return (
                "```python\nfrom sentence_transformers import SentenceTransformer\n\n"
                'model = SentenceTransformer("path/to/this/folder")\n'
                'q = model.encode_query(["what is splade?"])\nd = model.encode_document(["SPLADE is ..."])\n'
                "print(model.similarity(q, d))\n```"
            )
        return (
            "```python\nfrom sentence_transformers import SparseEncoder\n\n"
            'model = SparseEncoder("path/to/this/folder")\n'
            'q = model.encode_query(["what is splade?"])\nd = model.encode_document(["SPLADE is ..."])\n'
            "print(model.similarity(q, d))\n```\n\n"
            "sentence-transformers applies one `max_seq_length` (the document length) to every text it "
            "sends through the transformer; sparse_tune truncates queries at `max_query_length`, so only "
            "queries longer than that encode differently."
        )
    if head == "dense":
        pooling = inputs.settings.get("pooling", "cls")
        pool_expr = (
            "hidden[:, 0]"
            if pooling == "cls"
            else "(hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)"
        )
        norm = (
            "\nemb = torch.nn.functional.normalize(emb, dim=-1)" if inputs.settings.get("normalize") else ""
        )
        return (
            "```python\nimport torch\nfrom transformers import AutoModel, AutoTokenizer\n\n"
            'tok = AutoTokenizer.from_pretrained("path/to/this/folder")\n'
            'model = AutoModel.from_pretrained("path/to/this/folder").eval()\n'
            'batch = tok(["some text"], padding=True, truncation=True, return_tensors="pt")\n'
            "with torch.no_grad():\n    hidden = model(**batch).last_hidden_state  # (batch, seq_len, hidden)\n"
            'mask = batch["attention_mask"].float()\n'
            f"emb = {pool_expr}{norm}\n```\n\nPooling: `{pooling}`; "
            f"L2-normalised: `{bool(inputs.settings.get('normalize'))}`; score = dot product."
        )
    doc = (
        "```python\nimport torch\nfrom transformers import AutoModelForMaskedLM, AutoTokenizer\n\n"
        'tok = AutoTokenizer.from_pretrained("path/to/this/folder")\n'
        'mlm = AutoModelForMaskedLM.from_pretrained("path/to/this/folder").eval()\n\n'
        "def encode(texts, max_length):\n"
        '    batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")\n'
        "    with torch.no_grad():\n"
        "        logits = mlm(**batch).logits  # (batch, seq_len, vocab)\n"
        f'    weights = {act_expr} * batch["attention_mask"].unsqueeze(-1)\n'
        "    return weights.amax(dim=1)  # (batch, vocab); column j is token j\n\n"
        f'docs = encode(["some document"], max_length={inputs.settings.get("max_doc_length")})\n'
    )
    if head == "inference_free":
        doc += (
            "\n# queries: no transformer, only the tokenizer and idf.json\n"
            "import json\n"
            'idf = json.load(open("path/to/this/folder/idf.json"))\n'
            f'ids = tok(["a query"], truncation=True, max_length={inputs.settings.get("max_query_length")})'
            '["input_ids"][0]\n'
            "special = set(tok.all_special_ids)\n"
            "query = {tok.convert_ids_to_tokens(i): idf.get(tok.convert_ids_to_tokens(i), 1.0)\n"
            "         for i in set(ids) if i not in special}\n```"
        )
    else:
        doc += f'queries = encode(["a query"], max_length={inputs.settings.get("max_query_length")})\n```'
    return doc + "\n\nScore = dot product of the query and document vectors."


def build_model_card(inputs: CardInputs) -> str:
    """The README.md text for an exported folder."""
    head = inputs.settings.get("head", "splade")
    parts = [
        _front_matter(inputs),
        f"# {inputs.name}",
        f"This is {HEAD_DESCRIPTIONS.get(head, head)}. Fine-tuned and exported with `sparse_tune` "
        f"(`sparse-tune export --format {inputs.export_format}`).",
        "## Usage",
        _usage(inputs),
        *recipe_and_evaluation(inputs),
    ]
    return "\n\n".join(p.strip("\n") for p in parts if p) + "\n"


def recipe_and_evaluation(inputs: CardInputs) -> list[str]:
    """The card's "Training recipe" and "Evaluation" sections (also appended to the OpenSearch README)."""
    parts = ["## Training recipe", _settings_table(inputs.settings)]
    if inputs.trainer_state:
        parts += ["From `trainer_state.json`:", _trainer_summary(inputs.trainer_state)]
    if inputs.recipe_text:
        parts += [f"Recipe (`{inputs.recipe_name}`):", f"```yaml\n{inputs.recipe_text.rstrip()}\n```"]
    if not inputs.trainer_state and not inputs.recipe_text:
        parts.append("_No trainer_state.json or recipe was available when this card was written._")
    parts.append("## Evaluation")
    if inputs.results:
        parts.append(results_table(inputs.results))
    else:
        parts.append(
            "_No results.json was given (`sparse-tune export ... --results runs/eval/results.json`)._"
        )
    return parts
