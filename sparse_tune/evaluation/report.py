"""Write results.json, print the comparison table, and plot quality/sparsity against training step."""

from __future__ import annotations

import json
from pathlib import Path

from sparse_tune.fsio import atomic_write_text
from sparse_tune.types import EvalResult

TABLE_COLUMNS = ("nDCG@10", "MRR@10", "Recall@100", "doc_nnz", "query_nnz", "flops", "latency_p50_ms")
#: Shown only when some result has them (approximate search evaluated with compare_exact).
OPTIONAL_COLUMNS = ("latency_p95_ms", "recall@10_vs_exact", "recall@100_vs_exact")
_FRACTIONS = ("nDCG@10", "MRR@10", "Recall@100", "recall@10_vs_exact", "recall@100_vs_exact")


def write_results(results: list[EvalResult], output_dir: str | Path, extra: dict | None = None) -> Path:
    """``results.json``: one entry per model, the metric names as keys (same keys for every backend)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {r.model: {**r.metrics, "step": r.step} for r in results}
    if extra:
        for r in results:
            payload[r.model].update(extra)
    path = out / "results.json"
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path


def format_table(results: list[EvalResult]) -> str:
    name_w = max([len("model")] + [len(r.model) for r in results])
    approx = any("recall@10_vs_exact" in r.metrics for r in results)
    columns = TABLE_COLUMNS + (OPTIONAL_COLUMNS if approx else ())
    header = f"{'model':<{name_w}}  " + "  ".join(f"{c:>14}" for c in columns)
    lines = [header, "-" * len(header)]
    for r in results:
        cells = []
        for c in columns:
            v = r.metrics.get(c, float("nan"))
            cells.append(f"{v:>14.4f}" if c in _FRACTIONS else f"{v:>14.1f}")
        lines.append(f"{r.model:<{name_w}}  " + "  ".join(cells))
    return "\n".join(lines)


def plot_curve(results: list[EvalResult], path: str | Path) -> Path | None:
    """nDCG@10 and document non-zeros against training step; needs matplotlib (the ``plot`` extra)."""
    points = sorted((r.step, r.metrics["nDCG@10"], r.metrics["doc_nnz"]) for r in results if r.step is not None)
    if len(points) < 2:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'sparse-tune[plot]'") from exc
    steps, ndcg, nnz = zip(*points, strict=True)
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(steps, ndcg, "o-", color="tab:blue", label="nDCG@10")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("nDCG@10", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(steps, nnz, "s--", color="tab:orange", label="doc non-zeros")
    ax2.set_ylabel("avg document non-zeros", color="tab:orange")
    fig.suptitle("quality and sparsity over training")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
