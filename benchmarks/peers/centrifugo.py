"""Centrifugo, the Go real-time server users would pick instead, fed from the same topic.

Centrifugo cannot read livefeed's topic itself (its Kafka consumer wants its own command
format), so a small bridge does what a team adopting it would write: tail the topic as every
peer does (``tail_topic``) and publish each event's reader message, unchanged, to the feed's
channel through Centrifugo's HTTP API (``POST /api/batch``, ``X-API-Key``), whatever queued up
while the previous batch was in flight going out as one batch. Readers use its unidirectional
WebSocket with the connect command in the URL (:func:`reader_path`): anonymous, subscribed
server-side to the channels they name, no token.

The binary is built once with ``go install`` into ``LIVEFEED_CACHE/centrifugo/`` and reused
(:func:`ensure_binary`); each run writes its own config (:func:`write_config`) with a fresh API
key into the run's log directory. The bridge starts Centrifugo as its child in its own process
group, then prints ``ready <centrifugo pid>`` on stdout: that pid is the one measured (CPU,
RSS), as the fan-out server; the bridge's own CPU goes to its log when it stops.
Run: ``python -m benchmarks.peers.centrifugo --port P --kafka HOST:PORT --config FILE --binary FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import orjson

from .common import peer_arguments, tail_topic

__all__ = [
    "MODULE",
    "VERSION",
    "batch_body",
    "binary_path",
    "build_config",
    "ensure_binary",
    "main",
    "reader_path",
    "write_config",
]

MODULE = "github.com/centrifugal/centrifugo/v6"
VERSION = "v6.9.1"
BUILD_TIMEOUT_S = 1200.0
MAX_BATCH = 500
MAX_CONNECTIONS = 50_000
_GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")


def binary_path(cache: Path) -> Path:
    """Where the built binary of :data:`VERSION` lives under the livefeed cache."""
    return cache / "centrifugo" / VERSION / "centrifugo"


def reader_path(feed: str) -> str:
    """The request path of a reader of ``feed``: uni WebSocket, connect command (subscribe to ``feed``) in the URL."""
    connect = json.dumps({"subs": {feed: {}}}, separators=(",", ":"))
    return "/connection/uni_websocket?cf_connect=" + quote(connect, safe="")


def build_config(host: str, port: int, api_key: str) -> dict[str, Any]:
    """Centrifugo v6 settings for the benchmark: API with a key, anonymous uni WebSocket readers, no history.

    ``allow_anonymous_connect_without_token`` plus a namespace open to anonymous client subscribe
    is what lets a uni WebSocket reader's ``subs`` become server-side subscriptions without a JWT
    (Centrifugo subscribes a connection only to channels it could subscribe to itself). The
    connection limit is explicit and far above the largest sweep; pushes queued for one reader are
    joined into one frame (newline-delimited), Centrifugo's own remedy for many small messages.
    """
    return {
        "http_server": {"address": host, "port": port},
        "log": {"level": "warn"},
        "http_api": {"key": api_key},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "uni_websocket": {"enabled": True, "join_push_messages": True},
        "client": {
            "allow_anonymous_connect_without_token": True,
            "connection_limit": MAX_CONNECTIONS,
            "channel_limit": 16,
            "queue_max_size": 1_048_576,
        },
        "channel": {
            "without_namespace": {
                "allow_subscribe_for_client": True,
                "allow_subscribe_for_anonymous": True,
                "history_size": 0,
            },
        },
    }


def write_config(directory: Path, host: str, port: int) -> Path:
    """Write a config with a fresh API key into ``directory`` (owner-only); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "centrifugo.json"
    config = build_config(host, port, secrets.token_urlsafe(24))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)
    return path


def batch_body(events: list[tuple[str, bytes]]) -> bytes:
    """One ``/api/batch`` body publishing each ``(feed, reader message)`` to the channel named after its feed."""
    commands = b",".join(
        b'{"publish":{"channel":' + orjson.dumps(feed) + b',"data":' + message + b"}}" for feed, message in events
    )
    return b'{"commands":[' + commands + b"]}"


def _open(path: Path, mode: str) -> IO[Any]:
    return open(path, mode)


def _tail(path: Path, lines: int) -> list[str]:
    return path.read_text(errors="replace").strip().splitlines()[-lines:]


def _find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    return next((c for c in _GO_CANDIDATES if os.access(c, os.X_OK)), None)


async def ensure_binary(
    cache: Path, say: Callable[[str], None], timeout_s: float = BUILD_TIMEOUT_S
) -> Path:
    """The Centrifugo binary, built with ``go install`` the first time (bounded by ``timeout_s``).

    A lock file keeps two runs from building at once; the build goes to a scratch directory and
    is moved into place only when it succeeded, so a cut build is never reused. Raises
    ``RuntimeError`` saying what to do when Go or the module proxy is unavailable.
    """
    target = binary_path(cache)
    if target.exists():
        return target
    go = _find_go()
    if go is None:
        raise RuntimeError(
            f"Centrifugo {VERSION} is not built and no Go toolchain was found: install Go (https://go.dev/dl/) "
            f"and rerun, or put a centrifugo {VERSION} binary at {target}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    log_path = target.parent / "build.log"
    with _open(target.parent / "build.lock", "w") as lock:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() > deadline:
                    raise RuntimeError(f"another run has been building Centrifugo for over {timeout_s:.0f}s") from None
                await asyncio.sleep(1.0)
        if target.exists():
            return target
        scratch = target.parent / "build"
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"building Centrifugo {VERSION} with {go} (once; up to {timeout_s / 60:.0f} min; log: {log_path})")
        await _go_install(go, scratch, log_path, deadline, say)
        (scratch / "centrifugo").replace(target)
        shutil.rmtree(scratch, ignore_errors=True)
    return target


