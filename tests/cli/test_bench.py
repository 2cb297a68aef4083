"""``livefeed bench`` becomes the ``livefeed-bench`` program, or says what to install; it never imports benchmarks.

Each test runs the CLI as a separate process against a fake ``livefeed-bench`` and a ``benchmarks``
package that refuses to be imported, so no test needs the stack or runs a real benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "clients.cli.main"]
BENCH_EXIT = 3
ARGS = ["--readers", "100", "--url", "http://x", "--", "two words", "--help"]


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_bench(folder: Path) -> Path:
    """A ``livefeed-bench`` that prints its argv and pid as JSON and exits with BENCH_EXIT."""
    return executable(folder / "livefeed-bench", (
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv, 'pid': os.getpid()}))\n"
        f"sys.exit({BENCH_EXIT})\n"
    ))


def env(tmp_path: Path, path: Path) -> dict[str, str]:
    """PATH is only ``path``; a ``benchmarks`` package earlier on PYTHONPATH exits 99 if the CLI imports it."""
    executable(tmp_path / "shadow" / "benchmarks" / "__init__.py",
               "raise SystemExit('livefeed imported the benchmarks package')\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    environment.update({"PATH": str(path), "PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), str(ROOT)])})
    return environment


def run(command: list[str], environment: dict[str, str], cwd: Path) -> tuple[int, int, str, str]:
    """(pid, exit code, stdout, stderr) of ``command``, run in ``cwd`` so the checkout is not sys.path[0]."""
    with subprocess.Popen(command, env=environment, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        out, err = process.communicate(timeout=60)
        return process.pid, process.returncode, out, err


def bench_saw(out: str) -> dict[str, Any]:
    seen: dict[str, Any] = json.loads(out)
    return seen


def test_bench_becomes_livefeed_bench_with_every_argument_and_its_exit_code(tmp_path: Path) -> None:
    fake_bench(tmp_path / "bin")
    pid, code, out, err = run([*CLI, "bench", *ARGS], env(tmp_path, tmp_path / "bin"), tmp_path)
    assert code == BENCH_EXIT, err
    seen = bench_saw(out)
    assert seen["argv"][1:] == ARGS and Path(seen["argv"][0]).name == "livefeed-bench"
    assert seen["pid"] == pid, "livefeed should become livefeed-bench, so Ctrl-C and the exit code are its own"


def test_bench_finds_livefeed_bench_beside_livefeed_when_path_lacks_it(tmp_path: Path) -> None:
    """A virtualenv used without activating it: ``.venv/bin/livefeed bench`` still finds its ``livefeed-bench``."""
    venv_bin = tmp_path / "venv" / "bin"
    fake_bench(venv_bin)
    livefeed = executable(venv_bin / "livefeed", (
        f"#!{sys.executable}\n"
        "import sys\n"
        "from clients.cli.main import main\n"
        "sys.exit(main())\n"
    ))
    (tmp_path / "empty").mkdir()
    _, code, out, err = run([str(livefeed), "bench", "--quiet"], env(tmp_path, tmp_path / "empty"), tmp_path)
    assert code == BENCH_EXIT, err
    assert bench_saw(out)["argv"][1:] == ["--quiet"]


def test_bench_without_livefeed_bench_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, code, out, err = run([*CLI, "bench", "--help"], env(tmp_path, tmp_path / "empty"), tmp_path)
    assert (code, out) == (1, ""), err
    assert "livefeed-bench" in err and "pip install -e '.[bench]'" in err
    assert err.count("\n") == 1, "one line on stderr, as every CLI failure"
