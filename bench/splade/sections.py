"""The five sections in report order: the key in RESULTS.json (and ``--sections``), the progress
title, how to measure it at given settings, and how to render its saved figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .agreement import bench_top10, render_top10
from .ceiling import bench_ceiling, render_ceiling
from .dense import bench_dense, render_dense
from .encoding import bench_encoding, render_encoding
from .settings import Settings
from .training import bench_training, render_training


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    run: Callable[[Settings, float | None], dict]  # (settings, --cap-gb) -> results
    render: Callable[[dict, Settings], list[str]]  # (saved results, settings) -> report lines


SECTIONS: tuple[Section, ...] = (
    Section(
        "encoding",
        "1. corpus encoding",
        lambda s, cap: bench_encoding(s.enc_docs, s.enc_repeats),
        lambda r, s: render_encoding(r),
    ),
    Section(
        "training",
        "2. training step",
        lambda s, cap: bench_training(s.train_batches, s.train_repeats, cap),
        render_training,
    ),
    Section(
        "ceiling",
        "3. matmul ceiling and head",
        lambda s, cap: bench_ceiling(s.ceiling_repeats),
        lambda r, s: render_ceiling(r),
    ),
    Section(
        "top10", "4. top-10 agreement", lambda s, cap: bench_top10(s.top10_docs), lambda r, s: render_top10(r)
    ),
    Section(
        "dense",
        "5. dense model vs sentence-transformers",
        bench_dense,
        lambda r, s: render_dense(r),
    ),
)
SECTION_KEYS = tuple(section.key for section in SECTIONS)
