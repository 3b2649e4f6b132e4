"""OpenSearch bundle: ml-commons model zips, registration bodies, pipelines, index, and the REST calls.

What ml-commons runs (read from its ``SparseEncodingTranslator`` / ``SparseTokenizerModel``):

* ``SPARSE_ENCODING`` (documents, and SPLADE queries): a zip holding a TorchScript file and
  ``tokenizer.json``. The server tokenises each text with that ``tokenizer.json`` -- its
  ``truncation`` block is the only length limit applied -- calls the module with
  ``{"input_ids", "attention_mask"}`` and turns the non-zero entries of the returned vector into
  ``{token: weight}`` (special tokens decode to "" and are dropped). See :mod:`.torchscript`.
* ``SPARSE_TOKENIZE`` (inference-free queries): a zip holding ``tokenizer.json`` and ``idf.json``;
  each distinct non-special token of the query gets ``idf.get(token, 1.0)``.

So each zip's ``tokenizer.json`` carries our truncation (``max_doc_length`` / ``max_query_length``,
special tokens included, as the Hugging Face tokenizer counts them), and ``idf.json`` lists every
non-special vocabulary token (a missing token would silently become 1.0 on the server).

Registration bodies carry the zip's sha256 (``model_content_hash_value``) and byte size, as
opensearch-py-ml's ``make_model_config_json`` writes them. Zips are written with fixed
timestamps, so the same model always gives the same hash.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sparse_tune.fsio import atomic_path, atomic_write_text, sha256_of
from sparse_tune.index.fusion import Fusion
from sparse_tune.index.opensearch_ann import ann_query, seismic_field, two_phase_processor
from sparse_tune.index.opensearch_config import OpenSearchConfig
from sparse_tune.index.opensearch_hybrid import fusion_processor, hybrid_query, weighted_sum_query
from sparse_tune.index.pruning import validate_prune
from sparse_tune.models.retriever import Retriever

#: Settings a test or dev cluster needs before the calls below work (single node, URL registration).
CLUSTER_SETTINGS = {
    "persistent": {
        "plugins.ml_commons.only_run_on_ml_node": False,
        "plugins.ml_commons.allow_registering_model_via_url": True,
        "plugins.ml_commons.allow_registering_model_via_local_file": True,
        "plugins.ml_commons.native_memory_threshold": 99,
    }
}

#: ml-commons' chunk size for ``upload_chunk`` (opensearch-py-ml's MODEL_CHUNK_MAX_SIZE).
CHUNK_SIZE = 10_000_000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class OpenSearchNames:
    """Names used in the bodies and the README (placeholders stay until the cluster assigns ids)."""

    model_name: str
    version: str = "1.0.0"
    index: str = "sparse-index"
    text_field: str = "passage_text"
    embedding_field: str = "passage_embedding"
    url_base: str | None = None
    #: ``prune_type`` / ``prune_ratio`` of the ingest processor (index/pruning.py semantics).
    prune_type: str = "none"
    prune_ratio: float | None = None
    #: OpenSearchConfig ``seismic_*`` / ``ann_*`` options for the ANN index and query bodies.
    ann: dict[str, Any] = field(default_factory=dict)
    #: OpenSearchConfig ``two_phase_*`` options for the two-phase search pipeline.
    two_phase: dict[str, Any] = field(default_factory=dict)
    #: The model folder's ``hybrid.json`` (fusion with BM25 chosen on validation), when it has one.
    hybrid: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_prune(self.prune_type, self.prune_ratio)
        self.fusion()  # a bad hybrid.json fails at once
        self.ann_config()  # fail at once on a bad option
        self.two_phase_config()

    def fusion(self) -> Fusion | None:
        return None if self.hybrid is None else Fusion.from_json(self.hybrid)

    def ann_config(self) -> OpenSearchConfig:
        return OpenSearchConfig(sparse_index="seismic", check_connection=False, **self.ann)

    def two_phase_config(self) -> OpenSearchConfig:
        return OpenSearchConfig(
            sparse_query="neural_sparse", two_phase=True, check_connection=False, **self.two_phase
        )

    @property
    def ingest_pipeline(self) -> str:
        return f"{self.index}-ingest"

    @property
    def search_pipeline(self) -> str:
        return f"{self.index}-two-phase"


SAMPLE_QUERY = "what is a sparse retriever?"
DOC_MODEL_ID = "<DOCUMENT_MODEL_ID>"
QUERY_MODEL_ID = "<QUERY_MODEL_ID>"


# -- files inside the zips ------------------------------------------------------------------------
def tokenizer_json(model: Retriever, max_length: int) -> str:
    """The fast tokenizer's ``tokenizer.json`` with truncation pinned to ``max_length`` and no padding."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "OpenSearch export needs a fast (Rust) tokenizer with a tokenizer.json; "
            f"{type(model.tokenizer).__name__} has none"
        )
    spec = json.loads(backend.to_str())
    spec["truncation"] = {
        "direction": "Right",
        "max_length": int(max_length),
        "strategy": "LongestFirst",
        "stride": 0,
    }
    spec["padding"] = None  # ml-commons pads itself (optPadding(true)); one text per call needs none
    return json.dumps(spec, ensure_ascii=False)


