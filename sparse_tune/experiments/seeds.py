"""``sparse-tune seeds``: one recipe trained with several seeds, evaluated on a BEIR split, mean ± std.

A single run's gain over the base model can be seed noise; repeating the recipe with a
few seeds (each its own training order, negatives and held-out validation queries) says
how large that noise is. The spread is the sample standard deviation (ddof 1).
"""

from __future__ import annotations

import json
import logging
import math
from os import PathLike
from pathlib import Path
from typing import Any

from sparse_tune.fsio import atomic_write_text
from sparse_tune.types import EvalResult

logger = logging.getLogger(__name__)

#: Metrics summarised across seeds (results.json keys of ``sparse-tune evaluate``).
SUMMARY_METRICS = ("nDCG@10", "MRR@10", "Recall@100", "doc_nnz", "query_nnz", "flops")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for a single value)."""
    if not values:
        raise ValueError("no values to summarise")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(
    results: list[EvalResult], metrics: tuple[str, ...] = SUMMARY_METRICS
) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over the runs that report the metric."""
    out = {}
    for name in metrics:
        values = [r.metrics[name] for r in results if name in r.metrics]
        if values:
            mean, std = mean_std(values)
            out[name] = {"mean": mean, "std": std}
    return out


def format_summary(summary: dict[str, dict[str, float]], n: int) -> str:
    parts = [f"{name} {v['mean']:.4f} ± {v['std']:.4f}" for name, v in summary.items()]
    return f"{n} seeds: " + ", ".join(parts)


def format_kept(seed: int, record: dict[str, Any] | None) -> str:
    """Which model seed ``seed``'s run saved, from its ``validation_summary.json`` record (``None``: not validated).

    A seed that kept its base model did not improve on validation: its test numbers are the
    base model's, which a mean over seeds would otherwise hide.
    """
    if record is None:
        return f"seed {seed}: kept the last model (no validation)"
    kept = {"base": "the base model", "best": "the best checkpoint", "last": "the last model"}[record["kept"]]
    numbers = [f"base {record['base']:.4f}"] if record.get("base") is not None else []
    if record.get("best_checkpoint") is not None:
        numbers.append(f"best checkpoint {record['best_checkpoint']:.4f} at step {record['best_step']}")
    if record.get("p_value") is not None:
        numbers.append(f"paired-test p {record['p_value']:.3g}")
    detail = f" (validation {record['metric']}: {', '.join(numbers)})" if numbers else ""
    return f"seed {seed}: kept {kept}{detail}"


def run_seeds(
    config: str,
    seeds: list[int],
    dataset: str,
    split: str,
    output: str | PathLike[str],
    overrides: dict[str, Any],
) -> tuple[list[EvalResult], dict[str, dict[str, float]], list[dict[str, Any] | None]]:
    """Train ``config`` once per seed into ``OUTPUT/seed-S``, evaluate each on ``dataset``/``split``.

    Also returns each run's ``validation_summary.json`` record (which model it kept), ``None``
    for a run without validation.
    """
    from sparse_tune.config import load_train_config
    from sparse_tune.data.beir import load_beir
    from sparse_tune.evaluation.beir_eval import EvalSettings, evaluate_model
    from sparse_tune.index.embedded import EmbeddedBackend
    from sparse_tune.index.fingerprint import fingerprint_texts
    from sparse_tune.training.run import train
    from sparse_tune.training.run_folder import check_run_folder, finished_run_of
    from sparse_tune.training.summary import read_summary

    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
    output = Path(output)
    corpus, queries, qrels = load_beir(dataset, split)  # checked before the first (long) training run
    configs = [load_train_config(config, {**overrides, "seed": s, "output_dir": str(output / f"seed-{s}")})
               for s in seeds]  # fmt: skip
    # Every seed's folder is checked before the first (long) run: a finished run of the same recipe
    # is reused (so the same command continues after an interruption), any other finished run refused.
    reuse = [
        finished_run_of(c.training.output_dir, c.source) and not c.run.overwrite_output_dir for c in configs
    ]
    for cfg, reused in zip(configs, reuse, strict=True):
        if not reused:
            check_run_folder(
                cfg.training.output_dir, cfg.source, cfg.run.overwrite_output_dir, cfg.run.resume
            )
    corpus_fp = fingerprint_texts(corpus.ids, corpus.texts)
    results = []
    kept = []
    for seed, cfg, reused in zip(seeds, configs, reuse, strict=True):
        if reused:
            logger.info(
                "seed %d: reusing the finished run of the same recipe in %s", seed, cfg.training.output_dir
            )
            folder = Path(cfg.training.output_dir)
        else:
            folder = train(cfg)
        kept.append(read_summary(folder))
        result = evaluate_model(
            str(folder),
            corpus,
            queries,
            qrels,
            EmbeddedBackend(),
            EvalSettings(progress=False),
            corpus_fp,
            label=f"seed {seed}",
        )
        results.append(result)
    summary = summarize(results)
    atomic_write_text(
        output / "seeds.json",
        json.dumps({"config": str(config), "dataset": str(dataset), "split": split, "seeds": seeds,
                    "runs": [{"model": r.model, "metrics": r.metrics, "kept": k and k["kept"]}
                             for r, k in zip(results, kept, strict=True)],
                    "summary": summary},
                   indent=2) + "\n",
    )  # fmt: skip
    return results, summary, kept
