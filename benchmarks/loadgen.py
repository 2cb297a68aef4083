"""The reader side of the benchmark: thousands of WebSocket readers in a few worker processes.

A full client library per connection would make the load generator the bottleneck, so each
reader is a plain :class:`asyncio.Protocol` that writes the WebSocket handshake by hand, then
only parses frame headers and the ``"ts":`` field of event messages (ingest's acceptance time,
ms) to compute end-to-end latency into a flat histogram. It answers pings (WebSocket pings with
a pong; Engine.IO ``2`` with ``3``) so long runs are not cut by keepalive timeouts, and speaks
the Engine.IO v4 / Socket.IO framing for the python-socketio peer and Centrifugo's unidirectional
WebSocket (newline-delimited pushes, several publications to a frame) for the centrifugo peer.

Workers are separate processes (``spawn``), each holding at most a few thousand sockets, well
under the 20,000 open-file limit; each raises its soft ``RLIMIT_NOFILE`` to the hard limit and
spreads its connections over several 127.0.0.x source addresses so ephemeral ports never run
short. The orchestrator drives them over pipes with :class:`ReaderPool`; every reply carries the
worker's own CPU seconds, so a report can show the generator was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from .hist import BUCKETS, Histogram

__all__ = ["ReaderPool", "ReaderSpec", "WorkerReport"]

_KEY = base64.b64encode(b"livefeed-bench!!").decode()
_TS = b'"ts":'
_PONG_EMPTY = b"\x8a\x80\x00\x00\x00\x00"
_SIO_PONG = b"\x81\x81\x00\x00\x00\x00" + b"3"
_SIO_CONNECT = b"\x81\x82\x00\x00\x00\x00" + b"40"
_PUB = b'"pub":'
_CONNECT = b'{"connect":'


@dataclass(frozen=True)
class ReaderSpec:
    """Which stream one reader opens: the request path and the group it is counted in."""

    path: str
    group: str


@dataclass
class WorkerReport:
    """What one worker measured since its last reset."""

    connected: int = 0
    failed: int = 0
    events: int = 0
    other_frames: int = 0
    bytes: int = 0
    disconnects: int = 0
    closes: int = 0
    first_ms: float = 0.0
    last_ms: float = 0.0
    cpu_s: float = 0.0
    hist: dict[int, int] = field(default_factory=dict)
    max_ms: float = 0.0
    by_group: dict[str, int] = field(default_factory=dict)
    connect_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class _Stats:
    """Counters shared by every reader of one worker process; filled in the hot path."""

    __slots__ = ("bytes", "closes", "disconnects", "events", "first_ms", "hist", "last_ms", "max_ms", "other")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.other = 0
        self.bytes = 0
        self.disconnects = 0
        self.closes = 0
        self.first_ms = 0.0
        self.last_ms = 0.0
        self.max_ms = 0.0
        self.hist = [0] * BUCKETS


class _Reader(asyncio.Protocol):
    """One WebSocket reader: handshake, then frame headers and the ``ts`` field only."""

    __slots__ = ("buf", "closing", "group", "ready", "request", "stats", "transport", "upgraded")

    def __init__(self, request: bytes, stats: _Stats, group: str, ready: asyncio.Future[bool]) -> None:
        self.request = request
        self.stats = stats
        self.group = group
        self.ready = ready
        self.buf = b""
        self.upgraded = False
        self.closing = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        elif not self.closing:
            self.stats.disconnects += 1

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_result(False)
                self.closing = True
                assert self.transport is not None
                self.transport.abort()
                return
            self.upgraded = True
            self.on_upgraded()
            data = data[end + 4 :]
            if not data:
                return
        stats = self.stats
        stats.bytes += len(data)
        now = time.time() * 1000.0
        pos = 0
        size = len(data)
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = data[pos] & 0x0F
            if opcode == 1:
                self.on_text(data, start, end, now)
            elif opcode == 9:
                self.pong(data[start:end])
            elif opcode == 8:
                stats.closes += 1
            else:
                stats.other += 1
            pos = end
        if pos < size:
            self.buf = data[pos:]

    def on_upgraded(self) -> None:
        if not self.ready.done():
            self.ready.set_result(True)

    def on_text(self, data: bytes, start: int, end: int, now: float) -> None:
        i = data.find(_TS, start, end)
        stats = self.stats
        if i < 0:
            stats.other += 1
            return
        j = data.find(b",", i + 5, end)
        latency = now - float(data[i + 5 : j])
        stats.events += 1
        if latency > stats.max_ms:
            stats.max_ms = latency
        index = int(latency * 10.0) if latency > 0.0 else 0
        stats.hist[index if index < BUCKETS else BUCKETS - 1] += 1
        if not stats.first_ms:
            stats.first_ms = now
        stats.last_ms = now

    def pong(self, payload: bytes) -> None:
        """Answer a ping with a masked pong (an all-zero mask leaves the payload as it is)."""
        if self.transport is not None and len(payload) < 126:
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload)

    def close(self) -> None:
        """Drop the connection at once (RST): no TIME_WAIT left on either side."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class _SocketIoReader(_Reader):
    """A Socket.IO (Engine.IO v4) reader over a WebSocket: open, connect, events, ping/pong."""

    __slots__ = ()

    def on_upgraded(self) -> None:
        pass  # connected once the server acknowledges the namespace connect ("40")

    def on_text(self, data: bytes, start: int, end: int, now: float) -> None:
        kind = data[start : start + 2]
        if kind == b"42":
            _Reader.on_text(self, data, start, end, now)
        elif kind[:1] == b"2":
            assert self.transport is not None
            self.transport.write(_SIO_PONG)
        elif kind[:1] == b"0":
            assert self.transport is not None
            self.transport.write(_SIO_CONNECT)
        elif kind == b"40":
            if not self.ready.done():
                self.ready.set_result(True)
        else:
            self.stats.other += 1


