"""Live teacher ensemble: frozen dense and sparse retrievers that score each batch's candidates.

Each teacher is a :class:`~sparse_tune.models.retriever.Retriever` built by ``load_model``,
so a teacher reads its checkpoint exactly as a student would: its own tokenizer and, for a
sentence-transformers folder (``minilm-l6``), the pooling of ``1_Pooling/config.json`` and the
``Normalize`` module of ``modules.json``; for a masked-LM folder (``splade-tiny``) SPLADE's
log1p(relu) + masked max-pool; for one of our saved folders, its ``sparse_tune.json``.

Combination (also used by ``sparse-tune score``, so pre-computed and live scores agree):

1. each teacher scores query i against its candidates: (batch, group) raw scores;
2. each teacher's scores are min-max normalised per query to [0, 1]. A query whose
   candidates all get the same score from a teacher gets all zeros from it: a teacher that
   cannot tell the candidates apart contributes nothing to the ranking. (KL and MarginMSE
   are invariant to a per-query constant, so any constant would train identically; zero
   keeps the combined value's meaning "how much weight ranks this doc first".) "The same"
   allows for float noise: a row whose span is at most ``SPAN_RTOL`` x its largest
   magnitude (or ``SPAN_ATOL``) counts as constant. Without that tolerance, min-max would
   stretch a 1e-7 kernel wobble into the full [0, 1] range and flip the KL target's top
   document on a different CPU. Identical texts cannot wobble at all: each distinct text of
   a batch is encoded once and its representation reused (``teacher_scores``).
3. the normalised scores are summed with the teachers' weights (not renormalised), then
   multiplied by ``score_scale``, which sets the sharpness of the KL target
   (softmax(score_scale * combined / T)) and the margins' scale for MarginMSE.

Distributed training: the ensemble is a plain object, not an ``nn.Module`` attribute of the
student, so it is never wrapped by DDP, saved in checkpoints or seen by the optimizer. Each
rank builds its own copy once and calls :meth:`TeacherEnsemble.score` from its own
``compute_loss`` on its own share of the batch; distillation losses compare each query
with its own candidates only, so no teacher scores need to be gathered across ranks.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext

import torch

from sparse_tune.config import DEFAULT_SCORE_SCALE, TeacherConfig
from sparse_tune.models.retriever import Retriever
from sparse_tune.training.bm25_teacher import BM25Teacher
from sparse_tune.training.cross_encoder import CrossEncoderTeacher
from sparse_tune.training.hybrid_teacher import HybridTeacher, teacher_fusion

#: Teachers that score (query, document) pairs directly instead of encoding each side.
PairTeacher = CrossEncoderTeacher | BM25Teacher
Teacher = Retriever | PairTeacher | HybridTeacher

__all__ = [
    "TeacherConfig",
    "TeacherEnsemble",
    "combine_teacher_scores",
    "load_teacher",
    "min_max_normalize",
    "rectangular_batches",
]


# A row's span at or below max(SPAN_RTOL * max|score|, SPAN_ATOL) is float noise, not a ranking:
# fp32 dot products over a few hundred dimensions differ between CPU kernels (AMX / AVX-512 /
# AVX2, 1 or 2 threads) by a few 1e-7 relative; a teacher distinction below 1e-5 relative
# carries no information worth a KL target.
SPAN_RTOL = 1e-5
SPAN_ATOL = 1e-6


def min_max_normalize(scores: torch.Tensor) -> torch.Tensor:
    """Per-row (per-query) min-max scaling of (batch, group) scores to [0, 1].

    Rows that are constant up to float noise (span <= max(SPAN_RTOL * max|row|, SPAN_ATOL))
    map to all zeros, so noise is never stretched into a ranking.
    """
    if scores.dim() != 2:
        raise ValueError(f"expected (batch, group) scores, got shape {tuple(scores.shape)}")
    lo = scores.min(dim=1, keepdim=True).values  # (batch, 1)
    span = scores.max(dim=1, keepdim=True).values - lo  # (batch, 1)
    tol = (SPAN_RTOL * scores.abs().amax(dim=1, keepdim=True)).clamp_min(SPAN_ATOL)  # (batch, 1)
    real = span > tol
    return torch.where(real, (scores - lo) / torch.where(real, span, torch.ones_like(span)), 0.0)


def combine_teacher_scores(
    scores: Sequence[torch.Tensor], weights: Sequence[float], score_scale: float = 1.0
) -> torch.Tensor:
    """score_scale * sum_k weight_k * min_max_normalize(scores_k): (batch, group) float32."""
    if len(scores) != len(weights) or not scores:
        raise ValueError(
            f"need one weight per teacher score tensor, got {len(scores)} tensors and {len(weights)} weights"
        )
    shapes = {tuple(s.shape) for s in scores}
    if len(shapes) != 1:
        raise ValueError(f"teacher score tensors must share one (batch, group) shape, got {sorted(shapes)}")
    total = torch.zeros_like(scores[0], dtype=torch.float32)
    for s, w in zip(scores, weights, strict=True):
        total = total + w * min_max_normalize(s.float())
    return total * score_scale


def load_teacher(
    config: TeacherConfig,
    device: torch.device,
    max_query_length: int | None = None,
    max_doc_length: int | None = None,
) -> Teacher:
    """A frozen teacher in eval mode on ``device``; its kind must match ``config.type``.

    A checkpoint that cannot be read (no such folder, not on the hub, no network) raises
    ValueError naming the teacher, so the CLI reports it in one line.
    """
    from sparse_tune.models.io import load_model

    try:
        if config.type == "cross_encoder":
            length = (max_query_length or 0) + (max_doc_length or 0) or None
            return CrossEncoderTeacher(config.model, device, max_length=length)
        if config.type == "bm25":
            return BM25Teacher(config.model, device)
        overrides: dict[str, object] = {
            "max_query_length": max_query_length,
            "max_doc_length": max_doc_length,
        }
        if config.type == "dense":
            overrides["head"] = "dense"  # a dense teacher may be any AutoModel checkpoint
        model = load_model(config.model, **overrides)
    except OSError as exc:  # transformers' "not a local folder and not a valid hub id" and friends
        raise ValueError(f"{config.type} teacher '{config.model}' cannot be loaded: {exc}") from exc
    if config.type == "hybrid":
        if config.bm25 is None:
            raise ValueError(f"hybrid teacher '{config.model}' needs bm25: the corpus of its BM25 statistics")
        fusion, source = teacher_fusion(config.fusion, config.model)
        model.eval().requires_grad_(False)
        return HybridTeacher(model.to(device), BM25Teacher(config.bm25, device), fusion, source)
    if model.kind != config.type:
        raise ValueError(
            f"teacher '{config.model}' was declared {config.type} but loads as a {model.kind} "
            f"model (head {model.head_name}); fix its type in the teachers list"
        )
    model.eval().requires_grad_(False)
    return model.to(device)


class TeacherEnsemble:
    """Weighted, per-query min-max normalised scores of several frozen teachers (see module doc).

    Teachers are loaded once, here. ``score`` runs under ``torch.inference_mode`` (and bf16
    autocast when ``bf16``), encoding at most ``batch_size`` texts per forward pass.
    """

    def __init__(
        self,
        teachers: Sequence[TeacherConfig | dict],
        score_scale: float = DEFAULT_SCORE_SCALE,
        device: str | torch.device | None = None,
        bf16: bool = False,
        batch_size: int = 64,
        max_query_length: int | None = None,
        max_doc_length: int | None = None,
    ) -> None:
        configs = [t if isinstance(t, TeacherConfig) else TeacherConfig(**t) for t in teachers]
        if not configs:
            raise ValueError("a teacher ensemble needs at least one teacher")
        if not sum(c.weight for c in configs) > 0:
            raise ValueError(
                f"teacher weights must sum to a positive number, got {[c.weight for c in configs]}"
            )
        if not score_scale > 0:
            raise ValueError(f"score_scale must be > 0, got {score_scale}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device is None:
            # Under torchrun each rank's GPU is LOCAL_RANK; pass the trainer's args.device to be explicit.
            rank = int(os.environ.get("LOCAL_RANK", 0))
            device = torch.device("cuda", rank) if torch.cuda.is_available() else torch.device("cpu")
        self.device = torch.device(device)
        self.configs = configs
        self.score_scale = score_scale
        self.bf16 = bf16
        self.batch_size = batch_size
        self.models = [load_teacher(c, self.device, max_query_length, max_doc_length) for c in configs]

    def _encode(self, model: Retriever, texts: list[str], side: str) -> torch.Tensor:
        """(n, dim) representations, ``batch_size`` texts per forward pass."""
        encode = model.encode_query if side == "query" else model.encode_document
        out = []
        for start in range(0, len(texts), self.batch_size):
            features = model.tokenize(texts[start : start + self.batch_size], side)
            features = {k: v.to(self.device) for k, v in features.items()}
            out.append(encode(features).float())  # (chunk, dim)
        return torch.cat(out)

    def _pair_scores(
        self, model: PairTeacher, uq: list[str], ud: list[str], rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """(batch, group) scores of a pair teacher; each distinct (query, doc) pair is scored once."""
        n_docs = len(ud)
        keys = rows * n_docs + cols  # (batch, group): one integer per (query, doc) pair
        distinct, inverse = torch.unique(keys, return_inverse=True)  # (pairs,), (batch, group)
        pairs = distinct.tolist()
        scores = model.score_pairs(
            [uq[k // n_docs] for k in pairs], [ud[k % n_docs] for k in pairs], self.batch_size
        )  # (pairs,)
        return scores[inverse]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def teacher_scores(
        self, query_texts: list[str], doc_texts: list[list[str]], models: Sequence[Teacher] | None = None
    ) -> list[torch.Tensor]:
        """Each teacher's raw scores, one (batch, group) tensor per teacher (or per one of ``models``).

        Bi-encoders score by dot product; cross-encoders and BM25 score each (query, document) pair;
        a hybrid teacher fuses its model's scores with BM25's (:mod:`~sparse_tune.training.hybrid_teacher`).

        Each distinct query and document text is encoded once per call, and each distinct
        (query, document) pair is scored once and its score reused wherever the pair
        occurs, so identical texts score identically by construction (and repeated
        candidates cost nothing). ``models`` scores other models the same way (the teacher
        report scores the student beside its teachers).
        """
        b, g = _check_texts(query_texts, doc_texts)
        uq, q_index = _distinct(query_texts)
        ud, d_index = _distinct([d for docs in doc_texts for d in docs])
        rows = torch.tensor(q_index, device=self.device).unsqueeze(1)  # (batch, 1)
        cols = torch.tensor(d_index, device=self.device).view(b, g)  # (batch, group)
        with torch.inference_mode(), self._autocast():
            return [self._scores(m, uq, ud, rows.expand(b, g), cols) for m in (models or self.models)]

    def _scores(
        self, model: Teacher, uq: list[str], ud: list[str], rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """(batch, group) raw scores of one teacher; ``rows``/``cols`` index the distinct texts."""
        if isinstance(model, HybridTeacher):
            parts = [self._scores(part, uq, ud, rows, cols) for part in (model.model, model.bm25)]
            return model.fuse(*parts)
        if isinstance(model, PairTeacher):
            return self._pair_scores(model, uq, ud, rows, cols)
        q = self._encode(model, uq, "query")  # (distinct queries, dim)
        d = self._encode(model, ud, "document")  # (distinct docs, dim)
        # Every (query, doc) pair's score is computed once, then gathered.
        return (q @ d.T).float()[rows, cols]  # (batch, group)

    def score(self, query_texts: list[str], doc_texts: list[list[str]]) -> torch.Tensor:
        """Combined teacher scores (batch, group), float32 on ``self.device``; no gradients."""
        raw = self.teacher_scores(query_texts, doc_texts)
        with torch.inference_mode():
            combined = combine_teacher_scores(raw, [c.weight for c in self.configs], self.score_scale)
        # A clone made outside inference mode is an ordinary tensor, which autograd may save
        # for the loss's backward (inference tensors may not be).
        return combined.clone()


def rectangular_batches(group_sizes: Sequence[int], per_batch: int) -> Iterator[list[int]]:
    """Indices of rows to score together: same candidate count (the ensemble takes a rectangle),
    at most ``per_batch`` rows each, in first-seen order of the sizes."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, size in enumerate(group_sizes):
        by_size[size].append(i)
    for idx in by_size.values():
        for start in range(0, len(idx), per_batch):
            yield idx[start : start + per_batch]


def _distinct(texts: list[str]) -> tuple[list[str], list[int]]:
    """The distinct texts in first-seen order, and each input's position among them."""
    position: dict[str, int] = {}
    index = [position.setdefault(t, len(position)) for t in texts]
    return list(position), index


def _check_texts(query_texts: list[str], doc_texts: list[list[str]]) -> tuple[int, int]:
    """(batch, group) of a rectangular batch of candidates, or ValueError with the sizes."""
    if len(query_texts) != len(doc_texts) or not query_texts:
        raise ValueError(
            f"need one candidate list per query, got {len(query_texts)} queries and {len(doc_texts)} lists"
        )
    sizes = sorted({len(docs) for docs in doc_texts})
    if len(sizes) != 1 or sizes[0] < 1:
        raise ValueError(f"every query needs the same number (>= 1) of candidates, got sizes {sizes}")
    return len(query_texts), sizes[0]
