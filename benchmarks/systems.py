"""The systems a benchmark run measures: livefeed's fanout and its peers.

Each :class:`System` says where its readers connect, which framing they speak, which process
to measure (CPU, RSS) and how to start and stop it. Livefeed's fanout belongs to the stack
(started by :class:`deploy.stack.Stack`, or found by its port with ``--url``); the peers are
started here, one at a time, on ports next to the stack's, each consuming the same topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from deploy.stack import CACHE

from .peers import centrifugo
from .procstat import listening_pid

__all__ = ["PEER_OFFSETS", "System", "start_peer"]

ROOT = Path(__file__).resolve().parent.parent
PEER_OFFSETS = {"naive": 100, "socketio": 101, "ceiling": 102, "centrifugo": 103}
_MODULES = {"naive": "benchmarks.peers.naive", "socketio": "benchmarks.peers.socketio_peer",
            "ceiling": "benchmarks.peers.ceiling"}


@dataclass
class System:
    """One system under test: where readers connect and which process does the work."""

    name: str
    host: str
    port: int
    pid: int
    mode: str = "ws"
    filters: bool = False
    process: asyncio.subprocess.Process | None = None
    log: IO[bytes] | None = None
    ceiling_lines: list[str] = field(default_factory=list)

    def path(self, feed: str, tag: str | None) -> str:
        """The request path a reader of ``feed`` (only items tagged ``tag``, if given) opens."""
        if self.name == "socketio":
            return f"/socket.io/?EIO=4&transport=websocket&feed={feed}"
        if self.name == "ceiling":
            return "/"
        if self.name == "centrifugo":
            return centrifugo.reader_path(feed)
        if tag and self.filters:
            return f"/v1/feeds/{feed}/stream?tags={tag}"
        return f"/v1/feeds/{feed}/stream"

    async def blast(self, seconds: float) -> dict[str, float]:
        """The ceiling only: write frames flat out for ``seconds``; its own tally."""
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"blast {seconds}\n".encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), seconds + 60)
        result: dict[str, float] = json.loads(line)
        return result

    async def stop(self) -> None:
        """Stop a peer this harness started (livefeed's fanout is the stack's to stop)."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self.log is not None:
            self.log.close()
        self.process = None


def livefeed(host: str, port: int, pid: int | None = None) -> System:
    """Livefeed's fanout on ``port``; its pid is looked up from the port when not given."""
    found = pid or listening_pid(port)
    if found is None:
        raise RuntimeError(f"no process listens on {host}:{port}: is the fanout running?")
    return System("livefeed", host, port, found, filters=True)


async def start_peer(name: str, host: str, port: int, kafka: str, topic: str, log_dir: Path) -> System:
    """Start peer ``name`` on ``port`` and wait until it is consuming and accepting readers."""
    if name == "centrifugo":
        return await _start_centrifugo(host, port, kafka, topic, log_dir)
    log = _open_log(log_dir, name)
    argv = [sys.executable, "-m", _MODULES[name], "--host", host, "--port", str(port)]
    if name != "ceiling":
        argv += ["--kafka", kafka, "--topic", topic]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if name == "ceiling" else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if name == "ceiling" else log, stderr=log, env=env, cwd=ROOT,
        start_new_session=True,
    )
    system = System(name, host, port, process.pid, mode="socketio" if name == "socketio" else "ws",
                    process=process, log=log)
    try:
        if name == "ceiling":
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if line.strip() != b"ready":
                raise RuntimeError(f"the ceiling program did not start: {line!r}")
        else:
            await _wait_ready(host, port, process, 60.0)
    except BaseException:
        await system.stop()
        raise
    return system


async def _start_centrifugo(host: str, port: int, kafka: str, topic: str, log_dir: Path) -> System:
    """Centrifugo behind its Kafka bridge (built on first use); the measured pid is Centrifugo's own."""
    binary = await centrifugo.ensure_binary(CACHE, _say)
    config = centrifugo.write_config(log_dir, host, port)
    log = _open_log(log_dir, "centrifugo")
    argv = [sys.executable, "-m", "benchmarks.peers.centrifugo", "--host", host, "--port", str(port),
            "--kafka", kafka, "--topic", topic, "--config", str(config), "--binary", str(binary)]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, start_new_session=True,
    )
    system = System("centrifugo", host, port, process.pid, mode="centrifugo", process=process, log=log)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        word, _, pid = line.decode(errors="replace").partition(" ")
        if word != "ready" or not pid.strip().isdigit():
            raise RuntimeError(f"centrifugo or its bridge did not start: {line!r}")
        system.pid = int(pid)
    except BaseException:
        await system.stop()
        raise
    return system


def _say(text: str) -> None:
    print(f"[centrifugo] {text}", file=sys.stderr, flush=True)


def _open_log(log_dir: Path, name: str) -> IO[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return open(log_dir / f"peer-{name}.log", "ab")


async def _wait_ready(host: str, port: int, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Poll the peer's ``/healthz`` until it says ready (not a measured path, so httpx, not the lean client)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=2.0, trust_env=False) as client:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"peer on port {port} exited with code {process.returncode}")
            try:
                answer = await client.get("/healthz")
                if answer.status_code == 200 and answer.json().get("ready"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"peer on port {port} was not ready within {timeout_s:.0f}s")
