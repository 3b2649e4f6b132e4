"""Package layout: stages import downward only, and every module imports on its own.

The import graph is read from the source with ``ast``, counting imports inside functions
too: a lazy import that closes a circle (``models/io.py`` <-> ``data/idf.py`` once did) still
ties two stages together, and only avoids the crash by luck of import order.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sparse_tune"


def _module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the package under ``root``."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: package modules it imports}``, module-level and function-level imports alike.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg`` itself; relative imports are resolved against the importing module.
    """
    modules = _module_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between top-level units (``sparse_tune.data``, ``sparse_tune.fsio``, ...)."""

    def stage(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for src, targets in graph.items():
        out.setdefault(stage(src), set()).update(stage(t) for t in targets if stage(t) != stage(src))
    return out


def test_no_import_cycle_between_modules():
    assert cycles(import_graph(ROOT)) == []


def test_stages_import_downward_only():
    assert cycles(stage_graph(import_graph(ROOT))) == []


def test_fsio_imports_only_the_standard_library():
    tree = ast.parse((ROOT / PACKAGE / "fsio.py").read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names - {"__future__"} <= set(sys.stdlib_module_names)


def test_the_cycle_check_finds_a_lazy_circle(tmp_path):
    """The check itself: a function-level import that closes a circle is reported, a chain is not."""
    pkg = tmp_path / PACKAGE
    (pkg / "models").mkdir(parents=True)
    (pkg / "data").mkdir()
    for folder in (pkg, pkg / "models", pkg / "data"):
        (folder / "__init__.py").write_text("")
    (pkg / "models" / "io.py").write_text("def f():\n    from sparse_tune.data.idf import g\n")
    (pkg / "data" / "idf.py").write_text("def g():\n    from ..models import io\n")
    (pkg / "data" / "jsonl.py").write_text("from . import idf\n")
    graph = import_graph(tmp_path)
    assert graph["sparse_tune.data.jsonl"] == {"sparse_tune.data.idf"}
    assert cycles(graph) == [["sparse_tune.data.idf", "sparse_tune.models.io"]]
    assert cycles(stage_graph(graph)) == [["sparse_tune.data", "sparse_tune.models"]]


@pytest.mark.parametrize("module", ["sparse_tune.data.idf", "sparse_tune.models.io", "sparse_tune.fsio"])
def test_module_imports_first_in_a_fresh_interpreter(module):
    """Imported before anything else of the package (a circle would fail here, in some order)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"import {module}, sparse_tune; assert sparse_tune.__file__.startswith({str(ROOT)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