class _CentrifugoReader(_Reader):
    """A Centrifugo unidirectional WebSocket reader: connected on the connect push, one event per publication.

    A frame holds one or more JSON pushes separated by newlines: ``{"connect":…}`` once, then
    ``{"channel":…,"pub":{"data":<the reader message>,…}}`` per publication, ``{}`` as a ping.
    """

    __slots__ = ()

    def on_upgraded(self) -> None:
        pass  # connected once Centrifugo confirms the connect command (and its subscriptions)

    def on_text(self, data: bytes, start: int, end: int, now: float) -> None:
        while start < end:
            stop = data.find(b"\n", start, end)
            if stop < 0:
                stop = end
            if data.find(_PUB, start, stop) >= 0:
                _Reader.on_text(self, data, start, stop, now)
            elif data.startswith(_CONNECT, start, stop):
                if not self.ready.done():
                    self.ready.set_result(True)
            else:
                self.stats.other += 1
            start = stop + 1


_FACTORIES: dict[str, type[_Reader]] = {"ws": _Reader, "socketio": _SocketIoReader, "centrifugo": _CentrifugoReader}


def _request(host: str, port: int, path: str, origin: str | None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {_KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Worker:
    """The body of one worker process: an event loop answering the orchestrator's commands."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.stats = _Stats()
        self.readers: list[_Reader] = []
        self.connected: dict[str, int] = {}
        self.failed = 0
        self.connect_s = 0.0
        self.errors: list[str] = []
        self.done = asyncio.Event()
        self.seq = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def cpu(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def reply(self, kind: str, payload: Any) -> None:
        self.conn.send((self.seq, kind, payload))

    def on_command(self) -> None:
        os.set_blocking(self.conn.fileno(), True)  # uvloop's add_reader made it non-blocking
        try:
            self.seq, command, args = self.conn.recv()
        except EOFError:
            self.done.set()
            return
        if command == "connect":
            task = asyncio.get_running_loop().create_task(self.connect(self.seq, **args))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif command == "reset":
            self.stats.reset()
            self.reply("ok", self.cpu())
        elif command == "progress":
            self.reply("progress", (self.stats.events, sum(self.connected.values()), self.stats.disconnects))
        elif command == "report":
            self.reply("report", self.report())
        elif command == "close":
            for reader in self.readers:
                reader.close()
            self.readers.clear()
            self.connected.clear()
            self.failed = 0
            self.reply("ok", self.cpu())
        elif command == "exit":
            self.done.set()

    def report(self) -> WorkerReport:
        stats = self.stats
        return WorkerReport(
            connected=sum(self.connected.values()),
            failed=self.failed,
            events=stats.events,
            other_frames=stats.other,
            bytes=stats.bytes,
            disconnects=stats.disconnects,
            closes=stats.closes,
            first_ms=stats.first_ms,
            last_ms=stats.last_ms,
            cpu_s=self.cpu(),
            hist={i: c for i, c in enumerate(stats.hist) if c},
            max_ms=stats.max_ms,
            by_group=dict(self.connected),
            connect_s=self.connect_s,
            errors=self.errors[:5],
        )

    async def connect(
        self,
        seq: int,
        host: str,
        port: int,
        readers: list[ReaderSpec],
        mode: str,
        origin: str | None,
        sources: list[str],
        concurrency: int,
        timeout_s: float,
    ) -> None:
        """Open every reader (``concurrency`` handshakes in flight), then reply with the tally."""
        loop = asyncio.get_running_loop()
        factory = _FACTORIES[mode]
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        deadline = started + timeout_s

        async def one(n: int, spec: ReaderSpec) -> None:
            async with gate:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.failed += 1
                    return
                ready: asyncio.Future[bool] = loop.create_future()
                reader = factory(_request(host, port, spec.path, origin), self.stats, spec.group, ready)
                local = (sources[n % len(sources)], 0) if sources else None
                try:
                    await asyncio.wait_for(
                        loop.create_connection(lambda: reader, host, port, local_addr=local), left
                    )
                    ok = await asyncio.wait_for(ready, max(deadline - time.monotonic(), 0.01))
                except (OSError, TimeoutError) as exc:
                    if len(self.errors) < 5:
                        self.errors.append(repr(exc))
                    reader.close()
                    ok = False
                if ok:
                    self.readers.append(reader)
                    self.connected[spec.group] = self.connected.get(spec.group, 0) + 1
                else:
                    reader.close()
                    self.failed += 1

        await asyncio.gather(*(one(n, spec) for n, spec in enumerate(readers)))
        self.connect_s = time.monotonic() - started
        self.conn.send((seq, "connected", self.report()))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self.on_command)
        self.conn.send((0, "ready", os.getpid()))
        await self.done.wait()
        for reader in self.readers:
            reader.close()


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a worker process (uvloop when available)."""
    _raise_nofile()
    worker = _Worker(conn)
    try:
        import uvloop

        uvloop.run(worker.run())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(worker.run())


class _Handle:
    """The orchestrator's end of one worker: send a command, await its reply without blocking.

    Requests are numbered and serialised by a lock; a reply to a request that was cancelled
    (a progress poll cut short) carries an old number and is skipped, so replies never mix up.
    """

    def __init__(
        self, process: multiprocessing.process.BaseProcess, conn: multiprocessing.connection.Connection
    ) -> None:
        self.process = process
        self.conn = conn
        self.pid = 0
        self.seq = 0
        self.lock = asyncio.Lock()

    async def request(self, command: str, args: Any = None, timeout_s: float = 30.0) -> tuple[str, Any]:
        async with self.lock:
            self.seq += 1
            seq = self.seq
            self.conn.send((seq, command, args))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while True:
                got, kind, payload = await self.receive(max(deadline - loop.time(), 0.01))
                if got == seq:
                    return kind, payload

    async def receive(self, timeout_s: float) -> tuple[int, str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, str, Any]] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(self.conn.fileno())
            os.set_blocking(self.conn.fileno(), True)  # a large reply may arrive in pieces
            try:
                message = self.conn.recv()
            except (EOFError, OSError) as exc:
                if not future.done():
                    future.set_exception(RuntimeError(f"reader worker {self.pid} died: {exc!r}"))
                return
            if not future.done():
                future.set_result(message)

        loop.add_reader(self.conn.fileno(), readable)
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.conn.fileno())