async def _go_install(go: str, gobin: Path, log_path: Path, deadline: float, say: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with _open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_exec(
            go, "install", f"{MODULE}@{VERSION}", stdout=log, stderr=log, cwd=gobin.parent,
            env={**os.environ, "GOBIN": str(gobin)}, start_new_session=True,
        )
        try:
            while process.returncode is None:
                if loop.time() > deadline:
                    raise RuntimeError(
                        f"building Centrifugo did not finish within {deadline - started:.0f}s (log: {log_path}); "
                        "check that the Go module proxy is reachable (GOPROXY), or build it elsewhere with "
                        f"`go install {MODULE}@{VERSION}` and copy the binary to {gobin.parent / 'centrifugo'}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 15.0)
                if process.returncode is None:
                    say(f"still building Centrifugo: {loop.time() - started:.0f}s")
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    if process.returncode != 0 or not (gobin / "centrifugo").exists():
        tail = _tail(log_path, 3)
        raise RuntimeError(
            f"`go install {MODULE}@{VERSION}` failed with code {process.returncode}: {' | '.join(tail)} "
            f"(log: {log_path}); if the module proxy is unreachable, set GOPROXY to one you can reach or "
            f"copy a centrifugo {VERSION} binary to {gobin.parent / 'centrifugo'}"
        )


async def _wait_health(client: httpx.AsyncClient, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"centrifugo exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/health")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"centrifugo was not healthy within {timeout_s:.0f}s")


class _Bridge:
    """Kafka to Centrifugo's HTTP API: one batch in flight, the next made of all that queued meanwhile."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100_000)
        self.published = 0
        self.batches = 0
        self.failed = 0

    async def feed(self, kafka: str, topic: str, ready: asyncio.Event) -> None:
        async for event in tail_topic(kafka, topic, ready):
            await self.queue.put(event)

    async def send(self) -> None:
        while True:
            events = [await self.queue.get()]
            while len(events) < MAX_BATCH and not self.queue.empty():
                events.append(self.queue.get_nowait())
            try:
                answer = await self.client.post("/api/batch", content=batch_body(events))
                answer.raise_for_status()
                if b'"error"' in answer.content:
                    raise httpx.HTTPError(f"a command failed: {answer.content[:200]!r}")
                self.published += len(events)
            except httpx.HTTPError as exc:
                self.failed += len(events)
                print(f"centrifugo bridge: batch of {len(events)} failed: {exc!r}", file=sys.stderr, flush=True)
            self.batches += 1


async def _serve(args: Any, api_key: str) -> None:
    centrifugo = await asyncio.create_subprocess_exec(
        args.binary, "--config", args.config, stdin=asyncio.subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://{args.host}:{args.port}", headers=headers, timeout=10.0,
                                 trust_env=False) as client:
        bridge = _Bridge(client)
        tasks: list[asyncio.Task[None]] = []
        try:
            await _wait_health(client, centrifugo, 30.0)
            ready = asyncio.Event()
            tasks = [asyncio.create_task(bridge.feed(args.kafka, args.topic, ready)),
                     asyncio.create_task(bridge.send())]
            waiting = asyncio.create_task(ready.wait())
            await asyncio.wait([waiting, tasks[0]], timeout=60.0, return_when=asyncio.FIRST_COMPLETED)
            if not ready.is_set():
                waiting.cancel()
                raise RuntimeError("the bridge's Kafka consumer was not positioned within 60s")
            print(f"ready {centrifugo.pid}", flush=True)
            exited = asyncio.create_task(centrifugo.wait())
            await asyncio.wait([asyncio.create_task(stop.wait()), exited, *tasks],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if centrifugo.returncode is None:
                centrifugo.terminate()
                try:
                    await asyncio.wait_for(centrifugo.wait(), 10.0)
                except TimeoutError:
                    centrifugo.kill()
                    await centrifugo.wait()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(f"centrifugo bridge: published {bridge.published} in {bridge.batches} batches, "
                  f"{bridge.failed} failed; bridge CPU {usage.ru_utime + usage.ru_stime:.1f}s "
                  f"at {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = peer_arguments(__doc__ or "")
    parser.add_argument("--config", required=True, help="the config file write_config made")
    parser.add_argument("--binary", required=True, help="the centrifugo binary ensure_binary built")
    args = parser.parse_args(argv)
    api_key = json.loads(Path(args.config).read_text())["http_api"]["key"]
    import uvloop

    uvloop.run(_serve(args, api_key))


if __name__ == "__main__":
    main()
