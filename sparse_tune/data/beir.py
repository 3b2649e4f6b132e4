"""BEIR folders: loading with validation, training examples, and writing subsets.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score`` with a
header row; the published files use CRLF).

We parse the files ourselves instead of calling beir's ``GenericDataLoader``.
Importing ``beir.datasets.data_loader`` is cheap (it does not import
sentence-transformers), but beir is an optional extra of this package and its
loader cannot report *where* a file is wrong: a qrels query id missing from
``queries.jsonl`` is a bare ``KeyError``, a corpus id missing from the corpus is not
noticed at all, and malformed JSON has no line number. The result is the same as
``GenericDataLoader(folder).load(split)`` (queries restricted to those with qrels),
which ``tests/test_beir_loader.py`` checks on SciFact.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from sparse_tune.data.errors import DataError
from sparse_tune.data.jsonl import iter_json_lines
from sparse_tune.types import BeirSplit, Corpus, Qrels

_LAYOUT = (
    'a BEIR folder needs corpus.jsonl ({"_id", "title", "text"} per line), queries.jsonl '
    '({"_id", "text"} per line) and qrels/<split>.tsv (query-id, corpus-id, score; header row)'
)
QRELS_HEADER = ("query-id", "corpus-id", "score")


def _jsonl_objects(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; DataError on malformed JSON or non-objects."""
    for lineno, _raw, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _id(obj: dict[str, Any], path: Path, lineno: int) -> str:
    if "_id" not in obj:
        raise DataError(path, lineno, 'missing "_id"')
    value = obj["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(path, lineno, f'"_id" must be a string, got {type(value).__name__}')
    return str(value)  # some corpora use integer ids; BEIR's qrels are strings


def _str_field(obj: dict[str, Any], key: str, path: Path, lineno: int, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DataError(path, lineno, f'missing "{key}"')
        return ""
    if not isinstance(value, str):
        raise DataError(path, lineno, f'"{key}" must be a string, got {type(value).__name__}')
    return value


def read_corpus_jsonl(path: str | PathLike[str]) -> Corpus:
    """A corpus JSONL (``{"_id", "title"?, "text"}``) as a :class:`Corpus` in file order.

    ``texts[i]`` is ``(title + " " + text).strip()``, the text BEIR's encoders read.
    Duplicate ids are an error: a run cannot tell two documents with one id apart.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "corpus file not found")
    ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, obj in _jsonl_objects(path):
        doc_id = _id(obj, path, lineno)
        if doc_id in first_line:
            raise DataError(
                path, lineno, f"duplicate document id '{doc_id}' (first on line {first_line[doc_id]})"
            )
        first_line[doc_id] = lineno
        title = _str_field(obj, "title", path, lineno, required=False)
        text = _str_field(obj, "text", path, lineno, required=True)
        ids.append(doc_id)
        titles.append(title)
        texts.append((title + " " + text).strip())
    if not ids:
        raise DataError(path, None, "empty corpus")
    return Corpus(ids=ids, texts=texts, titles=titles)


def read_queries_jsonl(path: str | PathLike[str]) -> dict[str, str]:
    """``queries.jsonl`` as ``{query id: text}`` in file order."""
    path = Path(path)
    queries: dict[str, str] = {}
    for lineno, obj in _jsonl_objects(path):
        qid = _id(obj, path, lineno)
        if qid in queries:
            raise DataError(path, lineno, f"duplicate query id '{qid}'")
        queries[qid] = _str_field(obj, "text", path, lineno, required=True)
    return queries


def read_qrels_tsv(path: str | PathLike[str]) -> tuple[Qrels, dict[tuple[str, str], int]]:
    """A BEIR qrels file as (qrels, {(query id, doc id): line number}).

    The line numbers let callers point at the row that names an unknown id. A header
    row (non-integer score) is skipped; CRLF is accepted.
    """
    path = Path(path)
    qrels: Qrels = {}
    where: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise DataError(
                    path,
                    lineno,
                    f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}",
                )
            qid, doc_id, score_s = (c.strip() for c in row)
            try:
                score = int(score_s)
            except ValueError:
                if lineno == 1:  # the header row
                    continue
                raise DataError(path, lineno, f"score must be an integer, got '{score_s}'") from None
            qrels.setdefault(qid, {})[doc_id] = score
            where[(qid, doc_id)] = lineno
    if not qrels:
        raise DataError(path, None, "no relevance judgements")
    return qrels, where


def _qrels_path(folder: Path, split: str) -> Path:
    return folder / "qrels" / f"{split}.tsv"


def has_split(folder: str | PathLike[str], split: str) -> bool:
    """Whether the BEIR folder has qrels for ``split`` (what :func:`load_beir` reads for it)."""
    return _qrels_path(Path(folder), split).is_file()


def _beir_files(folder: Path, split: str) -> tuple[Path, Path, Path]:
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", _qrels_path(folder, split)
    missing = [p.relative_to(folder).as_posix() for p in (corpus, queries, qrels) if not p.is_file()]
    if missing:
        splits = (
            sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        )
        have = f"; splits present: {', '.join(splits)}" if splits else ""
        raise DataError(folder, None, f"missing {', '.join(missing)}{have}; {_LAYOUT}")
    return corpus, queries, qrels


def load_beir(folder: str | PathLike[str], split: str = "test", *, corpus: Corpus | None = None) -> BeirSplit:
    """Load a BEIR split: (corpus, queries that have qrels in this split, qrels).

    Every query id and document id in the qrels must exist in ``queries.jsonl`` and
    the corpus; otherwise ``DataError`` names the qrels file, the line and the id.
    ``corpus``: this folder's corpus as an earlier call returned it, for a caller that reads
    several splits (the corpus is the large file; it is then parsed once, and returned as is).
    """
    folder = Path(folder)
    corpus_path, queries_path, qrels_path = _beir_files(folder, split)
    corpus = corpus if corpus is not None else read_corpus_jsonl(corpus_path)
    all_queries = read_queries_jsonl(queries_path)
    qrels, where = read_qrels_tsv(qrels_path)
    doc_ids = set(corpus.ids)
    for (qid, doc_id), lineno in where.items():
        if qid not in all_queries:
            raise DataError(qrels_path, lineno, f"query id '{qid}' is not in {queries_path.name}")
        if doc_id not in doc_ids:
            raise DataError(qrels_path, lineno, f"corpus id '{doc_id}' is not in {corpus_path.name}")
    queries = {qid: all_queries[qid] for qid in qrels}
    return corpus, queries, qrels


def load_corpus_any(path: str | PathLike[str]) -> Corpus:
    """A corpus from a BEIR folder (its ``corpus.jsonl``) or a corpus JSONL file."""
    path = Path(path)
    if path.is_dir():
        if not (path / "corpus.jsonl").is_file():
            raise DataError(path, None, f"folder has no corpus.jsonl; {_LAYOUT}")
        return read_corpus_jsonl(path / "corpus.jsonl")
    if path.is_file():
        return read_corpus_jsonl(path)
    raise DataError(path, None, "not found: expected a BEIR folder or a corpus JSONL file")


def positives_from_qrels(qrels: Qrels) -> dict[str, list[str]]:
    """Relevant documents per query: judgements with score > 0 (BEIR's convention), qrels order."""
    return {qid: [d for d, s in rels.items() if s > 0] for qid, rels in qrels.items()}


def beir_training_examples(
    folder: str | PathLike[str],
    split: str = "train",
    n_negatives: int = 7,
    seed: int = 42,
    loaded: BeirSplit | None = None,
) -> list[dict[str, Any]]:
    """``{"query", "pos", "neg"}`` examples from a BEIR split with *random* negatives.

    Positives are the documents judged relevant (score > 0); negatives are drawn
    uniformly from the rest of the corpus. Random negatives are the cheap baseline;
    ``sparse-tune mine`` gives hard ones. Queries without a positive are skipped.
    Deterministic for a given ``seed``. ``loaded``: the split as :func:`load_beir` returned
    it, for a caller that already read it (a large corpus is then parsed once).
    """
    corpus, queries, qrels = loaded if loaded is not None else load_beir(folder, split)
    rng = random.Random(seed)
    index_of = {d: i for i, d in enumerate(corpus.ids)}
    examples: list[dict[str, Any]] = []
    for qid, pos_ids in positives_from_qrels(qrels).items():
        if not pos_ids:
            continue
        pos_rows = {index_of[d] for d in pos_ids}
        k = min(n_negatives, len(corpus) - len(pos_rows))
        neg_rows: list[int] = []
        seen: set[int] = set()
        while len(neg_rows) < k:
            j = rng.randrange(len(corpus))
            if j not in pos_rows and j not in seen:
                seen.add(j)
                neg_rows.append(j)
        examples.append(
            {
                "query": queries[qid],
                "pos": [corpus.texts[index_of[d]] for d in pos_ids],
                "neg": [corpus.texts[j] for j in neg_rows],
            }
        )
    return examples


def write_beir_subset(
    source: str | PathLike[str],
    target: str | PathLike[str],
    queries_per_split: dict[str, int],
    n_other_docs: int,
    dev_queries: int = 0,
    dev_from: str = "train",
) -> dict[str, int]:
    """Write a small BEIR folder cut from ``source`` (for examples and tests).

    For each split, the first ``n`` queries in qrels file order are kept with all
    their judgements; the corpus is every judged document plus the first
    ``n_other_docs`` other documents in corpus order. Files keep BEIR's layout (qrels
    header, CRLF) and the source's line order and raw JSON fields, so the subset is
    deterministic and loads with any BEIR reader. Returns counts for a README.

    ``dev_queries`` > 0 also writes ``qrels/dev.tsv``: the next queries of ``dev_from`` (after
    the ones kept for it, qrels file order) whose judged documents are all in that corpus, so
    the dev split adds queries and changes no other file; a subset trained on ``dev_from`` can
    then choose weights on queries it never trained on.
    """
    source, target = Path(source), Path(target)
    chosen: dict[str, Qrels] = {}
    for split, n in queries_per_split.items():
        _, _, qrels = load_beir(source, split)
        chosen[split] = {qid: qrels[qid] for qid in list(qrels)[:n]}
    judged = {d for q in chosen.values() for rels in q.values() for d in rels}

    (target / "qrels").mkdir(parents=True, exist_ok=True)
    n_docs = n_other = 0
    kept_docs: set[str] = set()
    with (target / "corpus.jsonl").open("w", encoding="utf-8", newline="\n") as dst:
        for _lineno, raw, obj in iter_json_lines(source / "corpus.jsonl"):
            doc_id = str(obj["_id"])
            if doc_id in judged or n_other < n_other_docs:
                n_other += doc_id not in judged
                n_docs += 1
                kept_docs.add(doc_id)
                dst.write(raw)
    if dev_queries > 0:
        if "dev" in chosen:
            raise ValueError("dev_queries would overwrite the dev split given in queries_per_split")
        _, _, qrels = load_beir(source, dev_from)
        taken = set(chosen.get(dev_from, {}))
        fits = [q for q in qrels if q not in taken and set(qrels[q]) <= kept_docs]
        chosen["dev"] = {qid: qrels[qid] for qid in fits[:dev_queries]}
    keep_queries = {qid for q in chosen.values() for qid in q}
    with (target / "queries.jsonl").open("w", encoding="utf-8", newline="\n") as dst:
        for _lineno, raw, obj in iter_json_lines(source / "queries.jsonl"):
            if str(obj["_id"]) in keep_queries:
                dst.write(raw)
    counts = {"docs": n_docs, "other_docs": n_other}
    for split, qrels in chosen.items():
        with (target / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\r\n")
            writer.writerow(QRELS_HEADER)
            pairs = 0
            for qid, rels in qrels.items():
                for doc_id, score in rels.items():
                    writer.writerow((qid, doc_id, score))
                    pairs += 1
        counts[f"{split}_queries"] = len(qrels)
        counts[f"{split}_pairs"] = pairs
    return counts
