"""Corpus encoding throughput under torchrun: docs/s for 1 and 2 processes (1 thread each), side by side.

    python bench/bench_encode_scaling.py [--dataset DIR] [--docs 5000] [--model splade-tiny]

Each configuration is a fresh ``torch.distributed.run`` launch of this file in worker mode;
every rank loads the model, waits at a barrier, and rank 0 times ``encode_sharded`` from the
barrier until it holds the gathered collection (every rank's tokenisation for the length sort,
its share of the batches and the gather are inside the time; process start and model loading
are not). Scaling efficiency = (docs/s with N processes) / (N x docs/s with 1). On a CUDA
machine it also compares 1 device with all of them. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def worker(args: argparse.Namespace) -> None:
    import torch

    from sparse_tune.data.beir import load_corpus_any
    from sparse_tune.distributed import barrier, init_from_env, is_main
    from sparse_tune.models.io import load_model
    from sparse_tune.models.sharded_encode import encode_sharded

    if args.threads:
        torch.set_num_threads(args.threads)
    world = init_from_env()
    corpus = load_corpus_any(args.dataset)
    ids, texts = corpus.ids[: args.docs], corpus.texts[: args.docs]
    model = load_model(args.model)
    barrier()
    start = time.perf_counter()
    encoded = encode_sharded(model, ids, texts, "document", args.batch_size, progress=False).full
    seconds = time.perf_counter() - start
    if is_main():
        assert encoded is not None and len(encoded.ids) == len(ids)
        Path(args.result).write_text(json.dumps({"world": world, "docs": len(ids), "seconds": seconds}))


def launch(nproc: int, args: argparse.Namespace, threads: int | None) -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1", f"--master_port={port}", __file__, "--worker",
            "--result", str(result), "--dataset", str(args.dataset), "--docs", str(args.docs),
            "--model", args.model, "--batch-size", str(args.batch_size), "--threads", str(threads or 0),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return json.loads(result.read_text())


def compare(label: str, counts: list[int], args: argparse.Namespace, threads: int | None) -> None:
    rows = [launch(n, args, threads) for n in counts]
    base = rows[0]["docs"] / rows[0]["seconds"]
    print(
        f"\n{label}: {args.docs} documents of {Path(args.dataset).name}, {args.model}, batch {args.batch_size}"
    )
    print(f"{'processes':>9}  {'seconds':>8}  {'docs/s':>8}  {'speed-up':>8}  {'efficiency':>10}")
    for n, row in zip(counts, rows, strict=True):
        rate = row["docs"] / row["seconds"]
        print(f"{n:>9}  {row['seconds']:>8.1f}  {rate:>8.1f}  {rate / base:>7.2f}x  {rate / base / n:>10.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default=str(SCIFACT))
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--processes", type=int, default=2, help="compared with 1 process (CPU, 1 thread each)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        worker(args)
        return
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        compare("CUDA, 1 device vs all", [1, torch.cuda.device_count()], args, None)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU comparison runs on the CPU even on a GPU machine
    compare("CPU, 1 thread per process", [1, args.processes], args, 1)


if __name__ == "__main__":
    main()
