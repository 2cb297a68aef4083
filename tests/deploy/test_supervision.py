"""Issue 9: the local runner keeps the stack up. A process that dies (kill -9 or SIGTERM) is started
again by ``python -m deploy.stack up`` by itself, and nothing else is restarted; Redis comes
back with its idempotency keys.

One runner for the module, on the test ports plus 1000; each test finds the processes through
the runner's pid files (``<run dir>/pids/<name>.pid``) and its restart lines on stdout.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.stack import ROOT, START_ORDER, Topology

SHIFT = int(os.environ.get("LIVEFEED_TEST_PORT_SHIFT", "10000")) + 1000
TOKEN = "supervision-test-token"
BOOT_S = 150.0
BACK_S = 90.0
"""How long a killed process may take to answer again: the runner's own wait for Kafka at boot (a JVM
on two busy cores took 38 s)."""

pytestmark = pytest.mark.timeout(BOOT_S + 2 * BACK_S)


@dataclass
class Runner:
    """A ``python -m deploy.stack up`` subprocess, its run dir and its stdout (in a file)."""

    proc: subprocess.Popen[bytes]
    run_dir: Path
    stdout: Path
    topology: Topology
    restarts_caused: int = 0
    """How many exits the tests caused: the runner's restart lines must be exactly these."""

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def restarts(self) -> list[str]:
        """The runner's "<name> exited (...)" lines so far."""
        return [line for line in self.output().splitlines() if " exited (" in line]

    def pid(self, name: str) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int((self.run_dir / "pids" / f"{name}.pid").read_text())
        return None

    def pids(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in START_ORDER}

    def answers(self, name: str) -> bool:
        """Whether ``name`` serves again: its port (Kafka), PONG (Redis), 200 on /healthz (the others)."""
        t = self.topology
        if name in ("kafka", "redis"):
            port = t.kafka if name == "kafka" else t.redis
            try:
                with socket.create_connection((t.host, port), timeout=2) as conn:
                    if name == "kafka":
                        return True
                    conn.sendall(b"PING\r\n")
                    return conn.recv(64).startswith(b"+PONG")
            except OSError:
                return False
        url = t.base_url if name == "gateway" else f"http://{t.host}:{getattr(t, name)}"
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def _wait(condition: Callable[[], bool], timeout: float, what: str, runner: Runner) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout`` or as soon as the runner is gone."""
    started = time.monotonic()
    while not condition():
        assert runner.proc.poll() is None, f"the runner exited ({runner.proc.returncode}):\n{runner.output()}"
        assert time.monotonic() - started < timeout, f"{what} within {timeout:.0f}s\n{runner.output()}"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    run_dir = tmp_path_factory.mktemp("supervised") / "run"
    stdout = run_dir.parent / "runner.out"
    with open(stdout, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.stack", "up", "--no-demo", "--port-shift", str(SHIFT),
             "--run-dir", str(run_dir)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "LIVEFEED_TOKEN": TOKEN},
        )
    runner = Runner(proc, run_dir, stdout, Topology.shifted(SHIFT))
    try:
        _wait(lambda: "Press Ctrl-C to stop." in runner.output(), BOOT_S, "the runner says it is up", runner)
        yield runner
        assert len(runner.restarts()) == runner.restarts_caused, f"a process exited unasked:\n{runner.output()}"
    finally:
        _stop(runner)


def _stop(runner: Runner) -> None:
    """SIGTERM the runner; if it does not stop in time, kill its group; then every process it left a pid file for."""
    with contextlib.suppress(ProcessLookupError):
        runner.proc.send_signal(signal.SIGTERM)
    try:
        runner.proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.proc.pid, signal.SIGKILL)
        runner.proc.wait(10)
    finally:
        for pid in runner.pids().values():
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def _kill_and_see_it_back(runner: Runner, name: str, signum: signal.Signals) -> tuple[float, float]:
    """Send ``signum`` to ``name``; assert the runner starts it again and nothing else, and stays up.

    Returns when the signal was sent (monotonic) and the seconds until the new process answered.
    """
    before = runner.pids()
    old = before[name]
    assert old is not None, runner.output()
    restarts = len(runner.restarts())
    assert restarts == runner.restarts_caused, f"a process exited unasked:\n{runner.output()}"
    runner.restarts_caused += 1
    killed_at = time.monotonic()
    os.kill(old, signum)
    _wait(lambda: runner.pid(name) not in (None, old), BACK_S, f"{name} gets a new pid", runner)
    _wait(lambda: runner.answers(name), BACK_S, f"{name} answers again", runner)
    back_s = time.monotonic() - killed_at

    assert runner.proc.poll() is None, runner.output()
    code = "killed by SIGKILL" if signum is signal.SIGKILL else "exit code 0|killed by SIGTERM"
    lines = runner.restarts()[restarts:]
    assert len(lines) == 1, f"only {name} was to be restarted:\n{runner.output()}"
    line = re.search(rf"livefeed: {name} exited \(({code})\); restarting it in ([\d.]+)s \(attempt \d+; log: (.+)\)$",
                     lines[0])
    assert line is not None, lines[0]
    assert float(line[2]) in (0.5, 1.0), "the first wait, or the second if it was killed again within 10 s"
    assert line[3] == str(runner.run_dir / "logs" / f"{name}.log")
    others = {other: pid for other, pid in runner.pids().items() if other != name}
    assert others == {other: pid for other, pid in before.items() if other != name}, runner.output()
    return killed_at, back_s


@pytest.mark.parametrize("name", ["redis", "gateway", "ingest", "history", "fanout"])
def test_a_killed_process_is_started_again_and_nothing_else_is(runner: Runner, name: str) -> None:
    _kill_and_see_it_back(runner, name, signal.SIGKILL)


def test_a_service_stopped_with_sigterm_is_started_again(runner: Runner) -> None:
    """A clean exit (code 0) is restarted too: the runner's processes are meant to run until it stops."""
    _kill_and_see_it_back(runner, "ingest", signal.SIGTERM)


