"""Command line: parse, run the chosen sections in report order, merge into RESULTS.json, print
the report (and write RESULTS.md). ``--train-worker`` is the hidden child-process mode of
section 2 / 5b."""

from __future__ import annotations

import argparse
import json
import os
import resource
from pathlib import Path

import torch

from . import __doc__ as OVERVIEW
from .measure import cpu_name, utc_now
from .report import write_report
from .sections import SECTION_KEYS, SECTIONS
from .settings import BENCH_DIR, FULL, QUICK
from .training import train_worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one repeat; prints, writes nothing"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTION_KEYS),
        help="comma-separated subset; 'none' re-renders RESULTS.md from RESULTS.json",
    )
    parser.add_argument("--cap-gb", type=float, default=None, help="address-space cap per training process")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="report path (default bench/RESULTS.md; --quick: print only)",
    )
    parser.add_argument(
        "--train-worker",
        nargs=5,
        metavar=("SYSTEM", "BATCH", "REPEATS", "CAP_BYTES", "MODE"),
        help=argparse.SUPPRESS,
    )
    return parser


def parse_sections(parser: argparse.ArgumentParser, value: str) -> set[str]:
    """The ``--sections`` names; an unknown one is an error that lists the valid names."""
    sections = set(value.split(",")) - {"none"}
    unknown = sections - set(SECTION_KEYS)
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTION_KEYS)} or none"
        )
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.train_worker:
        system, batch, repeats, cap, mode = args.train_worker
        resource.setrlimit(resource.RLIMIT_AS, (int(cap), int(cap)))
        print(json.dumps(train_worker(system, int(batch), int(repeats), mode)))
        return 0

    settings = QUICK if args.quick else FULL
    sections = parse_sections(parser, args.sections)
    results: dict = {}
    print(
        f"machine: {os.cpu_count()} cores, {cpu_name()}; torch threads {torch.get_num_threads()}", flush=True
    )
    for section in SECTIONS:
        if section.key in sections:
            print(section.title, flush=True)
            results[section.key] = section.run(settings, args.cap_gb)
    if results.keys() - {"dense"}:  # the dense section carries its own timestamp
        results["measured_utc"] = utc_now()
    output = args.output or (None if args.quick else BENCH_DIR / "RESULTS.md")
    if output is not None:
        raw = output.with_suffix(".json")
        if raw.is_file():  # a run of some sections updates those and keeps the others' figures
            results = {**json.loads(raw.read_text()), **results}
        raw.write_text(json.dumps(results, indent=2, default=str))
    print(write_report(output, settings, results))
    return 0
