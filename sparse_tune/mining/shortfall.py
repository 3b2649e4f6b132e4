"""Queries whose rank window holds too few negatives: topped up, never a crash.

A small corpus (fewer documents than the window's end), short queries that share few terms
with the corpus, or many judged documents per query leave some queries with fewer negatives
in ranks ``lo..hi`` than asked. Training would then repeat the few it has, or stop when there
are none. So mining fills the gap, hardest first: the next ranks below the window
(``hi+1..2*hi``, in ranking order), then random corpus documents (seeded per query). Neither
ever adds a judged positive (any grade > 0), a document whose text duplicates a positive or the
query, or a document ranked above the window (those are the likely unjudged positives the
window skips). Documents judged 0 are ordinary negatives. A query still without any negative
(the corpus holds nothing but its positives) is dropped and counted.

What happened is one :class:`ShortfallReport`: logged as one line and written next to the
mined file (:func:`write_report`), so a run folder says how its negatives were found.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from os import PathLike
from pathlib import Path

from sparse_tune.types import Corpus

__all__ = ["ShortfallReport", "fill_negatives", "random_fill", "report_path", "write_report"]


@dataclass
class ShortfallReport:
    """How the negatives of one mined split were found; counts are queries."""

    negatives: int = 0  # negatives asked per query
    rank_range: tuple[int, int] = (1, 1)  # the window, 1-based inclusive
    fill_ranks: tuple[int, int] = (1, 1)  # the ranks below it that top up short queries
    queries: int = 0  # queries kept (with at least one negative)
    short: int = 0  # queries the window left with fewer than ``negatives``
    from_ranks: int = 0  # of those, topped up (at least partly) from ``fill_ranks``
    from_random: int = 0  # of those, topped up (at least partly) with random corpus documents
    still_short: int = 0  # kept with fewer than ``negatives`` (the corpus has no more to give)
    dropped: int = 0  # queries with no negative at all, left out of the mined file
    seed: int = 0

    def start(self, negatives: int, rank_range: tuple[int, int], seed: int) -> None:
        """Begin a mining with these settings: every count back to 0, ranks below the window set."""
        fresh = ShortfallReport(negatives, rank_range, (rank_range[1] + 1, 2 * rank_range[1]), seed=seed)
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def count(self, kept: int, from_ranks: int, from_random: int) -> None:
        """Note one short query after filling: ``kept`` negatives, how many came from each source."""
        self.from_ranks += from_ranks > 0
        self.from_random += from_random > 0
        self.still_short += 0 < kept < self.negatives

    def line(self) -> str:
        """One log line: how many queries were short and where their negatives came from."""
        lo, hi = self.rank_range
        total = self.queries + self.dropped
        if not self.short and not self.dropped:
            return f"mining: all {total} queries got {self.negatives} negatives in ranks {lo}-{hi}"
        a, b = self.fill_ranks
        text = (
            f"mining: {self.short} of {total} queries got fewer than {self.negatives} negatives in ranks "
            f"{lo}-{hi}; filled {self.from_ranks} from ranks {a}-{b} and {self.from_random} with random "
            f"corpus documents (seed {self.seed}), never a judged positive"
        )
        if self.still_short:
            text += f"; {self.still_short} still have fewer (the corpus has no more)"
        if self.dropped:
            text += f"; {self.dropped} dropped (no negative at all)"
        return text

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "rank_range": list(self.rank_range),
            "fill_ranks": list(self.fill_ranks),
            "summary": self.line(),
        }


def fill_negatives(
    negatives: list[str],
    below: list[str],
    excluded: set[str],
    banned_texts: set[str],
    corpus: Corpus,
    text_of: Mapping[str, str],
    n: int,
    rng: random.Random,
) -> tuple[list[str], int, int]:
    """``negatives`` (ids) topped up to ``n``: ``below`` in order, then random corpus documents.

    ``below`` holds the ids ranked below the window, best first; ``text_of`` maps the corpus
    ids to their texts (built once by the caller). Neither source adds an id in
    ``excluded`` (positives, documents ranked above the window), a text in ``banned_texts``
    (a positive's or the query's) or an id already there. Returns (ids, how many came from
    ``below``, how many at random); fewer than ``n`` only when the corpus has no more.
    """
    taken = set(negatives) | excluded
    from_ranks = [d for d in below if d not in taken and text_of[d] not in banned_texts][: n - len(negatives)]
    taken.update(from_ranks)
    rows = random_fill(
        len(corpus),
        lambda j: corpus.ids[j] not in taken and corpus.texts[j] not in banned_texts,
        n - len(negatives) - len(from_ranks),
        rng,
    )
    return [*negatives, *from_ranks, *(corpus.ids[j] for j in rows)], len(from_ranks), len(rows)


def random_fill(
    n_docs: int,
    eligible: Callable[[int], bool],
    k: int,
    rng: random.Random,
) -> list[int]:
    """Up to ``k`` distinct corpus rows in ``range(n_docs)`` for which ``eligible(row)``, drawn with ``rng``.

    Rejection sampling first (cheap when most rows are eligible, as in a large corpus), then an
    exhaustive scan when that did not find enough (a tiny corpus): fewer than ``k`` only when the
    corpus has no more eligible rows.
    """
    picked: dict[int, None] = {}
    seen: set[int] = set()
    for _ in range(20 * k + 100):
        if len(picked) >= k or len(seen) >= n_docs:
            break
        j = rng.randrange(n_docs)
        if j in seen:
            continue
        seen.add(j)
        if eligible(j):
            picked[j] = None
    if len(picked) < k:
        rest = [j for j in range(n_docs) if j not in seen and eligible(j)]
        picked.update(dict.fromkeys(rng.sample(rest, min(k - len(picked), len(rest)))))
    return list(picked)


def report_path(mined: str | PathLike[str]) -> Path:
    """Where a mined file's report goes: ``<name>.mining_report.json`` beside it."""
    mined = Path(mined)
    return mined.with_name(f"{mined.stem}.mining_report.json")


def write_report(mined: str | PathLike[str], reports: dict[str, ShortfallReport] | ShortfallReport) -> Path:
    """Write the report of a mined file (one split, or ``{split: report}``) beside it; returns the path."""
    from sparse_tune.fsio import atomic_write_text

    if isinstance(reports, ShortfallReport):
        body: dict = reports.to_json()
    else:
        body = {split: r.to_json() for split, r in reports.items()}
    path = report_path(mined)
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path
