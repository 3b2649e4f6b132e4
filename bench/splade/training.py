"""Section 2 (and the machinery of 5b): one training step, measured in separate processes.

A step is forward, loss, backward and AdamW on B SciFact (query, positive) pairs, documents
padded to ``DOC_TOKENS``. Each configuration runs in fresh processes (one for time, one for
memory) under an address-space cap, so one that does not fit fails cleanly instead of waking the
OOM killer on a shared machine. The workers are started through ``bench/bench_splade.py
--train-worker``, the same entry point as the parent run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import torch

from .loaders import load_scifact, model_path, st_dense_encoder, st_encoder, st_mnrl_loss
from .measure import (
    TRAINING_TABLE_HEADER,
    median_time,
    mem_available_bytes,
    peak_memory_ratio,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    training_row,
)
from .settings import (
    DENSE_MODEL,
    DENSE_SCALE,
    DOC_TOKENS,
    ENTRY_SCRIPT,
    MODEL,
    QUERY_TOKENS,
    SYSTEMS,
    Settings,
)

Step = tuple[torch.nn.Module, Callable[[], torch.Tensor]]  # the model and its loss closure


def training_features(tokenizer, batch: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """SciFact train (query, positive) pairs; documents padded to exactly DOC_TOKENS tokens."""
    from sparse_tune.data.beir import positives_from_qrels

    corpus, queries, qrels = load_scifact("train")
    text_of = dict(zip(corpus.ids, corpus.texts, strict=True))
    pairs = [(queries[q], text_of[docs[0]]) for q, docs in positives_from_qrels(qrels).items()]
    pairs = (pairs * (batch // len(pairs) + 1))[:batch]
    q = tokenizer(
        [p[0] for p in pairs], padding=True, truncation=True, max_length=QUERY_TOKENS, return_tensors="pt"
    )
    d = tokenizer(
        [p[1] for p in pairs],
        padding="max_length",
        truncation=True,
        max_length=DOC_TOKENS,
        return_tensors="pt",
    )
    return dict(q), dict(d)


# ---------------------------------------------------------------------------------------------
# the systems: ours (a sparse_tune model + loss) or sentence-transformers (a model + its loss)
# ---------------------------------------------------------------------------------------------


def _ours_step(name: str, make_loss: Callable[[], Callable], batch: int) -> Step:
    from sparse_tune.losses.base import LossInputs
    from sparse_tune.models import load_model

    model = load_model(name).train()
    loss_fn = make_loss()
    q_feats, d_feats = training_features(model.tokenizer, batch)

    def compute_loss() -> torch.Tensor:
        q, d = model(query=q_feats, docs=d_feats)
        return loss_fn(LossInputs(q=q, d=d))["loss"]

    return model, compute_loss


def _st_step(model, make_loss: Callable[[object], Callable], batch: int) -> Step:
    loss_fn = make_loss(model)
    q_feats, d_feats = training_features(model.tokenizer, batch)

    def compute_loss() -> torch.Tensor:
        terms = loss_fn(
            [dict(q_feats), dict(d_feats)], labels=None
        )  # SpladeLoss: named terms; its trainer sums them
        return sum(terms.values()) if isinstance(terms, dict) else terms

    return model, compute_loss


def _splade_ours(batch: int) -> Step:
    from sparse_tune.config import LossConfig
    from sparse_tune.losses import build_loss

    config = LossConfig(loss="infonce", flops_doc_weight=3e-5, flops_query_weight=5e-5)
    return _ours_step(MODEL, lambda: build_loss(config, inference_free=False), batch)


def _splade_st(batch: int) -> Step:
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    def make_loss(model):
        return SpladeLoss(
            model,
            SparseMultipleNegativesRankingLoss(model, scale=1.0),
            document_regularizer_weight=3e-5,
            query_regularizer_weight=5e-5,
        )

    return _st_step(st_encoder(model_path()).train(), make_loss, batch)


def _dense_ours(batch: int) -> Step:
    from sparse_tune.losses.infonce import InfoNCELoss

    return _ours_step(DENSE_MODEL, lambda: InfoNCELoss(scale=DENSE_SCALE), batch)


def _dense_st(batch: int) -> Step:
    model = st_dense_encoder(model_path(DENSE_MODEL)).train()
    return _st_step(model, lambda m: st_mnrl_loss(m, DENSE_SCALE), batch)


TRAIN_SYSTEMS: dict[str, Callable[[int], Step]] = {
    "ours": _splade_ours,
    "sentence-transformers": _splade_st,
    "dense-ours": _dense_ours,
    "dense-sentence-transformers": _dense_st,
}


# ---------------------------------------------------------------------------------------------
# one configuration per process
# ---------------------------------------------------------------------------------------------


def train_worker(system: str, batch: int, repeats: int, mode: str) -> dict:
    """One configuration, measured in this (fresh) process.

    ``mode="time"``: one warm-up step, then ``repeats`` timed steps. ``mode="memory"``: one
    warm-up step, then the rise of the peak resident set over one more step; the parent runs
    this mode with glibc told to mmap every block >= 64 KiB and to trim freed heap at once,
    so resident memory follows live tensors instead of what the allocator keeps cached.
    """
    torch.manual_seed(0)
    if system not in TRAIN_SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {tuple(TRAIN_SYSTEMS)}")
    model, compute_loss = TRAIN_SYSTEMS[system](batch)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-5)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        compute_loss().backward()
        optimizer.step()

    base = rss_bytes()
    reset_peak_rss()
    step()  # warm-up: AdamW allocates its state, lazily loaded kernels and thread pools start
    out: dict = {"first_step_peak_rss_delta_mb": (peak_rss_bytes() - base) / 2**20}
    if mode == "memory":
        base = rss_bytes()
        reset_peak_rss()
        step()
        out["peak_rss_delta_mb"] = (peak_rss_bytes() - base) / 2**20
    else:
        out["seconds"], out["times"] = median_time(step, repeats, warmup=0)
    out["n_params"] = sum(p.numel() for p in params)
    return out


def run_train_worker(system: str, batch: int, repeats: int, cap: int, mode: str) -> dict:
    """Run :func:`train_worker` in a child process; its last JSON line, or ``{"error": ...}``."""
    cmd = [
        sys.executable,
        str(ENTRY_SCRIPT),
        "--train-worker",
        system,
        str(batch),
        str(repeats),
        str(cap),
        mode,
    ]
    env = dict(os.environ)
    if mode == "memory":
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    lines = [x.strip() for x in (proc.stderr or proc.stdout).splitlines() if x.strip()]
    errors = [x for x in lines if "Error" in x] or lines[-1:]
    message = errors[-1] if errors else "no output"
    return {"error": f"{mode} run, exit {proc.returncode}: {message.split('DefaultCPUAllocator: ')[-1]}"}


def bench_training(
    batches: list[int], repeats: dict[int, int], cap_gb: float | None, systems: tuple[str, ...] = SYSTEMS
) -> dict:
    # Never more than the machine can give right now: the cap must trip before the OOM killer does.
    available = mem_available_bytes()
    cap = int(cap_gb * 2**30) if cap_gb else int(min(18 * 2**30, available - 3 * 2**30))
    results: dict = {"cap_gb": cap / 2**30}
    for batch in batches:
        for system in systems:
            print(f"  training step: {system}, batch {batch} ...", flush=True)
            res = run_train_worker(system, batch, repeats[batch], cap, "time")
            if "error" not in res:
                mem = run_train_worker(system, batch, repeats[batch], cap, "memory")
                if "error" in mem:
                    res["memory_error"] = mem["error"]
                else:
                    res["peak_rss_delta_mb"] = mem["peak_rss_delta_mb"]
            results[f"{system}/{batch}"] = res
            print(f"    {res}", flush=True)
    return results


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def training_rows(tr: dict, batch: int, systems: tuple[str, ...], prefix: str = "") -> list[str]:
    """Table rows of one batch size; a system without a result for it is left out."""
    return [
        training_row(batch, system.removeprefix(prefix), tr[f"{system}/{batch}"])
        for system in systems
        if tr.get(f"{system}/{batch}")
    ]


def render_training(tr: dict, settings: Settings) -> list[str]:
    lines = [
        f"## 2. Training step: B queries (<= {QUERY_TOKENS} tokens) + B documents padded to {DOC_TOKENS} "
        "tokens, in-batch negatives, FLOPS regularisers on both sides, AdamW step",
        "",
        "Ours: `load_model('splade-tiny')` (fused head) + InfoNCE + FLOPS. sentence-transformers: "
        "`SparseEncoder([MLMTransformer, SpladePooling('max')])` + `SpladeLoss(SparseMultipleNegativesRankingLoss)`. "
        "Peak memory is the rise of the process's peak resident set (VmHWM, reset before measuring) over "
        "its resident size just before one step of a warm process, measured in a separate process where "
        "glibc mmaps every block >= 64 KiB and trims freed heap at once, so resident memory follows live "
        "tensors rather than allocator caches. 'first step' is the same rise over the warm-up step of the "
        "timing process (it also allocates AdamW state and starts lazily loaded kernels). Every "
        f"configuration runs in its own processes under a {tr['cap_gb']:.0f} GiB address-space cap.",
        "",
        *TRAINING_TABLE_HEADER,
    ]
    ratios = []
    first_batch = settings.train_batches[0]
    for batch in settings.train_batches:
        lines += training_rows(tr, batch, SYSTEMS)
        a, b = tr.get(f"ours/{batch}", {}), tr.get(f"sentence-transformers/{batch}", {})
        if "seconds" in a and "seconds" in b:
            ratios.append(
                f"- batch {batch}: step time ours / theirs = {a['seconds'] / b['seconds']:.3f} "
                f"({b['seconds'] / a['seconds']:.1f}x faster)" + peak_memory_ratio(a, b)
            )
        small = tr.get(f"sentence-transformers/{first_batch}", {})
        if "error" in b and "peak_rss_delta_mb" in small and batch != first_batch:
            scale = batch / first_batch
            ratios.append(
                f"- batch {batch}: sentence-transformers did not fit under the {tr['cap_gb']:.0f} GiB cap; its "
                f"batch-{first_batch} peak x {scale:.0f} predicts "
                f"{small['peak_rss_delta_mb'] * scale / 1024:.1f} GiB (the fp32 (batch, 256, 30522) logits alone "
                f"are {batch * DOC_TOKENS * 30522 * 4 / 2**30:.1f} GiB per copy)"
                + (
                    f", against ours at {a['peak_rss_delta_mb'] / 1024:.2f} GiB."
                    if "peak_rss_delta_mb" in a
                    else "."
                )
            )
    return [*lines, "", *ratios, ""]
