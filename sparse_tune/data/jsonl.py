"""Reading JSON Lines with line numbers: the one place a malformed line becomes a DataError.

Every loader (training formats, BEIR corpus/queries, teacher scores) reports bad input
as ``file:line: what is wrong``; they all get their lines and that message from here.
A UTF-8 BOM is tolerated and CRLF line ends are stripped; blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

from sparse_tune.data.errors import DataError


def parse_json_line(line: str, path: str | PathLike[str], lineno: int) -> Any:
    """``json.loads`` that raises ``DataError(path, lineno, "malformed JSON: ...")``."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(path, lineno, f"malformed JSON: {e.msg} (column {e.colno})") from None


def iter_json_lines(path: str | PathLike[str]) -> Iterator[tuple[int, str, Any]]:
    """``(line number, raw line ending in "\\n", parsed value)`` for each non-blank line."""
    with Path(path).open(encoding="utf-8-sig", newline=None) as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield lineno, line.rstrip("\r\n") + "\n", parse_json_line(line, path, lineno)
