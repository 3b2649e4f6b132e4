"""A small BEIR folder with the shapes real datasets have and scifact does not.

- 45 documents with odd ids (``doc/3#a``, ``007`` next to ``7``, an empty title, non-ASCII
  text): fewer than the shipped recipes' mining ranges reach (2-100, 20-200);
- 26 training queries and no dev split, so validation must come from the training queries;
- one query (``q/0#x``) judged relevant to 10 documents, graded 1 and 2, plus 3 rows graded 0;
- one query (``q/25#x``) whose every row is graded 0 (not a training query);
- qrels with CRLF line ends, as BEIR publishes them.

A query shares words with a few documents only, so BM25's ranks 20-200 (splade's recipe) hold
no match at all and ranks 2-100 (distillation's) only a few: mining must fill from elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = [
    "aspirin", "insulin", "statins", "vitamin", "caffeine", "melatonin", "ibuprofen", "penicillin",
    "metformin", "warfarin", "lithium", "morphine", "cortisone", "heparin", "digoxin", "atropine",
    "quinine", "codeine", "ketamine", "naloxone", "clozapine", "dopamine", "serotonin", "histamine",
    "estrogen",
]  # fmt: skip
EFFECTS = ["bleeding", "glucose", "cholesterol", "bone density", "sleep", "pain", "infection", "weight"]

MANY_POSITIVES = "q/0#x"  # 10 positives (grades 1 and 2) and 3 rows graded 0
ALL_ZERO = "q/25#x"  # every row graded 0


def doc_id(i: int) -> str:
    return {7: "007", 8: "7"}.get(i, f"doc/{i}#a")  # "007" and "7" are two documents


def write_shaped_beir(folder: Path) -> Path:
    """Write the folder (see the module docstring); returns it."""
    (folder / "qrels").mkdir(parents=True)
    docs = []
    for i in range(45):
        topic = TOPICS[i % len(TOPICS)] if i >= 10 else "aspirin"
        effect = EFFECTS[i % len(EFFECTS)]
        title = "" if i == 3 else f"{topic.title()} report"
        text = f"{topic} and {effect}: trial {i}."
        if i == 5:
            text += " Étude réalisée à Zürich (café, naïve)."
        docs.append({"_id": doc_id(i), "title": title, "text": text})
    # query i (1..24) is about the topic of its positive, document 10 + i - 1
    queries = [{"_id": f"q/{i}#x", "text": f"{TOPICS[(9 + i) % len(TOPICS)]} outcomes"} for i in range(26)]
    queries[0]["text"] = "aspirin bleeding"
    rows = [(MANY_POSITIVES, doc_id(i), 2 if i < 4 else 1) for i in range(10)]
    rows += [(MANY_POSITIVES, doc_id(i), 0) for i in (20, 21, 22)]
    rows += [(f"q/{i}#x", doc_id(10 + i - 1), 1) for i in range(1, 25)]  # one positive each
    rows += [(ALL_ZERO, doc_id(40), 0), (ALL_ZERO, doc_id(41), 0)]
    with (folder / "corpus.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    with (folder / "queries.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    with (folder / "qrels" / "train.tsv").open("w", encoding="utf-8", newline="") as f:
        f.write("query-id\tcorpus-id\tscore\r\n")
        f.writelines(f"{q}\t{d}\t{s}\r\n" for q, d, s in rows)
    return folder
