"""The clients use livefeed only through its public API: of this repository's packages they import ``shared`` alone.

Read from the source, not by importing it, so an import inside a function (or via importlib) counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"clients", "shared"}


def repository_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def imported_names(source: str) -> set[str]:
    """Absolute modules a file imports: import statements, ``importlib.import_module("x")`` and ``__import__("x")``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def test_the_finder_sees_each_kind_of_import() -> None:
    source = "import a.b\nfrom c import d\nfrom . import e\nimport importlib\nimportlib.import_module('f.g')\n"
    assert imported_names(source) == {"a.b", "c", "importlib", "f.g"}


def test_clients_import_no_service_benchmark_or_deploy_code() -> None:
    ours = repository_packages()
    assert {"clients", "services", "shared", "benchmarks"} <= ours
    problems = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "clients").rglob("*.py"))
        for name in sorted(imported_names(path.read_text()))
        if name.split(".")[0] in ours - ALLOWED
    ]
    assert not problems, "\n".join(problems)
