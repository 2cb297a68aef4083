"""The import rules of docs/architecture.md hold: import-linter's contracts in pyproject.toml.

The contracts are checked on the tree, and once on a copy with a forbidden import added, so a
contract that stopped matching anything (a renamed package, say) cannot pass unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.stack import ROOT

PACKAGES = ["shared", "services", "clients", "deploy", "benchmarks"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.timeout(150)
def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("module", "forbidden", "contract"), [
    ("shared/cursor.py", "services.fanout.hub", "shared imports no service"),
    ("services/ingest/auth.py", "services.history.render", "none imports another"),
    ("clients/cli/output.py", "services.ingest.lifecycle", "Clients use only the public API"),
    ("services/fanout/streams.py", "benchmarks.hist", "never imports the benchmarks"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, forbidden: str, contract: str) -> None:
    for name in [*PACKAGES, "pyproject.toml"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    with (tmp_path / module).open("a") as file:
        file.write(f"\nimport {forbidden}  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert contract in result.stdout and "BROKEN" in result.stdout
