"""``livefeed bench`` hands its arguments to benchmarks.run, or says clearly that it cannot."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from services.cli import main as cli


def test_bench_passes_every_argument_to_benchmarks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    fake = types.ModuleType("benchmarks.run")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchmarks.run", fake)
    assert cli.main(["bench", "--readers", "100", "--url", "http://x"]) == 3
    assert seen == [["--readers", "100", "--url", "http://x"]]


def test_bench_without_the_benchmarks_package_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = importlib.import_module

    def missing(name: str, package: str | None = None) -> types.ModuleType:
        if name.startswith("benchmarks"):
            raise ModuleNotFoundError(f"No module named {name!r}", name="benchmarks")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert cli.main(["bench", "--help"]) == 1
    assert "pip install -e '.[bench]'" in capsys.readouterr().err
