"""Measurement and formatting shared by every section: timers, resident memory, machine facts,
and the training-step table that sections 2 and 5b both print.

Timers take the clock as an argument so that their bookkeeping (warm-up, order, median) can be
checked with a fake clock; the benchmark itself always uses ``time.perf_counter``.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
Clock = Callable[[], float]

# ---------------------------------------------------------------------------------------------
# timers
# ---------------------------------------------------------------------------------------------


def median_time(
    fn: Callable[[], object], repeats: int, warmup: int = 1, clock: Clock = time.perf_counter
) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times), times


def round_robin(
    systems: dict[str, Callable[[], T]], repeats: int, warmup: int = 0, clock: Clock = time.perf_counter
) -> tuple[dict[str, list[float]], dict[str, T]]:
    """Time each system ``repeats`` times, cycling through them so that load from other jobs on a
    shared machine hits all alike; returns the times and each system's last output."""
    for _ in range(warmup):  # first-call kernel selection, thread pools
        for fn in systems.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in systems}
    outputs: dict[str, T] = {}
    for _ in range(repeats):
        for name, fn in systems.items():
            start = clock()
            outputs[name] = fn()
            times[name].append(clock() - start)
    return times, outputs


def throughput(n_items: int, times: list[float]) -> dict:
    """Median seconds, items / second at the median and at the best run, and the raw times."""
    med = statistics.median(times)
    return {
        "seconds": med,
        "docs_per_s": n_items / med,
        "best_docs_per_s": n_items / min(times),
        "times": times,
    }


def throughput_line(name: str, result: dict) -> str:
    """The progress line printed for one system of an encoding comparison."""
    times = result["times"]
    return (
        f"  {name}: {result['docs_per_s']:.1f} docs/s (median {result['seconds']:.2f}s of "
        f"{[round(t, 2) for t in times]})"
    )


def utc_now() -> str:
    """The timestamp format of ``measured_utc`` in RESULTS.json."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


# ---------------------------------------------------------------------------------------------
# resident memory (Linux /proc)
# ---------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Reset VmHWM (Linux >= 4.0), so the next peak reading covers only what follows."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 * 2**30


# ---------------------------------------------------------------------------------------------
# machine facts for the report header
# ---------------------------------------------------------------------------------------------


def _cpuinfo_field(name: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_flags() -> str:
    flags = set(_cpuinfo_field("flags").split())
    return ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags)


# ---------------------------------------------------------------------------------------------
# the training-step table (sections 2 and 5b)
# ---------------------------------------------------------------------------------------------

TRAINING_TABLE_HEADER = [
    "| batch | system | step time, median (s) | best (s) | timed steps | peak memory (MiB) | first step (MiB) |",
    "|---:|---|---:|---:|---:|---:|---:|",
]


def training_row(batch: int, label: str, result: dict) -> str:
    """One row of a training-step table; a failed configuration shows its (shortened) error."""
    if "error" in result:
        error = result["error"].split("DefaultCPUAllocator: ")[-1]
        return f"| {batch} | {label} | failed: {error[:200]} | | | | |"
    peak = f"{result['peak_rss_delta_mb']:.0f}" if "peak_rss_delta_mb" in result else "n/a"
    return (
        f"| {batch} | {label} | {result['seconds']:.2f} | {min(result['times']):.2f} | "
        f"{len(result['times'])} | {peak} | {result['first_step_peak_rss_delta_mb']:.0f} |"
    )


def peak_memory_ratio(ours: dict, theirs: dict) -> str:
    """``; peak memory ours / theirs = x`` when both peaks were measured, else nothing."""
    if "peak_rss_delta_mb" in ours and "peak_rss_delta_mb" in theirs:
        return f"; peak memory ours / theirs = {ours['peak_rss_delta_mb'] / theirs['peak_rss_delta_mb']:.3f}"
    return ""
