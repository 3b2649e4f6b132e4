"""``sparse-tune <verb> ...``: wiring only. Each verb lives in its own module.

``main`` is the one entry and error path: the console script and every ``scripts/*.py``
wrapper (through ``run_script``) parse, run and report errors here, so a bad argument
reads and exits the same whichever way the verb was started.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

# Idle OpenMP threads that spin starve each other on shared or small CPUs (measured 4-8x
# slower SPLADE heads on 2 busy cores); must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

VERBS = (
    "train",
    "evaluate",
    "encode",
    "idf",
    "mine",
    "score",
    "export",
    "tune",
    "seeds",
    "distill-pipeline",
    "merge",
)

#: Errors that mean "your input is wrong": one line, exit code 2, traceback only with --debug.
#: ConnectionError covers OpenSearchUnavailableError (server unreachable or credentials refused at start).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    KeyError,
    RuntimeError,
    ConnectionError,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error shape: one line ``PROG: error: ...``, exit code 2, no usage block.

    The usage block argparse prints first would push the one line that matters off a small
    terminal; ``--help`` still shows it. Subparsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sparse-tune", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in VERBS:
        name = f"sparse_tune.cli.{verb.replace('-', '_')}"  # a verb may have a '-', a module may not
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the verb
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        # opensearch-py logs every failed request with a full traceback; our retries already
        # say what failed, and --debug brings the library's logging back.
        logging.getLogger("opensearch").setLevel(logging.ERROR)
    parser = build_parser()
    args, extra = parser.parse_known_args(_bind_override_values(parser, argv))
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    return call_reporting_errors(f"sparse-tune {args.verb}", lambda: args.func(args), debug)


def _bind_override_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--key value`` -> ``--key=value`` for recipe overrides (options the verb's parser does not know).

    Otherwise argparse gives ``value`` to the optional recipe positional: ``train --output_dir out``
    would read ``out`` as the recipe, and ``--max_steps -5`` would look like an unknown option.
    """
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    verb = next((a for a in argv if not a.startswith("-")), None)
    verb_parser = sub.choices.get(verb) if sub is not None and verb else None
    if verb_parser is None or not verb_parser.get_default("accepts_overrides"):
        return argv
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        unknown = (
            token.startswith("--") and "=" not in token and token not in verb_parser._option_string_actions
        )
        if unknown and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out


def call_reporting_errors(label: str, call: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``call``; a user error becomes one line ``LABEL: error: message`` on stderr and exit code 2.

    Anything outside ``USER_ERRORS`` is a bug and keeps its traceback.
    """
    try:
        return int(call() or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C: what was kept and how to go on (training says), no traceback
        if debug:
            traceback.print_exc()
        detail = " ".join(str(exc).split())
        print(f"{label}: interrupted" + (f" {detail}" if detail else ""), file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            traceback.print_exc()
        else:
            message = " ".join(str(exc).split())  # one line, whatever the message held
            print(f"{label}: error: {message}", file=sys.stderr)
        return 2


def run_script(verb: str) -> NoReturn:
    """Entry of a ``scripts/*.py`` wrapper: ``sparse-tune VERB`` with the script's own arguments.

    torchrun starts a script as ``__main__`` with its arguments in ``sys.argv`` like python does,
    so ``torchrun scripts/train_ir.py recipe.yaml`` takes this path too.
    """
    sys.exit(main([verb, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
