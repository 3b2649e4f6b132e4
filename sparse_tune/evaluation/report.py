"""Print the comparison table and plot quality/sparsity against training step.

results.json itself (rows, keys, merging) is ``results_file``'s job.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sparse_tune.types import EvalResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_COLUMNS = ("nDCG@10", "MRR@10", "Recall@100", "doc_nnz", "query_nnz", "flops", "latency_p50_ms")
#: Shown only when some result has them (approximate search evaluated with compare_exact).
OPTIONAL_COLUMNS = ("latency_p95_ms", "recall@10_vs_exact", "recall@100_vs_exact")
_FRACTIONS = ("nDCG@10", "MRR@10", "Recall@100", "recall@10_vs_exact", "recall@100_vs_exact")


class CurvePoint(NamedTuple):
    step: int
    ndcg: float
    doc_nnz: float
    model: str


def format_table(results: list[EvalResult]) -> str:
    name_w = max([len("model")] + [len(r.model) for r in results])
    approx = any("recall@10_vs_exact" in r.metrics for r in results)
    columns = TABLE_COLUMNS + (OPTIONAL_COLUMNS if approx else ())
    header = f"{'model':<{name_w}}  " + "  ".join(f"{c:>14}" for c in columns)
    lines = [header, "-" * len(header)]
    for r in results:
        cells = []
        for c in columns:
            v = r.metrics.get(c)
            if v is None:  # a row from an older results.json (or another mode) may lack a column
                cells.append(f"{'-':>14}")
            else:
                cells.append(f"{v:>14.4f}" if c in _FRACTIONS else f"{v:>14.1f}")
        lines.append(f"{r.model:<{name_w}}  " + "  ".join(cells))
    return "\n".join(lines)


def curve_points(results: list[EvalResult]) -> list[CurvePoint]:
    """One point per training step, in step order: what the curve draws.

    A model without a known step (a registered name, a hub id, a folder without
    ``trainer_state.json``) is the untrained start of the curve, step 0. A training run's final
    folder carries the step it was saved at in its ``trainer_state.json``, like the
    ``checkpoint-N`` it usually duplicates; of results at one step only the first by model name
    is drawn (``runs/x`` before ``runs/x/checkpoint-N``). A row without vectors (the BM25
    baseline: no ``doc_nnz``) is not a point of the curve.
    """
    points: dict[int, CurvePoint] = {}
    for r in sorted(results, key=lambda r: (r.step or 0, r.model)):
        if "doc_nnz" not in r.metrics:
            continue
        step = r.step or 0
        if step not in points:
            points[step] = CurvePoint(step, r.metrics["nDCG@10"], r.metrics["doc_nnz"], r.model)
    return list(points.values())


def plot_curve(results: list[EvalResult], path: str | Path) -> Path | None:
    """Write the curve of ``curve_points(results)`` as a PNG; needs matplotlib (the ``plot`` extra).

    Returns None (and writes nothing) with fewer than two distinct steps.
    """
    points = curve_points(results)
    if len(points) < 2:
        return None
    fig = curve_figure(points)  # imports matplotlib (Agg backend) or says how to install it
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def curve_figure(points: list[CurvePoint]) -> Figure:
    """nDCG@10 and document non-zeros against training step, on two y axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'sparse-tune[plot]'") from exc
    steps = [p.step for p in points]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(steps, [p.ndcg for p in points], "o-", color="tab:blue", label="nDCG@10")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers: no 2.5 ticks
    ax1.set_xlabel("training step")
    ax1.set_ylabel("nDCG@10", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(steps, [p.doc_nnz for p in points], "s--", color="tab:orange", label="doc non-zeros")
    ax2.set_ylabel("avg document non-zeros", color="tab:orange")
    fig.suptitle("quality and sparsity over training")
    fig.tight_layout()
    return fig
