"""The whole tree is ruff clean and mypy --strict clean: checked in CI, not left to habit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.stack import ROOT

CHECKED = ["shared", "services", "clients", "deploy", "benchmarks", "tests"]


@pytest.mark.timeout(300)
def test_ruff_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_mypy_strict_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