class ReaderPool:
    """A set of worker processes holding the benchmark's readers, driven from an event loop."""

    def __init__(self, processes: int) -> None:
        self.size = processes
        self.handles: list[_Handle] = []
        self._context = multiprocessing.get_context("spawn")

    async def start(self) -> None:
        for _ in range(self.size):
            parent, child = self._context.Pipe()
            process = self._context.Process(target=_worker_main, args=(child,), daemon=True)
            process.start()
            child.close()
            self.handles.append(_Handle(process, parent))
        for handle in self.handles:
            _, kind, pid = await handle.receive(60.0)
            assert kind == "ready"
            handle.pid = int(pid)

    @property
    def pids(self) -> list[int]:
        return [h.pid for h in self.handles]

    async def connect(
        self,
        host: str,
        port: int,
        readers: list[ReaderSpec],
        *,
        mode: str = "ws",
        origin: str | None = None,
        sources: list[str] | None = None,
        concurrency: int = 256,
        timeout_s: float = 120.0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[WorkerReport]:
        """Split ``readers`` over the workers and open them all; one report per worker."""
        shares: list[list[ReaderSpec]] = [readers[i :: self.size] for i in range(self.size)]
        reports = await asyncio.gather(*(
            handle.request(
                "connect",
                {"host": host, "port": port, "readers": share, "mode": mode, "origin": origin,
                 "sources": sources or [], "concurrency": concurrency, "timeout_s": timeout_s},
                timeout_s + 30.0,
            )
            for handle, share in zip(self.handles, shares, strict=True)
        ))
        results: list[WorkerReport] = []
        for kind, report in reports:
            assert kind == "connected", kind
            results.append(report)
        if on_progress is not None:
            on_progress(sum(r.connected for r in results), len(readers))
        return results

    async def all(self, command: str, timeout_s: float = 60.0) -> list[Any]:
        """Send ``command`` to every worker; return their payloads in order."""
        replies = await asyncio.gather(*(h.request(command, None, timeout_s) for h in self.handles))
        return [payload for _, payload in replies]

    async def reset(self) -> list[float]:
        """Zero every counter; returns each worker's CPU seconds so far."""
        return [float(v) for v in await self.all("reset")]

    async def progress(self) -> tuple[int, int, int]:
        """(events received, readers connected, disconnects) summed over the workers."""
        rows = await self.all("progress", 10.0)
        return sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows)

    async def report(self) -> list[WorkerReport]:
        return [r for r in await self.all("report", 60.0)]

    async def close_readers(self) -> None:
        await self.all("close", 60.0)

    async def stop(self) -> None:
        for handle in self.handles:
            with contextlib.suppress(Exception):
                handle.conn.send((-1, "exit", None))
        for handle in self.handles:
            handle.process.join(10)
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join(5)
        self.handles.clear()


def merge(reports: list[WorkerReport]) -> tuple[WorkerReport, Histogram]:
    """Sum the workers' reports into one, and their latencies into one histogram."""
    total = WorkerReport()
    hist = Histogram()
    for r in reports:
        total.connected += r.connected
        total.failed += r.failed
        total.events += r.events
        total.other_frames += r.other_frames
        total.bytes += r.bytes
        total.disconnects += r.disconnects
        total.closes += r.closes
        total.cpu_s += r.cpu_s
        total.connect_s = max(total.connect_s, r.connect_s)
        if r.first_ms and (not total.first_ms or r.first_ms < total.first_ms):
            total.first_ms = r.first_ms
        total.last_ms = max(total.last_ms, r.last_ms)
        for group, count in r.by_group.items():
            total.by_group[group] = total.by_group.get(group, 0) + count
        total.errors.extend(r.errors)
        hist.merge(r.hist, r.max_ms)
    total.max_ms = hist.max_ms
    return total, hist
