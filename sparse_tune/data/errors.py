"""The one error type every data loader raises for bad input.

Training data is usually produced by someone else's script, so a failure must say
*where* it is (file and line) and *what* is wrong in one line that fits a terminal;
a bare ``KeyError`` from deep inside a loader sends people to the debugger instead.
"""

from __future__ import annotations

from os import PathLike


class DataError(ValueError):
    """Bad input data: ``str(err)`` is ``"path:line: what is wrong"`` (``"path: ..."`` without a line).

    Subclasses ``ValueError`` so callers that already catch ``ValueError`` keep working.
    """

    def __init__(self, path: str | PathLike[str] | None, line: int | None, message: str) -> None:
        self.path = str(path) if path is not None else "<data>"
        self.line = line  # 1-based, or None when the problem is not tied to one line
        self.message = " ".join(str(message).split())  # one line, whatever the message held
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"

    def __reduce__(self):  # keep pickling (datasets' multiprocessing) working with 3 arguments
        return (type(self), (self.path, self.line, self.message))
