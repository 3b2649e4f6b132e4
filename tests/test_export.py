"""Exported models must score exactly like the model they came from, wherever they are loaded.

Each format is exported once per module (small max lengths, so "longer than the limit" texts
stay short) and reloaded the way its consumer loads it: ``torch.jit.load`` + the zip's
``tokenizer.json`` for ml-commons' SPARSE_ENCODING, ``tokenizers`` + ``idf.json`` for its
SPARSE_TOKENIZE, sentence-transformers' ``SparseEncoder`` / ``SentenceTransformer``, and
``AutoModelForMaskedLM`` / ``AutoModel`` for the Hugging Face folder.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from sparse_tune.export import export_model

MAX_DOC, MAX_QUERY = 24, 10
DOCS = [
    "The cat sat on the mat.",
    "Learned sparse retrieval expands documents with related vocabulary terms, U.S. style.",
    "neural sparse retrieval with learned term weights and document expansion " * 4,  # > MAX_DOC tokens
    "a",
]
QUERIES = ["what is sparse retrieval?", "cats", "one two three four five six seven eight nine ten eleven"]
SHORT_QUERIES = QUERIES[:2]  # within MAX_QUERY: sentence-transformers truncates SPLADE queries at MAX_DOC
TOL = 1e-5


def _shrink(model):
    model.config.max_doc_length, model.config.max_query_length = MAX_DOC, MAX_QUERY
    return model.eval()


@pytest.fixture(scope="module")
def splade(_splade_tiny):
    return _shrink(copy.deepcopy(_splade_tiny))


@pytest.fixture(scope="module")
def inference_free(tmp_path_factory, _splade_tiny):
    from sparse_tune.data.idf import compute_idf, save_idf
    from sparse_tune.models import load_model

    path = tmp_path_factory.mktemp("idf") / "idf.json"
    idf = compute_idf(DOCS + ["cats and dogs", "retrieval of documents"], _splade_tiny.tokenizer)
    idf["retrieval"] = 0.0  # a zero weight must stay zero (not OpenSearch's missing-token 1.0)
    save_idf(path, idf)
    return _shrink(load_model("splade-tiny", head="inference_free", idf_path=str(path)))


@pytest.fixture(scope="module")
def dense():
    from sparse_tune.models import load_model

    return _shrink(load_model("minilm-l6"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, splade, inference_free, dense):
    """{(model, format): folder}, each exported once."""
    root = tmp_path_factory.mktemp("export")
    results = root / "results.json"
    results.write_text(
        json.dumps({"ft": {"nDCG@10": 0.51234, "doc_nnz": 120.5, "step": 100, "backend": "embedded"}})
    )
    models = {"splade": splade, "inference_free": inference_free, "dense": dense}
    jobs = [
        ("splade", "opensearch"),
        ("inference_free", "opensearch"),
        ("splade", "sentence-transformers"),
        ("inference_free", "sentence-transformers"),
        ("dense", "sentence-transformers"),
        ("splade", "hf"),
        ("inference_free", "hf"),
        ("dense", "hf"),
    ]
    out = {}
    for name, fmt in jobs:
        out[name, fmt] = root / f"{name}-{fmt}"
        export_model(name, fmt, out[name, fmt], model=models[name], results=results)
    return out


def _ours(model, texts, side):
    with torch.no_grad():
        feats = model.tokenize(texts, side)
        return model.encode_query(feats) if side == "query" else model.encode_document(feats)  # (batch, dim)


def _unzip(zip_path: Path, dest: Path) -> dict[str, Path]:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
        return {n: dest / n for n in zf.namelist()}


# -- OpenSearch: SPARSE_ENCODING (TorchScript) ------------------------------------------------------
@pytest.mark.parametrize("name", ["splade", "inference_free"])
def test_torchscript_zip_reproduces_document_vectors(name, exported, request, tmp_path) -> None:
    from tokenizers import Tokenizer

    model = request.getfixturevalue(name)
    files = _unzip(next(exported[name, "opensearch"].glob("*-doc.zip")), tmp_path)
    assert sorted(files) == sorted(["tokenizer.json", next(n for n in files if n.endswith(".pt"))])
    traced = torch.jit.load(str(next(p for n, p in files.items() if n.endswith(".pt"))))
    tok = Tokenizer.from_file(str(files["tokenizer.json"]))  # what ml-commons' DJL tokenizer reads
    for text in DOCS:
        enc = tok.encode(text)
        ids = torch.tensor([enc.ids])  # (1, seq_len): one text per call, as ml-commons sends them
        assert ids.tolist() == model.tokenize([text], "document")["input_ids"].tolist()  # same truncation
        with torch.no_grad():
            got = traced({"input_ids": ids, "attention_mask": torch.tensor([enc.attention_mask])})["output"]
        want = _ours(model, [text], "document")
        assert got.shape == want.shape and (got - want).abs().max().item() < TOL
        # ml-commons' translator: non-zero id -> decode([id], skip_special_tokens=True), "" dropped
        special = set(model.tokenizer.all_special_ids)
        for i in torch.nonzero(got[0]).flatten().tolist():
            assert tok.decode([i], skip_special_tokens=True) == ("" if i in special else model.vocab[i])
    assert len(tok.encode(DOCS[2]).ids) == MAX_DOC
    feats = model.tokenize(DOCS, "document")  # a padded batch goes through the same graph
    with torch.no_grad():
        batch = traced({"input_ids": feats["input_ids"], "attention_mask": feats["attention_mask"]})["output"]
    assert (batch - _ours(model, DOCS, "document")).abs().max().item() < TOL


# -- OpenSearch: SPARSE_TOKENIZE (tokenizer.json + idf.json) --------------------------------------
def test_tokenizer_zip_reproduces_query_vectors_exactly(inference_free, exported, tmp_path) -> None:
    from tokenizers import Tokenizer

    model = inference_free
    files = _unzip(next(exported["inference_free", "opensearch"].glob("*-query-tokenizer.zip")), tmp_path)
    assert sorted(files) == ["idf.json", "tokenizer.json"]
    tok = Tokenizer.from_file(str(files["tokenizer.json"]))
    idf = json.loads(files["idf.json"].read_text(encoding="utf-8"))
    assert idf["retrieval"] == 0.0
    want = _ours(model, QUERIES, "query")
    for row, text in enumerate(QUERIES):
        # ml-commons SparseTokenizerModel: distinct ids -> decode(skip special) -> idf.getOrDefault(token, 1.0)
        tokens = {tok.decode([i], skip_special_tokens=True) for i in tok.encode(text).ids}
        server = {t: idf.get(t, 1.0) for t in tokens if t}
        ours = {model.vocab[j]: want[row, j].item() for j in torch.nonzero(want[row]).flatten().tolist()}
        assert {t: w for t, w in server.items() if w != 0.0} == ours
    assert len(tok.encode(QUERIES[2]).ids) == MAX_QUERY


def test_register_bodies_carry_the_zip_hash_and_size(exported) -> None:
    import hashlib

    folder = exported["inference_free", "opensearch"]
    for role, function in (("document", "SPARSE_ENCODING"), ("query", "SPARSE_TOKENIZE")):
        body = json.loads((folder / f"register_{role}_model.json").read_text())
        zip_path = Path(body["url"].removeprefix("file://"))
        assert zip_path.parent == folder.resolve()
        assert body["function_name"] == function and body["model_format"] == "TORCH_SCRIPT"
        assert body["model_content_size_in_bytes"] == zip_path.stat().st_size
        assert body["model_content_hash_value"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()
        chunked = json.loads((folder / f"register_{role}_model_chunked.json").read_text())
        assert "url" not in chunked and chunked["total_chunks"] >= 1
    assert not (exported["splade", "opensearch"] / "register_query_model.json").exists()
    readme = (folder / "README.md").read_text()
    for call in (
        "POST /_plugins/_ml/models/_register",
        "_deploy",
        "PUT /_ingest/pipeline/",
        "PUT /_search/pipeline/",
    ):
        assert call in readme
    assert "nDCG@10" in readme  # the card's evaluation table follows the REST calls
    query_model = {
        f: json.loads((exported[f, "opensearch"] / "query.json").read_text())["query"]["neural_sparse"]
        for f in ("splade", "inference_free")
    }
    assert query_model["splade"]["passage_embedding"]["model_id"] == "<DOCUMENT_MODEL_ID>"
    assert query_model["inference_free"]["passage_embedding"]["model_id"] == "<QUERY_MODEL_ID>"


def _send(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_rest_bodies_against_the_test_server(exported, splade, opensearch_url, fresh_index, tmp_path) -> None:
    """Send every body osmem has an endpoint for; record what it does with the ml-commons/pipeline ones."""
    from tokenizers import Tokenizer

    from sparse_tune.index.opensearch_mappings import encode_feature

    folder = exported["splade", "opensearch"]
    bodies = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}  # all valid JSON
    probes = {
        "register": ("POST", "/_plugins/_ml/models/_register", bodies["register_document_model.json"]),
        "register_meta": (
            "POST",
            "/_plugins/_ml/models/meta",
            bodies["register_document_model_chunked.json"],
        ),
        "ingest_pipeline": ("PUT", "/_ingest/pipeline/t-export-ingest", bodies["ingest_pipeline.json"]),
        "search_pipeline": ("PUT", "/_search/pipeline/t-export-search", bodies["search_pipeline.json"]),
    }
    statuses = {k: _send(opensearch_url, *v)[0] for k, v in probes.items()}
    print(f"osmem statuses: {statuses}")
    for status in statuses.values():  # accepted, or osmem has no such endpoint -- never a 5xx
        assert status < 500

    status, reply = _send(opensearch_url, "PUT", f"/{fresh_index}", bodies["index.json"])
    assert status == 200 and reply.get("acknowledged"), reply
    # Index what the ingest pipeline would write (the traced model's tokens), bypassing the default
    # pipeline (osmem has none to run), and score it by hand.
    files = _unzip(next(folder.glob("*-doc.zip")), tmp_path)
    traced = torch.jit.load(str(next(p for n, p in files.items() if n.endswith(".pt"))))
    tok = Tokenizer.from_file(str(files["tokenizer.json"]))
    enc = tok.encode(DOCS[1])
    with torch.no_grad():
        vec = traced(
            {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask])}
        )
    vec = vec["output"][0]
    special = set(splade.tokenizer.all_special_ids)
    doc = {splade.vocab[i]: vec[i].item() for i in torch.nonzero(vec).flatten().tolist() if i not in special}
    field = bodies["query.json"]["query"]["neural_sparse"]
    (emb_field,) = field
    # sparse_tune's rank_feature queries need '.'-free feature names (see opensearch_mappings)
    source = {"id": "d1", "passage_text": DOCS[1], emb_field: {encode_feature(t): w for t, w in doc.items()}}
    status, reply = _send(
        opensearch_url, "PUT", f"/{fresh_index}/_doc/d1?refresh=true&pipeline=_none", source
    )
    assert status in (200, 201), reply
    query = {
        t: w
        for t, w in bodies["query_tokens.json"]["query"]["neural_sparse"][emb_field]["query_tokens"].items()
    }
    clauses = [
        {"rank_feature": {"field": f"{emb_field}.{encode_feature(t)}", "linear": {}, "boost": w}}
        for t, w in query.items()
    ]
    status, reply = _send(
        opensearch_url, "POST", f"/{fresh_index}/_search", {"query": {"bool": {"should": clauses}}}
    )
    assert status == 200, reply
    expected = sum(w * doc.get(t, 0.0) for t, w in query.items())
    hits = reply["hits"]["hits"]
    assert hits and hits[0]["_id"] == "d1"
    assert hits[0]["_score"] == pytest.approx(expected, rel=1e-2)  # rank_features keeps ~9 significant bits


# -- sentence-transformers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["splade", "inference_free"])
def test_sparse_encoder_loads_the_export(name, exported, request) -> None:
    SparseEncoder = pytest.importorskip("sentence_transformers").SparseEncoder

    model = request.getfixturevalue(name)
    st = SparseEncoder(str(exported[name, "sentence-transformers"]), device="cpu")
    queries = QUERIES if name == "inference_free" else SHORT_QUERIES
    kw = {"convert_to_tensor": True, "convert_to_sparse_tensor": False}
    with torch.no_grad():
        docs = st.encode_document(DOCS, **kw)
        qs = st.encode_query(queries, **kw)
    assert (docs - _ours(model, DOCS, "document")).abs().max().item() < TOL
    assert (qs - _ours(model, queries, "query")).abs().max().item() < TOL


def test_sentence_transformer_loads_the_dense_export(dense, exported) -> None:
    SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer

    st = SentenceTransformer(str(exported["dense", "sentence-transformers"]), device="cpu")
    with torch.no_grad():
        got = st.encode_document(DOCS, convert_to_tensor=True)
    assert (got - _ours(dense, DOCS, "document")).abs().max().item() < TOL


# -- Hugging Face --------------------------------------------------------------------------------------
def test_hf_folder_loads_with_auto_classes(splade, dense, exported) -> None:
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    folder = exported["splade", "hf"]
    tok = AutoTokenizer.from_pretrained(folder)
    mlm = AutoModelForMaskedLM.from_pretrained(folder).eval()
    batch = tok(DOCS, padding=True, truncation=True, max_length=MAX_DOC, return_tensors="pt")
    with torch.no_grad():
        logits = mlm(**batch).logits  # (batch, seq_len, vocab)
    vec = (torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)).amax(dim=1)
    assert (vec - _ours(splade, DOCS, "document")).abs().max().item() < TOL
    card = (folder / "README.md").read_text()
    assert "| ft | embedded | 0.5123 |" in card and "AutoModelForMaskedLM" in card

    folder = exported["dense", "hf"]
    enc = AutoModel.from_pretrained(folder).eval()
    batch = AutoTokenizer.from_pretrained(folder)(
        DOCS, padding=True, truncation=True, max_length=MAX_DOC, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = enc(**batch).last_hidden_state  # (batch, seq_len, hidden)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert (emb - _ours(dense, DOCS, "document")).abs().max().item() < TOL
    assert "Pooling: `mean`" in (folder / "README.md").read_text()


def test_hf_idf_json_has_no_special_tokens_and_matches_the_zip(inference_free, exported, tmp_path) -> None:
    """Every non-special token with its query weight, no [CLS]/[SEP]/...; the same file in both exports."""
    model = inference_free
    hf_idf = json.loads((exported["inference_free", "hf"] / "idf.json").read_text(encoding="utf-8"))
    specials = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"}
    assert specials <= set(model.vocab) and specials.isdisjoint(hf_idf)
    special_ids = {model.vocab.index(t) for t in specials}
    assert sorted(model.tokenizer.all_special_ids) == sorted(special_ids)
    weights = torch.relu(model.idf.detach().float()).tolist()  # (vocab,), what the query side uses
    assert hf_idf == {t: weights[i] for i, t in enumerate(model.vocab) if i not in special_ids}
    assert len(hf_idf) == len(model.vocab) - 5 and hf_idf["retrieval"] == 0.0
    zip_path = next(exported["inference_free", "opensearch"].glob("*-query-tokenizer.zip"))
    assert json.loads(_unzip(zip_path, tmp_path)["idf.json"].read_text(encoding="utf-8")) == hf_idf


def test_results_table_names_rows_by_their_model_field():
    from sparse_tune.export.model_card import results_table

    rows = {
        "runs/x on scifact (test, embedded)": {
            "model": "runs/x", "dataset": "scifact", "split": "test", "backend": "embedded", "nDCG@10": 0.61234,
        },
        "old": {"nDCG@10": 0.5, "note": "hand-written"},
    }  # fmt: skip
    assert results_table(rows).splitlines() == [
        "| model | dataset | split | backend | nDCG@10 |",
        "|---|---|---|---|---|",
        "| runs/x | scifact | test | embedded | 0.6123 |",
        "| old |  |  |  | 0.5000 |",
        "",
        "Evaluation context: `note=hand-written`",
    ]


def test_results_table_tells_rows_of_other_settings_apart():
    from sparse_tune.export.model_card import results_table

    base = {"model": "m", "dataset": "d", "split": "test", "backend": "embedded"}
    rows = {
        "m on d (test, embedded)": {**base, "settings": {"top_k": 100}, "nDCG@10": 0.6},
        "m on d (test, embedded; top_k=10)": {**base, "settings": {"top_k": 10}, "nDCG@10": 0.5},
    }
    assert results_table(rows).splitlines() == [
        "| model | dataset | split | backend | settings | nDCG@10 |",
        "|---|---|---|---|---|---|",
        "| m | d | test | embedded |  | 0.6000 |",
        "| m | d | test | embedded | top_k=10 | 0.5000 |",
    ]


def test_cli_exports_a_checkpoint_with_its_trainer_state(inference_free, exported, tmp_path) -> None:
    """A saved checkpoint (with trainer_state.json) through the CLI: the card shows the run; reload is exact."""
    from sparse_tune.cli.__main__ import main
    from sparse_tune.models import load_model

    ckpt = tmp_path / "ckpt"
    inference_free.save_pretrained(ckpt)
    (ckpt / "trainer_state.json").write_text(
        json.dumps(
            {"global_step": 40, "epoch": 1.0, "log_history": [{"loss": 1.25, "flops_doc": 0.5, "step": 40}]}
        )
    )
    out = tmp_path / "hf"
    assert (
        main(["export", "--model", str(ckpt), "--format", "hf", "--output", str(out), "--name", "my-if"]) == 0
    )
    card = (out / "README.md").read_text()
    assert "# my-if" in card and "steps: `40`" in card and "loss=1.25" in card
    assert (out / "idf.json").is_file()
    reloaded = load_model(str(out))
    assert reloaded.head_name == "inference_free"
    assert torch.equal(_ours(reloaded, QUERIES, "query"), _ours(inference_free, QUERIES, "query"))
    # a non-empty output folder is refused (exit 2, no traceback) unless --overwrite
    assert main(["export", "--model", str(ckpt), "--format", "hf", "--output", str(out)]) == 2


def test_dense_models_have_no_opensearch_bundle(dense, tmp_path) -> None:
    from sparse_tune.export import ExportError

    with pytest.raises(ValueError, match="sparse models"):
        export_model("minilm-l6", "opensearch", tmp_path / "os", model=dense)
    with pytest.raises(ExportError, match="only apply to --format opensearch"):
        export_model("minilm-l6", "hf", tmp_path / "hf", model=dense, url_base="http://x")


def test_package_never_imports_sentence_transformers() -> None:
    code = (
        "import sys; import sparse_tune.export, sparse_tune.export.sentence_transformers, "
        "sparse_tune.export.opensearch, sparse_tune.export.hf, sparse_tune.cli.export; "
        "assert 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_opensearch_export_carries_the_fusion_chosen_in_training(splade, tmp_path) -> None:
    """A model folder with hybrid.json: search_pipeline.json fuses hybrid queries, hybrid_query.json uses it."""
    ckpt = tmp_path / "run"
    splade.save_pretrained(ckpt)
    hybrid = {
        "fusion": "minmax",
        "weights": [0.3, 0.7],
        "retrievers": ["model", "bm25"],
        "validation_ndcg@10": 0.7,
    }
    (ckpt / "hybrid.json").write_text(json.dumps(hybrid))
    out = tmp_path / "os"
    export_model(str(ckpt), "opensearch", out, name="hyb")
    pipeline = json.loads((out / "search_pipeline.json").read_text())
    assert [next(iter(p)) for p in pipeline["request_processors"]] == ["neural_sparse_two_phase_processor"]
    assert pipeline["phase_results_processors"] == [
        {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
            }
        }
    ]
    query = json.loads((out / "hybrid_query.json").read_text())
    model_clause, match_clause = query["query"]["hybrid"]["queries"]
    assert model_clause == {
        "neural_sparse": {
            "passage_embedding": {
                "query_text": "what is a sparse retriever?",
                "model_id": "<DOCUMENT_MODEL_ID>",
            }
        }
    }
    assert (
        match_clause == {"match": {"passage_text": {"query": "what is a sparse retriever?"}}}
        and query["size"] == 100
    )
    readme = (out / "README.md").read_text()
    assert "## 6. Hybrid search" in readme and "PUT /_search/pipeline/sparse-index-two-phase" in readme


def test_sum_fusion_exports_a_weighted_bool_query_and_no_fusion_processor() -> None:
    from sparse_tune.export.opensearch import OpenSearchNames, hybrid_query_body, search_pipeline_body

    names = OpenSearchNames("m", hybrid={"fusion": "sum", "weights": [1.0, 2.0]})
    assert "phase_results_processors" not in search_pipeline_body(names)
    should = hybrid_query_body(names, "<ID>")["query"]["bool"]["should"]
    assert [c["bool"]["boost"] for c in should] == [1.0, 2.0]
    assert "phase_results_processors" not in search_pipeline_body(OpenSearchNames("m"))
    with pytest.raises(ValueError, match="weights"):
        OpenSearchNames("m", hybrid={"fusion": "rrf", "weights": [-1, 1]})