def write_zip(path: Path, members: dict[str, bytes | Path]) -> Path:
    """A deterministic zip (fixed timestamps, sorted entries), written under a temporary name."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = members[name]
            zf.writestr(info, data.read_bytes() if isinstance(data, Path) else data)
    return path


# -- REST bodies -------------------------------------------------------------------------------------
def register_body(
    zip_path: Path, names: OpenSearchNames, function_name: str, role: str, description: str
) -> dict:
    """``POST /_plugins/_ml/models/_register`` body for a zip reachable at ``url``."""
    url = f"{names.url_base.rstrip('/')}/{zip_path.name}" if names.url_base else zip_path.resolve().as_uri()
    return {
        "name": f"{names.model_name}-{role}",
        "version": names.version,
        "description": description,
        "function_name": function_name,
        "model_format": "TORCH_SCRIPT",
        "model_content_size_in_bytes": zip_path.stat().st_size,
        "model_content_hash_value": sha256_of(zip_path),
        "url": url,
    }


def chunked_register_body(register: dict) -> dict:
    """``POST /_plugins/_ml/models/meta`` body: the same model uploaded in ``upload_chunk`` pieces."""
    body = {k: v for k, v in register.items() if k != "url"}
    body["total_chunks"] = -(-register["model_content_size_in_bytes"] // CHUNK_SIZE)
    return body


#: Where the ingest pipeline puts instruction + text for the model to read; removed after encoding.
INSTRUCTED_FIELD = "_sparse_tune_model_input"


def ingest_pipeline_body(names: OpenSearchNames, doc_instruction: str | None = None) -> dict:
    """``sparse_encoding`` of the text field; with a ``doc_instruction`` the cluster puts it in front first.

    ml-commons' ``SPARSE_ENCODING`` encodes the field as it is, so the instruction is applied by
    the pipeline itself: a ``script`` processor writes instruction + text into a scratch field,
    the model encodes that field, and a ``remove`` processor drops it (the stored text is unchanged).
    """
    source = INSTRUCTED_FIELD if doc_instruction else names.text_field
    processor: dict[str, Any] = {
        "model_id": DOC_MODEL_ID,
        "field_map": {source: names.embedding_field},
    }
    if names.prune_type != "none":
        processor["prune_type"] = names.prune_type
        processor["prune_ratio"] = names.prune_ratio
    processors: list[dict[str, Any]] = [{"sparse_encoding": processor}]
    if doc_instruction:
        script = {
            "lang": "painless",
            "source": "ctx[params.target] = params.instruction + ctx[params.source]",
            "params": {
                "instruction": doc_instruction,
                "source": names.text_field,
                "target": INSTRUCTED_FIELD,
            },
        }
        processors = [{"script": script}, *processors, {"remove": {"field": INSTRUCTED_FIELD}}]
    return {
        "description": f"{names.model_name}: sparse-encode {names.text_field} into {names.embedding_field}",
        "processors": processors,
    }


def instructions(model: Retriever) -> dict[str, str]:
    """The instructions the model was trained with, as ``instructions.json`` in the bundle holds them."""
    out = {
        "query_instruction": model.config.query_instruction,
        "doc_instruction": model.config.doc_instruction,
    }
    return {k: v for k, v in out.items() if v}


def search_pipeline_body(names: OpenSearchNames) -> dict:
    """Two-phase search: score with the high-weight query tokens first, rescore the top window fully.

    With a ``hybrid.json`` (min-max or RRF) the pipeline also fuses ``hybrid`` queries with the
    weights chosen on validation. Each processor leaves the other kind of query alone: the
    two-phase one rewrites only ``neural_sparse`` clauses reached through ``bool`` (not inside
    ``hybrid``), and the fusion processors act only on ``hybrid`` queries.
    """
    body: dict[str, Any] = {
        "description": f"{names.model_name}: two-phase neural sparse search",
        "request_processors": [two_phase_processor(names.two_phase_config())],
    }
    fusion = names.fusion()
    if fusion is not None and fusion.method != "sum":
        body["description"] += f"; hybrid queries with BM25 fused by {fusion} (chosen on validation)"
        body["phase_results_processors"] = [fusion_processor(fusion)]
    return body


def hybrid_query_body(
    names: OpenSearchNames, model_id: str, text: str = "what is a sparse retriever?", size: int = 100
) -> dict:
    """The query template fusing this model with BM25 as chosen on validation: the model's clause first.

    min-max / RRF: a ``hybrid`` query (the index's default search pipeline fuses it); sum: a
    ``bool.should`` with the weights as boosts (plain query DSL, no pipeline).
    """
    fusion = names.fusion()
    if fusion is None:
        raise ValueError("no hybrid.json: nothing chosen to fuse with")
    subs = [
        query_body(names, model_id, text)["query"],
        {"match": {names.text_field: {"query": text}}},
    ]
    if fusion.method == "sum":
        body = weighted_sum_query(subs, fusion.weights, size)
    else:
        body = hybrid_query(subs, size)
    return {"size": body["size"], "query": body["query"]}


def index_body(names: OpenSearchNames) -> dict:
    return {
        "settings": {
            "index": {
                "default_pipeline": names.ingest_pipeline,
                "search.default_pipeline": names.search_pipeline,
            }
        },
        "mappings": {
            "properties": {
                "id": {"type": "keyword"},
                names.text_field: {"type": "text"},
                names.embedding_field: {"type": "rank_features"},
            }
        },
    }


def ann_index_body(names: OpenSearchNames) -> dict:
    """OpenSearch 3.3+ ANN index: ``index.sparse`` and a SEISMIC ``sparse_vector`` field (token-id keys).

    No two-phase default search pipeline: OpenSearch documents that ANN queries must not run under one.
    """
    return {
        "settings": {"index": {"sparse": True, "default_pipeline": names.ingest_pipeline}},
        "mappings": {
            "properties": {
                "id": {"type": "keyword"},
                names.text_field: {"type": "text"},
                names.embedding_field: seismic_field(names.ann_config()),
            }
        },
    }


def query_body(names: OpenSearchNames, model_id: str, text: str = "what is a sparse retriever?") -> dict:
    """``neural_sparse`` with ``query_text``: the cluster encodes the query with ``model_id``."""
    return {"query": {"neural_sparse": {names.embedding_field: {"query_text": text, "model_id": model_id}}}}


def query_tokens_body(names: OpenSearchNames, tokens: dict[str, float]) -> dict:
    """The same query with the vector computed client-side (no ml-commons model needed on the cluster)."""
    return {"query": {"neural_sparse": {names.embedding_field: {"query_tokens": tokens}}}}


def query_tokens_ann_body(names: OpenSearchNames, token_ids: dict[str, float], k: int = 10) -> dict:
    """ANN query with a client-side vector: token-id ``query_tokens`` and ``method_parameters``."""
    body = ann_query(token_ids, k, names.ann_config(), field=names.embedding_field)
    return {"size": body["size"], "query": body["query"]}


# -- the bundle ------------------------------------------------------------------------------------
@dataclass
class OpenSearchBundle:
    folder: Path
    document_zip: Path
    query_zip: Path | None
    bodies: dict[str, Path]


def export_opensearch(
    model: Retriever,
    output: str | Path,
    names: OpenSearchNames,
    card_sections: list[str] | None = None,
    hf_folder: str | Path | None = None,
) -> OpenSearchBundle:
    """Write the zips, the JSON bodies and README.md into ``output``.

    ``hf_folder`` is the model saved with ``save_pretrained`` (traced from there with eager
    attention); when absent the model is saved to a temporary folder first.
    """
    import tempfile

    from sparse_tune.export.torchscript import save_traced, trace_sparse_encoder

    if model.kind != "sparse":
        raise ValueError(
            "OpenSearch export covers sparse models (SPARSE_ENCODING / SPARSE_TOKENIZE). For a dense model use "
            "--format hf or sentence-transformers and register it with opensearch-py-ml's SentenceTransformerModel."
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    stem = names.model_name.replace("/", "-")
    is_inference_free = model.head_name == "inference_free"
    max_doc, max_query = model.config.max_doc_length, model.config.max_query_length

    # 1. the document encoder: TorchScript + tokenizer.json truncating at max_doc_length
    example = model.tokenize(
        ["a short text", "a somewhat longer example text, so the batch is padded"], "document"
    )
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_path = Path(tmp)
        if hf_folder is None:
            hf_folder = tmp_path / "hf"
            model.save_pretrained(hf_folder)
        traced = trace_sparse_encoder(hf_folder, model.config.activation, example)
        pt = save_traced(traced, tmp_path / f"{stem}.pt")
        doc_zip = write_zip(
            out / f"{stem}-doc.zip",
            {pt.name: pt, "tokenizer.json": tokenizer_json(model, max_doc).encode("utf-8")},
        )
    doc_register = register_body(
        doc_zip,
        names,
        "SPARSE_ENCODING",
        "doc",
        f"sparse_tune {model.head_name} document encoder ({model.config.activation}, max {max_doc} tokens)",
    )
    bodies: dict[str, Any] = {
        "cluster_settings.json": CLUSTER_SETTINGS,
        "register_document_model.json": doc_register,
        "register_document_model_chunked.json": chunked_register_body(doc_register),
        "ingest_pipeline.json": ingest_pipeline_body(names, model.config.doc_instruction),
        "search_pipeline.json": search_pipeline_body(names),
        "index.json": index_body(names),
        # SPLADE encodes queries with the document model; inference-free with the tokenizer model.
        # The query instruction goes in front of query_text: ml-commons encodes the text it is given.
        "query.json": query_body(
            names,
            QUERY_MODEL_ID if is_inference_free else DOC_MODEL_ID,
            model.with_instruction([SAMPLE_QUERY], "query")[0],
        ),
    }
    if instructions(model):
        bodies["instructions.json"] = instructions(model)
    # 2. the query side: tokenizer.json + idf.json (inference-free) or the same model (SPLADE)
    query_zip = None
    if is_inference_free:
        query_zip = write_zip(
            out / f"{stem}-query-tokenizer.zip",
            {
                "tokenizer.json": tokenizer_json(model, max_query).encode("utf-8"),
                "idf.json": json.dumps(model.idf_table(), ensure_ascii=False).encode("utf-8"),
            },
        )
        q_register = register_body(
            query_zip,
            names,
            "SPARSE_TOKENIZE",
            "query",
            f"sparse_tune inference-free query tokenizer with IDF weights (max {max_query} tokens)",
        )
        bodies["register_query_model.json"] = q_register
        bodies["register_query_model_chunked.json"] = chunked_register_body(q_register)
    # 3. a client-side query vector for clusters without the models deployed
    sample = SAMPLE_QUERY
    with torch.inference_mode():
        vec = model.encode_query(model.tokenize([sample], "query"))[0].float().cpu()  # (vocab,)
    nz = torch.nonzero(vec > 0).flatten().tolist()
    bodies["query_tokens.json"] = query_tokens_body(names, {model.vocab[i]: float(vec[i]) for i in nz})
    # 4. the OpenSearch 3.3+ ANN variant: a SEISMIC sparse_vector index keyed by token id
    bodies["index_ann.json"] = ann_index_body(names)
    bodies["query_tokens_ann.json"] = query_tokens_ann_body(names, {str(i): float(vec[i]) for i in nz})
    # 5. hybrid search with BM25, as chosen on validation (training writes hybrid.json)
    if names.hybrid is not None:
        bodies["hybrid_query.json"] = hybrid_query_body(
            names, QUERY_MODEL_ID if is_inference_free else DOC_MODEL_ID
        )

    paths = {}
    for name, body in bodies.items():
        paths[name] = out / name
        atomic_write_text(paths[name], json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "README.md", rest_readme(model, names, doc_zip, query_zip, card_sections or []))
    return OpenSearchBundle(out, doc_zip, query_zip, paths)


def rest_readme(
    model: Retriever, names: OpenSearchNames, doc_zip: Path, query_zip: Path | None, card_sections: list[str]
) -> str:
    """The exact REST calls, in order, with the bodies in this folder."""
    inference_free = query_zip is not None
    q_id = QUERY_MODEL_ID if inference_free else DOC_MODEL_ID
    lines = [
        f"# {names.model_name}: OpenSearch bundle",
        "",
        f"Exported by `sparse-tune export --format opensearch` from a `{model.head_name}` model "
        f"(activation `{model.config.activation}`, documents truncated at {model.config.max_doc_length} tokens, "
        f"queries at {model.config.max_query_length}).",
        "",
        "| file | what |",
        "|---|---|",
        f"| `{doc_zip.name}` | `SPARSE_ENCODING` model: TorchScript `{doc_zip.stem.removesuffix('-doc')}.pt` + "
        "`tokenizer.json` (truncation = max_doc_length) |",
    ]
    if inference_free:
        lines.append(
            f"| `{query_zip.name}` | `SPARSE_TOKENIZE` model: `tokenizer.json` (truncation = max_query_length) + "
            "`idf.json` (every non-special token) |"
        )
    lines += [
        "| `register_*.json` | registration bodies (sha256 + size of the zip, `url`) |",
        "| `register_*_chunked.json` | the same for upload in 10 MB chunks (no `url`, `total_chunks`) |",
        "| `ingest_pipeline.json`, `search_pipeline.json`, `index.json`, `query.json` | the bodies below |",
        "| `query_tokens.json` | a query vector computed by sparse_tune (works without any deployed model) |",
        "",
        "Replace `<DOCUMENT_MODEL_ID>` / `<QUERY_MODEL_ID>` with the ids the cluster returns. "
        f"{'SPLADE encodes queries with the document model, so both are the same id.' if not inference_free else ''}",
        "",
        "## 1. Cluster settings (dev / single-node clusters)",
        "```",
        "PUT /_cluster/settings",
        "<cluster_settings.json>",
        "```",
        "`allow_registering_model_via_url` / `..._via_local_file` are only needed for the `url` form below; "
        "`only_run_on_ml_node: false` lets a cluster without dedicated ML nodes run the model.",
        "",
        "## 2. Register and deploy the model(s)",
        "The zips must be reachable by the cluster at the `url` in the register body "
        "(`--url-base https://host/path` at export time; default: a `file://` URL of this folder). Then:",
        "```",
        "POST /_plugins/_ml/models/_register",
        "<register_document_model.json>",
        "GET  /_plugins/_ml/tasks/<task_id>            # until state=COMPLETED; gives model_id",
        "POST /_plugins/_ml/models/<DOCUMENT_MODEL_ID>/_deploy",
        "GET  /_plugins/_ml/tasks/<task_id>            # until state=COMPLETED",
        "```",
        "Without a URL, upload the zip in chunks instead:",
        "```",
        "POST /_plugins/_ml/models/meta",
        "<register_document_model_chunked.json>        # gives model_id",
        f"POST /_plugins/_ml/models/<DOCUMENT_MODEL_ID>/upload_chunk/<n>   # n = 0..total_chunks-1, "
        f"body = bytes [n*{CHUNK_SIZE}, (n+1)*{CHUNK_SIZE}) of the zip",
        "POST /_plugins/_ml/models/<DOCUMENT_MODEL_ID>/_deploy",
        "```",
    ]
    if inference_free:
        lines += [
            "Same for the query tokenizer (`register_query_model.json` / `register_query_model_chunked.json`) "
            "-> `<QUERY_MODEL_ID>`.",
        ]
    lines += [
        "",
        "Check a model: `POST /_plugins/_ml/_predict/sparse_encoding/<DOCUMENT_MODEL_ID>` with "
        '`{"text_docs": ["hello world"]}`'
        + (
            "; the tokenizer: `POST /_plugins/_ml/_predict/sparse_tokenize/<QUERY_MODEL_ID>` with the same body."
            if inference_free
            else "."
        ),
        "",
        "## 3. Pipelines and index",
        "```",
        f"PUT /_ingest/pipeline/{names.ingest_pipeline}",
        "<ingest_pipeline.json>",
        f"PUT /_search/pipeline/{names.search_pipeline}",
        "<search_pipeline.json>",
        f"PUT /{names.index}",
        "<index.json>",
        "```",
        f"The index uses both pipelines by default (`index.default_pipeline`, `index.search.default_pipeline`). "
        f'Documents: `POST /{names.index}/_doc` with `{{"id": "d1", "{names.text_field}": "..."}}` '
        f"(or `_bulk`); the ingest pipeline writes `{names.embedding_field}`.",
        "",
        "## 4. Query",
        "```",
        f"GET /{names.index}/_search",
        "<query.json>                                   # model_id = " + q_id,
        "```",
        "or, with the query vector computed outside the cluster, `<query_tokens.json>`.",
        "",
        "## 5. OpenSearch 3.3+: approximate (SEISMIC) index instead",
        "```",
        f"PUT /{names.index}-ann",
        "<index_ann.json>                               # index.sparse: true, sparse_vector + seismic method",
        f"GET /{names.index}-ann/_search",
        "<query_tokens_ann.json>                        # token-id query_tokens + method_parameters {k, top_n, "
        "heap_factor}",
        "```",
        "`sparse_vector` keys are vocabulary ids (`sparse_embedding_format: TOKEN_ID`); the ANN index has no "
        "two-phase search pipeline, since OpenSearch documents that ANN queries must not run under one. "
        "`sparse-tune evaluate --backend opensearch --sparse-index seismic` measures recall against exact "
        "scoring and latency before you switch.",
        "",
        *_hybrid_readme(names, q_id),
        "## Notes",
        '- The TorchScript module returns the raw `(batch, vocab)` vector as `{"output": tensor}` '
        "(opensearch-py-ml's `NeuralSparseModel` convention); ml-commons maps non-zero entries to tokens and drops "
        "special tokens. Traced with torch "
        f"{torch.__version__}; if the cluster's bundled PyTorch (DJL) is older and refuses the file, re-export "
        "with a torch version matching it.",
        "- Documents indexed by the ingest pipeline store raw tokens as `rank_features` keys, which is what "
        "`neural_sparse` queries match. sparse_tune's own `OpenSearchBackend` escapes `.` and `%` in feature names "
        "(for its `rank_feature` queries), so do not mix documents from the two paths in one index.",
        (
            f"- The ingest processor prunes documents with `prune_type: {names.prune_type}`, `prune_ratio: "
            f"{names.prune_ratio}`; `sparse-tune evaluate --prune-type {names.prune_type} --prune-ratio "
            f"{names.prune_ratio}` measures the same pruning offline (same semantics as neural-search's PruneUtils)."
            if names.prune_type != "none"
            else "- Vectors are not pruned (no `prune_type` in the ingest processor), so the index holds exactly the "
            "weights sparse_tune evaluates with; export with `--prune-type`/`--prune-ratio` to trade recall for "
            "index size (measure first with `sparse-tune evaluate --prune-type ...`)."
        ),
        "- Where these calls were checked: sparse_tune's tests (tests/test_export.py) reload the TorchScript "
        "file and the tokenizer zip and compare them with the eager model, and send `index.json` to "
        "osmem-server (an OpenSearch-compatible test server), which accepts it. osmem does not implement "
        "`/_plugins/_ml/...`, `/_ingest/pipeline`, `/_search/pipeline` or the `neural_sparse` query, so the "
        "registration, pipeline and query bodies were checked as JSON against the ml-commons / neural-search "
        "documentation only, not against a running OpenSearch node.",
    ]
    if instructions(model):
        lines.append(
            "- The model was trained with instructions (`instructions.json`). "
            + (
                f"`ingest_pipeline.json` puts the document instruction `{model.config.doc_instruction}` in front "
                f"of `{names.text_field}` before encoding (a script processor; its scratch field is removed after). "
                if model.config.doc_instruction
                else ""
            )
            + (
                f"Put the query instruction `{model.config.query_instruction}` in front of every `query_text`, as "
                "`query.json` does: the cluster encodes the query text it is sent."
                if model.config.query_instruction
                else ""
            )
        )
    return "\n".join(lines + [""] + [s.strip("\n") + "\n" for s in card_sections])


def _hybrid_readme(names: OpenSearchNames, model_id: str) -> list[str]:
    """README section for hybrid search with BM25 (only when the model folder had ``hybrid.json``)."""
    fusion = names.fusion()
    if fusion is None:
        return []
    assert names.hybrid is not None
    chosen = names.hybrid.get("validation_ndcg@10")
    on = f" (nDCG@10 {chosen:.4f} on its validation queries)" if chosen is not None else ""
    lines = [
        "## 6. Hybrid search: this model with BM25",
        f"Training chose `{fusion}` for the model and BM25{on}; `hybrid_query.json` is the query "
        f"(model_id = {model_id}, the model's clause first, then a `match` on `{names.text_field}`).",
    ]
    if fusion.method == "sum":
        lines += [
            "A raw weighted sum is no pipeline technique, so the query is a `bool.should` with the weights as "
            "boosts and needs no pipeline:",
            "```",
            f"GET /{names.index}/_search",
            "<hybrid_query.json>",
            "```",
        ]
    else:
        lines += [
            f"`search_pipeline.json` carries the fusion (`phase_results_processors`) next to the two-phase "
            f"processor; the index's default search pipeline is `{names.search_pipeline}`, so after step 3:",
            "```",
            f"PUT /_search/pipeline/{names.search_pipeline}",
            "<search_pipeline.json>",
            f"GET /{names.index}/_search",
            "<hybrid_query.json>",
            "```",
            "(or `GET /<index>/_search?search_pipeline=<name>` on an index with another default pipeline).",
        ]
    return [*lines, ""]
