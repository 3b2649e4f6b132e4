"""Training JSONL in the formats people already have, normalised to one shape.

Hard-negative files come from FlagEmbedding, sentence-transformers scripts, our own
miner and ad-hoc exports; each names its fields differently. Rather than ask users to
convert, every line's format is detected from its keys and normalised to
``{"query": str, "pos": list[str], "neg": list[str]}``. Validation happens here, line
by line, because a bad record found later (inside a collator, mid-epoch) has lost the
file and line that would let someone fix it.

Accepted line formats (extra keys are ignored; negatives may be absent):

========================  ===================  =============================
positives key             negatives key        notes
========================  ===================  =============================
``pos``                   ``neg``              FlagEmbedding / sparse_tune
``positive``              ``negative``
``pos_doc``               ``neg_doc``          ``pos_doc`` may be a string
``pos``                   ``negs``
========================  ===================  =============================

A string is accepted wherever a list of positives (or negatives) is expected. The query
may be spelled ``anchor`` (sentence-transformers' ``anchor/positive/negative`` triplets and
``anchor/positive`` pairs, whose negatives are the other queries' positives in the batch).

Labelled pairs, ``{"sentence1", "sentence2", "label"}`` (``score`` is accepted for
``label``: sentence-transformers' ContrastiveLoss / CosineSimilarityLoss data), normalise to
``{"query": sentence1, "pos": [sentence2], "neg": [], "label": float}``: ``pos`` then holds
the paired text whatever its label, which the pair losses read with the label. A file holds
one kind of line: labelled pairs or query/positives, never both.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparse_tune.data.errors import DataError
from sparse_tune.data.jsonl import parse_json_line
from sparse_tune.fsio import atomic_path

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

#: A normalised training example.
Example = dict[str, Any]


@dataclass(frozen=True)
class LineFormat:
    """One accepted spelling of a training line: which keys hold positives and negatives."""

    name: str
    pos_key: str
    neg_key: str


FORMATS: tuple[LineFormat, ...] = (
    LineFormat("pos/neg", "pos", "neg"),
    LineFormat("positive/negative", "positive", "negative"),
    LineFormat("pos_doc/neg_doc", "pos_doc", "neg_doc"),
    LineFormat("pos/negs", "pos", "negs"),
)
_NEG_KEYS = {f.neg_key for f in FORMATS}
_ACCEPTED = "; ".join(f'{{"query", "{f.pos_key}": [...], "{f.neg_key}": [...]}}' for f in FORMATS)


def detect_format(record: dict[str, Any]) -> LineFormat | None:
    """The format whose keys a record uses, or ``None`` when no format fits.

    A record must name one positives key and at most one negatives key, and that
    negatives key must belong to the same format (``pos`` with ``negative`` is
    refused: it is more likely a typo than a deliberate mix).
    """
    negs_present = _NEG_KEYS & record.keys()
    if len(negs_present) > 1:
        return None
    for fmt in FORMATS:
        if fmt.pos_key not in record:
            continue
        if not negs_present or fmt.neg_key in negs_present:
            return fmt
    return None


def _texts(value: Any, field: str, allow_empty: bool) -> list[str]:
    """A string or list of strings as a list; raises ``ValueError`` naming the field."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f'"{field}" must be a string or a list of strings, got {type(value).__name__}')
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ValueError(f'"{field}"[{i}] must be a string, got {type(text).__name__}')
    out = [t for t in value if t.strip()]
    if not out and not allow_empty:
        raise ValueError(f'"{field}" is empty: every example needs at least one non-empty positive')
    return out


_PAIR_KEYS = ("sentence1", "sentence2")
_LABEL_KEYS = ("label", "score")


def _text(record: dict[str, Any], key: str) -> str:
    """A required non-empty string field; raises ``ValueError`` naming it."""
    if key not in record:
        raise ValueError(f'missing "{key}"')
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f'"{key}" must be a string, got {type(value).__name__}')
    if not value.strip():
        raise ValueError(f'"{key}" is empty')
    return value


def _labelled_pair(record: dict[str, Any]) -> Example:
    """``{"sentence1", "sentence2", "label"|"score"}`` as ``{"query", "pos": [s2], "neg": [], "label"}``."""
    first, second = (_text(record, k) for k in _PAIR_KEYS)
    keys = [k for k in _LABEL_KEYS if k in record]
    if len(keys) != 1:
        raise ValueError('a sentence1/sentence2 pair needs exactly one of "label" or "score"')
    label = record[keys[0]]
    if isinstance(label, bool) or not isinstance(label, (int, float)) or not 0.0 <= label <= 1.0:
        raise ValueError(f'"{keys[0]}" must be a number in [0, 1], got {label!r}')
    return {"query": first, "pos": [second], "neg": [], "label": float(label)}


def is_labelled(example: Example) -> bool:
    """Whether an example is a labelled pair (``sentence1/sentence2/label``) rather than query/positives."""
    return "label" in example


