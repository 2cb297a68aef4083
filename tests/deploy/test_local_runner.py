"""Command 1's runner: it starts the whole stack with demo items, refuses a second start,
and a SIGTERM stops every process it started."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.stack import ROOT, Topology

SHIFT = int(os.environ.get("LIVEFEED_TEST_PORT_SHIFT", "10000")) + 5000


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@pytest.mark.timeout(240)
def test_up_serves_the_demo_feed_and_sigterm_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.stack", "up", "--run-dir", str(run_dir), "--port-shift", str(SHIFT)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while not any("Press Ctrl-C to stop." in line for line in output):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(output)
            output.append(line)
            assert time.monotonic() < deadline, "".join(output)
        text = "".join(output)
        base = Topology.shifted(SHIFT).base_url
        assert f"{base}/feeds/world" in text
        assert "Newsroom token" in text
        with urllib.request.urlopen(f"{base}/v1/feeds/world/items", timeout=10) as response:
            items = json.load(response)["items"]
        assert len(items) >= 3
        assert any("<script>" in i["headline"] for i in items)

        second = subprocess.run(
            [sys.executable, "-m", "deploy.stack", "up", "--run-dir", str(run_dir), "--port-shift", str(SHIFT)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert str(proc.pid) in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0
    assert _processes_mentioning(str(run_dir)) == []


def test_a_second_start_says_who_is_running(tmp_path: Path) -> None:
    """Without starting anything: a held lock makes 'up' stop at once and name the holder."""
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / "stack.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        result = subprocess.run(
            [sys.executable, "-m", "deploy.stack", "up", "--run-dir", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 1
    assert "already running" in result.stderr and "4242" in result.stderr