def test_after_a_killed_kafka_comes_back_a_post_through_the_gateway_reaches_history(runner: Runner) -> None:
    feed = f"t-{uuid.uuid4().hex[:12]}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=runner.topology.base_url, headers=auth, timeout=60) as api:
        assert api.post(f"/v1/feeds/{feed}/items", json={"headline": "before"}).status_code == 201
        killed_at, port_s = _kill_and_see_it_back(runner, "kafka", signal.SIGKILL)
        key = {"Idempotency-Key": uuid.uuid4().hex}

        def posted() -> bool:
            response = api.post(f"/v1/feeds/{feed}/items", json={"headline": "after"}, headers=key)
            assert response.status_code in (201, 503), response.text
            return response.status_code == 201

        _wait(posted, BACK_S, "a POST is accepted again", runner)
        post_s = time.monotonic() - killed_at

        def listed() -> bool:
            items = api.get(f"/v1/feeds/{feed}/items").json()["items"]
            return [i["headline"] for i in items] == ["after", "before"]

        _wait(listed, 30, "history lists the post", runner)
    print(f"\nkafka kill -9 -> port open {port_s:.1f}s, -> first POST 201 {post_s:.1f}s")


def test_an_idempotency_key_survives_a_redis_restart(runner: Runner) -> None:
    """SIGTERM, not kill -9: Redis then flushes its append-only file before exiting, so the key is
    on disk whatever the timing; after a kill -9 everysec persistence may lose the last write."""
    feed = f"t-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": uuid.uuid4().hex}
    body = {"headline": "once"}
    with httpx.Client(base_url=runner.topology.base_url, headers=headers, timeout=30) as api:
        first = api.post(f"/v1/feeds/{feed}/items", json=body)
        assert first.status_code == 201, first.text
        _kill_and_see_it_back(runner, "redis", signal.SIGTERM)
        again = api.post(f"/v1/feeds/{feed}/items", json=body)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["item"]["id"] == first.json()["item"]["id"]