def normalize_record(record: Any) -> Example:
    """Validate one parsed line and return it as ``{"query", "pos", "neg"}`` (plus ``"label"`` for pairs).

    Raises ``ValueError`` with a one-line reason (the caller adds file and line).
    Empty or whitespace-only negatives are dropped rather than refused: they carry
    no signal and some exporters pad with them.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if any(k in record for k in _PAIR_KEYS):
        return _labelled_pair(record)
    fmt = detect_format(record)
    if fmt is None:
        raise ValueError(
            f"unknown format (keys: {sorted(record)}); accepted formats: {_ACCEPTED}; "
            '"anchor" for "query"; {"sentence1", "sentence2", "label"}'
        )
    query_key = "anchor" if "anchor" in record and "query" not in record else "query"
    query = _text(record, query_key)
    pos = _texts(record[fmt.pos_key], fmt.pos_key, allow_empty=False)
    neg = _texts(record.get(fmt.neg_key, []), fmt.neg_key, allow_empty=True)
    return {"query": query, "pos": pos, "neg": neg}


def scan_training_jsonl(path: str | PathLike[str]) -> tuple[list[Example], list[DataError]]:
    """Read every valid example and collect one ``DataError`` per bad line (never raises for a line).

    Blank lines are skipped silently. A UTF-8 BOM and CRLF line endings are accepted.
    Raises ``DataError`` only when the file itself is unusable (missing, not UTF-8).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found (expected training JSONL: one JSON object per line)")
    examples: list[Example] = []
    errors: list[DataError] = []
    try:
        with path.open(encoding="utf-8-sig", newline=None) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = parse_json_line(line, path, lineno)
                except DataError as e:
                    errors.append(e)
                    continue
                try:
                    example = normalize_record(record)
                    if examples and is_labelled(example) != is_labelled(examples[0]):
                        raise ValueError(_mixed_kinds(examples[0]))
                    examples.append(example)
                except ValueError as e:
                    errors.append(DataError(path, lineno, str(e)))
    except UnicodeDecodeError as e:
        raise DataError(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    return examples, errors


def _mixed_kinds(first: Example) -> str:
    kinds = ("query/positives", "labelled pairs (sentence1/sentence2/label)")
    this, other = (kinds[1], kinds[0]) if is_labelled(first) else kinds
    return f"this line is {other} but the data before it are {this}; a file holds one kind"


def read_training_jsonl(
    path: str | PathLike[str], skip_bad_lines: bool = False, skipped: list[DataError] | None = None
) -> list[Example]:
    """Load training JSONL as normalised ``{"query", "pos", "neg"}`` dicts.

    With ``skip_bad_lines=False`` the first bad line raises ``DataError`` (file, line,
    reason). With ``True`` bad lines are skipped and their count logged as a warning;
    pass a list as ``skipped`` to receive the errors of the skipped lines (so a caller
    can report the count again at the end of a run). A file with no valid example at
    all always raises.
    """
    examples, errors = scan_training_jsonl(path)
    if skipped is not None and skip_bad_lines:
        skipped.extend(errors)
    if errors and not skip_bad_lines:
        raise errors[0]
    if errors:
        logger.warning("%s: skipped %d bad line(s); first: %s", path, len(errors), errors[0])
    if not examples:
        detail = f" ({len(errors)} bad line(s) skipped; first: {errors[0].message})" if errors else ""
        raise DataError(path, None, f"empty file: no training examples{detail}")
    return examples


def write_training_jsonl(path: str | PathLike[str], examples: Iterable[Example]) -> int:
    """Write examples as ``{"query", "pos", "neg"}`` JSON lines (UTF-8, ``\\n``); returns the count.

    Keys other than these three are dropped so the file is readable by any tool that
    knows the FlagEmbedding format, including :func:`read_training_jsonl`. Labelled pairs
    are written as ``{"sentence1", "sentence2", "label"}`` (sentence-transformers' columns).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    # Written to a temporary name and renamed: an interrupted run never leaves half a file
    # under the final name for a later run to train on.
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        for ex in examples:
            if is_labelled(ex):
                row = {"sentence1": ex["query"], "sentence2": ex["pos"][0], "label": ex["label"]}
            else:
                row = {"query": ex["query"], "pos": list(ex["pos"]), "neg": list(ex.get("neg", []))}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def make_groups(
    examples: Sequence[Example],
    docs_per_query: int,
    seed: int,
    corpus_texts: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Turn examples into fixed-size groups ``{"query", "docs": [pos, neg_1, ..., neg_{G-1}]}``.

    The contrastive losses need the same group size ``G`` for every query (docs of
    query ``i`` are rows ``i*G:(i+1)*G``) and read the first document as the positive.
    A query judged relevant to many documents trains on all of them: one group per
    positive (in the example's order), so each step sees one positive of the query and
    every positive is seen once per epoch. Per group, ``G-1`` negatives are drawn
    without replacement from the example's negatives; only if it has too few are they
    reused (every negative appears at least once first). An
    example with no negatives borrows random corpus documents that are not among its
    positives when ``corpus_texts`` is given; otherwise that is a ``DataError``.
    Deterministic for a given ``seed``. Labelled pairs become groups of their one paired
    text with the label, ``{"query", "docs": [text], "label"}``, whatever ``docs_per_query``.
    """
    if docs_per_query < 1:
        raise DataError("<training examples>", None, f"docs_per_query={docs_per_query}: must be >= 1")
    if examples and is_labelled(examples[0]):
        return _labelled_groups(examples)
    rng = random.Random(seed)
    n_neg = docs_per_query - 1
    groups: list[dict[str, Any]] = []
    for i, ex in enumerate(examples):
        for pos in dict.fromkeys(ex["pos"]):  # a positive listed twice is still one positive
            groups.append(
                {"query": ex["query"], "docs": [pos, *_negatives_for(ex, i, n_neg, rng, corpus_texts)]}
            )
    return groups


def _negatives_for(
    ex: Example, i: int, n_neg: int, rng: random.Random, corpus_texts: Sequence[str] | None
) -> list[str]:
    """``n_neg`` negatives of example ``i`` for one group (see :func:`make_groups`)."""
    docs_per_query = n_neg + 1
    negs = list(ex.get("neg") or [])
    if n_neg == 0:
        chosen: list[str] = []
    elif len(negs) >= n_neg:
        chosen = rng.sample(negs, n_neg)
    elif negs:
        chosen = rng.sample(negs, len(negs)) + rng.choices(negs, k=n_neg - len(negs))
    elif corpus_texts:
        chosen = _corpus_negatives(corpus_texts, set(ex["pos"]), n_neg, rng)
        if chosen is None:
            raise DataError(
                "<training examples>",
                i + 1,
                f"docs_per_query={docs_per_query}: example has no negatives and the corpus has no "
                "document that is not one of its positives",
            )
    else:
        raise DataError(
            "<training examples>",
            i + 1,
            f"docs_per_query={docs_per_query} needs {n_neg} negative(s) per query but this example has "
            "none; mine hard negatives (`sparse-tune mine`), pass a corpus to fill with random "
            "documents, or use docs_per_query=1",
        )
    return chosen


def _labelled_groups(examples: Sequence[Example]) -> list[dict[str, Any]]:
    """One group per labelled pair; every example must be one (a source holds one kind)."""
    groups = []
    for i, ex in enumerate(examples):
        if not is_labelled(ex):
            raise DataError("<training examples>", i + 1, _mixed_kinds(examples[0]))
        groups.append({"query": ex["query"], "docs": [ex["pos"][0]], "label": ex["label"]})
    return groups


def _corpus_negatives(
    corpus: Sequence[str], positives: set[str], k: int, rng: random.Random
) -> list[str] | None:
    """``k`` random corpus texts that are not positives (distinct while the corpus allows)."""
    candidates_left = len(corpus)
    picked: dict[int, str] = {}
    tries = 0
    while len(picked) < k and tries < 20 * k + 100:  # rejection sampling: cheap when positives are few
        tries += 1
        j = rng.randrange(candidates_left)
        if j not in picked and corpus[j] not in positives:
            picked[j] = corpus[j]
    if len(picked) < k:  # tiny corpus: fall back to an exhaustive scan, then reuse
        pool = [t for t in corpus if t not in positives]
        if not pool:
            return None
        extra = [t for j, t in enumerate(corpus) if t not in positives and j not in picked]
        out = list(picked.values()) + extra
        return out[:k] if len(out) >= k else out + rng.choices(pool, k=k - len(out))
    return list(picked.values())


def load_training_dataset(
    path: str | PathLike[str],
    skip_bad_lines: bool = False,
    docs_per_query: int | None = None,
    seed: int = 42,
    corpus_texts: Sequence[str] | None = None,
) -> Dataset:
    """Validated training data as a Hugging Face ``datasets.Dataset``.

    Validation runs first (so errors carry file and line), then the rows go through
    ``Dataset.from_list``, which gives Arrow-backed storage, ``.map`` caching and the
    ``Trainer`` integration. Columns are ``query``/``pos``/``neg``; with
    ``docs_per_query`` they are the grouped ``query``/``docs`` of :func:`make_groups`.
    """
    from datasets import Dataset, Features, Value
    from datasets import Sequence as HFSequence

    examples = read_training_jsonl(path, skip_bad_lines=skip_bad_lines)
    if docs_per_query is not None:
        groups = make_groups(examples, docs_per_query, seed, corpus_texts)
        columns = {"query": Value("string"), "docs": HFSequence(Value("string"))}
        if is_labelled(examples[0]):
            columns["label"] = Value("float64")
        return Dataset.from_list(groups, features=Features(columns))
    columns = {
        "query": Value("string"),
        "pos": HFSequence(Value("string")),
        "neg": HFSequence(Value("string")),
    }
    if is_labelled(examples[0]):
        columns["label"] = Value("float64")
    return Dataset.from_list(examples, features=Features(columns))
