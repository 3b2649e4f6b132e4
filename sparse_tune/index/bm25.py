"""In-process BM25 that scores like the OpenSearch ``text`` field this package indexes.

The embedded backend needs BM25 for hard-negative mining and as an evaluation
baseline without a server, and its rankings should agree with OpenSearch's so that
switching backends does not change the mined data. So this follows Lucene 9's
``BM25Similarity`` with OpenSearch's defaults:

    score(q, d) = sum over query tokens t of  idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t)      = log(1 + (N - df + 0.5) / (df + 0.5))

with ``k1 = 1.2``, ``b = 0.75``; ``dl`` is the document's token count and ``avgdl``
the mean over the collection. Lucene dropped the constant ``(k1 + 1)`` numerator
factor in version 8, so scores here equal OpenSearch's up to Lucene's lossy one-byte
encoding of ``dl``. A token repeated in the query counts once per repetition, as in
a ``match`` query (one SHOULD clause per token).

Analysis follows the OpenSearch index this repo creates (``opensearch_mappings``: a
``text`` field with the ``english`` analyzer, as BEIR's Elasticsearch BM25 baseline):
Unicode word tokens, English possessive removal, lowercase, Lucene's 33 English stop
words, Porter stemming (Lucene's ``PorterStemmer`` is Martin Porter's C version, ported
below). ``analyzer="standard"`` keeps only tokenising and lowercasing, like OpenSearch's
default ``standard`` analyzer. Word splitting approximates UAX#29 (Lucene's
``StandardTokenizer``) with a regular expression: word characters, joined across ``.``
and apostrophes between letters and across ``,`` between digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.sparse as sp

Analyzer = Literal["english", "standard"]

# UAX#29 word rules as Lucene's StandardTokenizer applies them, for the cases that matter in
# English text: runs of letters, digits and "_" (superscripts and other "No" numbers are not
# word characters); letters join across . ' \u2019 : when a letter follows (U.S.A, don't,
# background:chronic) and digits across . , ; ' when a digit follows (3.5, 1,000); nothing
# joins a digit to a letter across punctuation (aging.1 -> aging 1). A few pictographs (the
# (c), (R) and TM signs, emoji) are tokens of their own.
_W = r"[^\W\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff]"
_LETTER = r"[^\W\d_]"
_WORD = re.compile(
    rf"{_W}+(?:(?:(?<={_LETTER})[.'\u2019:](?={_LETTER})|(?<=\d)[.,;'\u2019](?=\d)){_W}+)*"
    r"|[\u00a9\u00ae\u203c\u2049\u2122\u2139\U0001f000-\U0001faff]",
    re.UNICODE,
)

#: Lucene ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``.
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


def analyze_standard(text: str) -> list[str]:
    """Word tokens, lowercased (OpenSearch's ``standard`` analyzer, no stop words)."""
    return _WORD.findall(text.lower())


def analyze_english(text: str) -> list[str]:
    """OpenSearch's ``english`` analyzer: possessive ``'s`` removed, lowercase, stop words, Porter stem."""
    out = []
    for tok in _WORD.findall(text):
        if len(tok) >= 2 and tok[-1] in "sS" and tok[-2] in "'\u2019":
            tok = tok[:-2]
        tok = tok.lower()
        if tok and tok not in ENGLISH_STOP_WORDS:
            out.append(porter_stem(tok))
    return out


ANALYZERS: dict[str, Callable[[str], list[str]]] = {"english": analyze_english, "standard": analyze_standard}


def analyze(text: str, analyzer: Analyzer = "english") -> list[str]:
    """Tokens of ``text`` as the named analyzer indexes them."""
    return ANALYZERS[analyzer](text)


# --- Porter stemmer (Martin Porter's C version, as in Lucene's PorterStemmer) -------------------


class _Porter:
    """One word's stemming state: ``b`` the buffer, ``k`` its last index, ``j`` a suffix boundary."""

    def __init__(self, word: str) -> None:
        self.b = list(word)
        self.k = len(word) - 1
        self.j = 0

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in "aeiou":
            return False
        if ch == "y":
            return True if i == 0 else not self.cons(i - 1)
        return True

    def m(self) -> int:
        """Number of vowel-consonant sequences in b[0..j]."""
        n, i, j = 0, 0, self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowel_in_stem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def doublec(self, j: int) -> bool:
        return j >= 1 and self.b[j] == self.b[j - 1] and self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        n = len(s)
        if n > self.k + 1 or "".join(self.b[self.k - n + 1 : self.k + 1]) != s:
            return False
        self.j = self.k - n
        return True

    def setto(self, s: str) -> None:
        self.b[self.j + 1 :] = list(s)
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def step1ab(self) -> None:
        if self.b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.setto("i")
            elif self.b[self.k - 1] != "s":
                self.k -= 1
            del self.b[self.k + 1 :]
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowel_in_stem():
            self.k = self.j
            del self.b[self.k + 1 :]
            if self.ends("at"):
                self.setto("ate")
            elif self.ends("bl"):
                self.setto("ble")
            elif self.ends("iz"):
                self.setto("ize")
            elif self.doublec(self.k):
                if self.b[self.k] not in "lsz":
                    self.k -= 1
            elif self.m() == 1 and self.cvc(self.k):  # j == k here: the measure of the stem
                self.setto("e")
        del self.b[self.k + 1 :]

    def step1c(self) -> None:
        if self.ends("y") and self.vowel_in_stem():
            self.b[self.k] = "i"

    _STEP2 = {
        "a": (("ational", "ate"), ("tional", "tion")),
        "c": (("enci", "ence"), ("anci", "ance")),
        "e": (("izer", "ize"),),
        "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
        "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
        "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
        "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
        "g": (("logi", "log"),),
    }
    _STEP3 = {
        "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
        "i": (("iciti", "ic"),),
        "l": (("ical", "ic"), ("ful", "")),
        "s": (("ness", ""),),
    }
    _STEP4 = {
        "a": ("al",),
        "c": ("ance", "ence"),
        "e": ("er",),
        "i": ("ic",),
        "l": ("able", "ible"),
        "n": ("ant", "ement", "ment", "ent"),
        "o": ("ion", "ou"),
        "s": ("ism",),
        "t": ("ate", "iti"),
        "u": ("ous",),
        "v": ("ive",),
        "z": ("ize",),
    }

    def _replace(self, rules: tuple[tuple[str, str], ...]) -> None:
        for suffix, repl in rules:
            if self.ends(suffix):  # the first matching suffix decides, whether or not m() allows it
                self.r(repl)
                return

    def step2(self) -> None:
        if self.k >= 1:
            self._replace(self._STEP2.get(self.b[self.k - 1], ()))

    def step3(self) -> None:
        self._replace(self._STEP3.get(self.b[self.k], ()))

    def step4(self) -> None:
        if self.k < 1:
            return
        for suffix in self._STEP4.get(self.b[self.k - 1], ()):
            if self.ends(suffix):
                if suffix == "ion" and not (self.j >= 0 and self.b[self.j] in "st"):
                    continue
                if self.m() > 1:
                    self.k = self.j
                return

    def step5(self) -> None:
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.doublec(self.k) and self.m() > 1:
            self.k -= 1

    def stem(self) -> str:
        if self.k > 1:  # words of one or two letters are left alone
            for step in (self.step1ab, self.step1c, self.step2, self.step3, self.step4, self.step5):
                step()
                del self.b[self.k + 1 :]
        return "".join(self.b[: self.k + 1])


@lru_cache(maxsize=200_000)
def porter_stem(word: str) -> str:
    """Porter stem of a lowercase word (cached: corpora repeat words)."""
    return _Porter(word).stem()


class BM25Index:
    """BM25 over a fixed list of texts; ``score`` returns a dense ``(n_queries, n_docs)`` matrix.

    The collection is stored as one CSR matrix of per-(doc, term) BM25 weights, so
    scoring a batch of queries is one sparse product (queries' term counts times the
    weight matrix), which takes well under a second for 5k documents x 1k queries.
    """

    def __init__(
        self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75, analyzer: Analyzer = "english"
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if analyzer not in ANALYZERS:
            raise ValueError(f"unknown analyzer '{analyzer}': choose one of {sorted(ANALYZERS)}")
        self.k1, self.b, self.analyzer = k1, b, analyzer
        self.vocab: dict[str, int] = {}
        analyze_fn = ANALYZERS[analyzer]
        counts = self._count([analyze_fn(t) for t in texts], grow=True)  # (n_docs, n_terms) term frequencies
        self.n_docs = counts.shape[0]
        dl = np.asarray(counts.sum(axis=1)).ravel()  # (n_docs,)
        self.avgdl = float(dl.mean()) if self.n_docs else 0.0
        df = np.bincount(counts.indices, minlength=len(self.vocab))  # (n_terms,)
        self.idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))  # (n_terms,)

        norm = k1 * (1.0 - b + b * dl / self.avgdl) if self.avgdl > 0 else np.full(self.n_docs, k1)
        tf = counts.data.astype(np.float64)
        rows = np.repeat(np.arange(self.n_docs), np.diff(counts.indptr))
        weights = self.idf[counts.indices] * tf / (tf + norm[rows])
        self.weights = sp.csr_matrix(
            (weights.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape
        )  # (n_docs, n_terms)

    def _count(self, token_lists: list[list[str]], grow: bool) -> sp.csr_matrix:
        """Term-count CSR with one row per token list; unknown terms are added (grow) or dropped."""
        indptr = [0]
        indices: list[int] = []
        for tokens in token_lists:
            for tok in tokens:
                j = self.vocab.get(tok)
                if j is None:
                    if not grow:
                        continue
                    j = self.vocab[tok] = len(self.vocab)
                indices.append(j)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float64)
        m = sp.csr_matrix(
            (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(token_lists), len(self.vocab)),
        )
        m.sum_duplicates()  # repeated tokens -> counts
        return m

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """BM25 of every query against every document, ``(n_queries, n_docs)`` float32."""
        analyze_fn = ANALYZERS[self.analyzer]
        q = self._count([analyze_fn(t) for t in queries], grow=False)  # (n_queries, n_terms)
        q = q.astype(np.float32)
        return (q @ self.weights.T).toarray()  # (n_queries, n_docs)
