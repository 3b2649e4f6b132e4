"""Cached (GradCache) SPLADE training step side by side with sentence-transformers' ``CachedSpladeLoss``.

One training step (forward, InfoNCE with in-batch negatives + FLOPS on both sides, backward,
AdamW) of ``splade-tiny`` on SciFact texts, documents padded to 256 tokens, queries <= 64:

- ours, uncached, at batch 32 queries x (1 positive + 1 negative): the time-per-example baseline;
- ours, cached (``encode_and_score(..., mini_batch_size=M)``), at batch 1,024 x (1 + 1);
- sentence-transformers ``CachedSpladeLoss(SparseMultipleNegativesRankingLoss)`` at the same
  batch and mini-batch size (its regularisers on both sides, same weights).

Targets (issue #13): cached peak memory <= 2 GiB (checked on the whole process's peak resident
set), cached time per example <= 1.3x the uncached one at batch 32. Each configuration runs in
its own process under an address-space cap, with glibc told to mmap large blocks and trim at
once, so the resident set follows live tensors; reported are the peak resident set of the
whole process during the step (VmHWM, reset just before it) and its rise over the resident set
before the step. Dropout is on (training mode), fp32.

On shared cores run it as ``OMP_NUM_THREADS=1 python bench/bench_cached.py`` so every row gets
the same single thread whatever else runs; the report states the thread count and the load
average around each row.

``python bench/bench_cached.py`` runs the full size (slow on 2 shared cores: tens of minutes)
and writes ``bench/RESULTS_cached.json`` and a section of ``bench/RESULTS.md``;
``--quick`` (batch 64, M 16) only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # spinning OpenMP threads starve each other on shared cores

import torch  # noqa: E402

DATA = Path(os.environ.get("SCIFACT_DIR", "/work/shared/data/beir/scifact"))
HERE = Path(__file__).resolve().parent
DOC_TOKENS, QUERY_TOKENS = 256, 64
FLOPS_DOC, FLOPS_QUERY = 5e-4, 5e-4
CAP_GIB = 12
MARKER_BEGIN, MARKER_END = "<!-- bench_cached:begin -->", "<!-- bench_cached:end -->"


# -- memory of this process --------------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


# -- one configuration, in its own process -----------------------------------------------------
def texts(batch: int) -> tuple[list[str], list[str], list[str]]:
    """``batch`` SciFact queries, and two distinct corpus documents each (positive, negative)."""

    def read(name: str) -> list[str]:
        with open(DATA / name, encoding="utf-8") as f:
            return [(r.get("title", "") + " " + r["text"]).strip() for r in map(json.loads, f)]

    queries, corpus = read("queries.jsonl"), read("corpus.jsonl")
    if batch > len(queries) or 2 * batch > len(corpus):
        raise ValueError(f"batch {batch} needs {batch} queries and {2 * batch} documents")
    return queries[:batch], corpus[0 : 2 * batch : 2], corpus[1 : 2 * batch : 2]


def ours_step(batch: int, mini_batch_size: int | None):
    from sparse_tune.config import LossConfig
    from sparse_tune.losses import build_loss
    from sparse_tune.losses.base import LossInputs
    from sparse_tune.models.io import build_model, model_config_for
    from sparse_tune.training.cached import encode_and_score

    cfg, path = model_config_for("splade-tiny", max_doc_length=DOC_TOKENS, max_query_length=QUERY_TOKENS)
    model = build_model(cfg, path).train()
    loss_fn = build_loss(LossConfig(flops_doc_weight=FLOPS_DOC, flops_query_weight=FLOPS_QUERY), False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    tok = model.tokenizer

    def features(n: int) -> tuple[dict, dict]:
        q, pos, neg = texts(n)
        docs = [d for pair in zip(pos, neg, strict=True) for d in pair]  # grouped per query: pos, neg
        qf = dict(tok(q, padding=True, truncation=True, max_length=QUERY_TOKENS, return_tensors="pt"))
        df = dict(
            tok(docs, padding="max_length", truncation=True, max_length=DOC_TOKENS, return_tensors="pt")
        )
        return qf, df

    def step(n: int) -> float:
        qf, df = features(n)
        opt.zero_grad(set_to_none=True)
        _, _, terms = encode_and_score(model, qf, df, lambda q, d: loss_fn(LossInputs(q, d)), mini_batch_size)
        terms["loss"].backward()
        opt.step()
        return float(terms["loss"])

    return step


def st_step(batch: int, mini_batch_size: int):
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.losses import (
        CachedSpladeLoss,
        SparseMultipleNegativesRankingLoss,
    )
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

    from sparse_tune.registry import resolve_model_path

    model = SparseEncoder(
        modules=[
            MLMTransformer(resolve_model_path("splade-tiny"), max_seq_length=DOC_TOKENS),
            SpladePooling("max"),
        ],
        device="cpu",
    ).train()
    loss_fn = CachedSpladeLoss(
        model,
        SparseMultipleNegativesRankingLoss(model),
        document_regularizer_weight=FLOPS_DOC,
        query_regularizer_weight=FLOPS_QUERY,
        mini_batch_size=mini_batch_size,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    tok = model.tokenizer

    def step(n: int) -> float:
        q, pos, neg = texts(n)
        feats = [dict(tok(q, padding=True, truncation=True, max_length=QUERY_TOKENS, return_tensors="pt"))]
        for docs in (pos, neg):
            feats.append(
                dict(
                    tok(
                        docs,
                        padding="max_length",
                        truncation=True,
                        max_length=DOC_TOKENS,
                        return_tensors="pt",
                    )
                )
            )
        opt.zero_grad(set_to_none=True)
        loss = sum(loss_fn(feats, None).values())
        loss.backward()
        opt.step()
        return float(loss)

    return step


def worker(system: str, batch: int, mini_batch_size: int | None, repeats: int) -> dict:
    torch.manual_seed(0)
    step = (
        st_step(batch, mini_batch_size)
        if system == "sentence-transformers"
        else ours_step(batch, mini_batch_size)
    )
    step(min(batch, 2 * (mini_batch_size or batch)))  # warm-up: kernels, AdamW state (a small batch)
    times, rises, peaks, loss = [], [], [], 0.0
    for _ in range(repeats):
        before = _status_kib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        loss = step(batch)
        times.append(time.perf_counter() - start)
        peak = _status_kib("VmHWM")
        rises.append((peak - before) / 1024)
        peaks.append(peak / 1024)
    return {
        "threads": torch.get_num_threads(),
        "seconds": statistics.median(times),
        "all_seconds": times,
        "rise_mib": max(rises),
        "peak_rss_mib": max(peaks),
        "loss": loss,
    }


def run_worker(system: str, batch: int, mini_batch_size: int | None, repeats: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    cap = CAP_GIB * 1024**3
    args = [sys.executable, __file__, "--worker", json.dumps([system, batch, mini_batch_size, repeats])]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": [load_before, os.getloadavg()[0]]}


# -- the report ----------------------------------------------------------------------------------
def report(rows: list[tuple[str, int, int | None, dict]], batch: int) -> list[str]:
    def per_example(r: dict, n: int) -> float:
        return r["seconds"] / n * 1e3

    threads = "/".join(sorted({str(r["threads"]) for _, _, _, r in rows if "threads" in r})) or "?"
    lines = [
        "## Cached (GradCache) training step",
        "",
        f"Generated by `python bench/bench_cached.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()}-core CPU shared with other jobs (load average {os.getloadavg()[0]:.1f} at the end), "
        f"torch {torch.__version__}, Python {platform.python_version()}; OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {threads} thread(s) per row, one row at a time.",
        "",
        f"`splade-tiny`, SciFact queries (<= {QUERY_TOKENS} tokens) x (1 positive + 1 negative) documents padded "
        f"to {DOC_TOKENS} tokens, InfoNCE over in-batch negatives + FLOPS on both sides, backward, AdamW; fp32, "
        "dropout on. Peak memory: rise of the peak resident set over the resident set before the step "
        "(separate process per row, glibc mmap/trim settings); 'process peak' is the whole process "
        "(Python, torch, model, optimiser state included).",
        "",
        "| system | batch | mini-batch | step (s) | ms / query | peak memory rise (MiB) | process peak (MiB) "
        "| load average before -> after the row |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, n, m, r in rows:
        if "error" in r:
            lines.append(f"| {label} | {n} | {m or '-'} | failed: {r['error']} | | | | |")
            continue
        load = " -> ".join(f"{x:.1f}" for x in r["load"]) if "load" in r else "?"
        lines.append(
            f"| {label} | {n} | {m or '-'} | {r['seconds']:.1f} | {per_example(r, n):.1f} | "
            f"{r['rise_mib']:.0f} | {r['peak_rss_mib']:.0f} | {load} |"
        )
    base = next((r for label, n, m, r in rows if m is None and "error" not in r), None)
    ours = next((r for label, n, m, r in rows if label == "ours (cached)" and "error" not in r), None)
    theirs = next((r for label, n, m, r in rows if label.startswith("sentence") and "error" not in r), None)
    lines.append("")
    if base is not None and ours is not None:
        n_base = next(n for label, n, m, r in rows if r is base)
        ratio = per_example(ours, batch) / per_example(base, n_base)
        mem_ok = ours["peak_rss_mib"] <= 2048
        lines.append(
            f"- Target time per example <= 1.3x uncached at batch {n_base}: {ratio:.2f}x -> "
            f"{'met' if ratio <= 1.3 else 'missed'}."
        )
        lines.append(
            f"- Target peak memory <= 2 GiB: {ours['peak_rss_mib']:.0f} MiB whole-process peak "
            f"({ours['rise_mib']:.0f} MiB rise during the step) -> {'met' if mem_ok else 'missed'}."
        )
    if ours is not None and theirs is not None:
        lines.append(
            f"- ours / sentence-transformers CachedSpladeLoss at the same batch and mini-batch: time "
            f"{ours['seconds'] / theirs['seconds']:.2f}, peak memory rise {ours['rise_mib'] / theirs['rise_mib']:.2f}, "
            f"process peak {ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}."
        )
    return lines


def write_section(lines: list[str]) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md, leaving the rest alone."""
    path = HERE / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = "\n".join([MARKER_BEGIN, *lines, MARKER_END]) + "\n"
    if MARKER_BEGIN in text and MARKER_END in text:
        head, rest = text.split(MARKER_BEGIN, 1)
        tail = rest.split(MARKER_END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")  # the blank line before the next section stays
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="batch 64, mini-batch 16, uncached batch 16; print only"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        system, batch, mbs, repeats = json.loads(args.worker)
        print(json.dumps(worker(system, batch, mbs, repeats)))
        return
    batch, mbs, small = (64, 16, 16) if args.quick else (1024, 32, 32)
    plan = [
        ("ours (uncached)", "ours", small, None, 3),
        ("ours (cached)", "ours", batch, mbs, 1),
        ("sentence-transformers CachedSpladeLoss", "sentence-transformers", batch, mbs, 1),
    ]
    rows = [
        (label, n, m, {"error": "not run yet (the run was stopped before this row)"})
        for label, _, n, m, _ in plan
    ]
    for i, (label, system, n, m, repeats) in enumerate(plan):
        result = run_worker(system, n, m, repeats)
        print(label, n, m, json.dumps(result), flush=True)
        rows[i] = (label, n, m, result)
        if not args.quick:  # after every row, so a run stopped early still leaves its figures
            (HERE / "RESULTS_cached.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
            write_section(report(rows, batch))
    print("\n".join(report(rows, batch)))


if __name__ == "__main__":
    main()
