"""The ``herd`` scenario: thousands of readers arrive within seconds while news is being posted.

Each reader does what ``web/reader.js`` and ``web/live.js`` do: it GETs the reader page
``/feeds/{feed}`` through the gateway (possibly a micro-cached copy up to a second old), reads the
snapshot cursor the page embeds (``data-cursor``), then opens the WebSocket stream through the
gateway from that cursor (``?since=``). Meanwhile the orchestrator posts items through ingest at a
steady rate and keeps the cursor ingest answered for each. Afterwards every reader must hold
exactly the items posted after its page's cursor: none missing, none twice, in order.

Times, per reader, from its arrival (the moment it starts the page GET): the page GET, and the time
to live: until the stream's ``hello`` arrives (the fanout has subscribed the reader; the replay
of what the page missed follows the hello at once, then live events).

The readers live in a few worker processes (``spawn``) so that one Python process need not open
thousands of connections within the arrival window; arrivals are spread evenly over the window
and interleaved across the processes. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from .httpclient import HttpConnection, build_request
from .procstat import MachineClock
from .proctree import TreeClock

if TYPE_CHECKING:
    from .bench import Bench

__all__ = ["HerdReader", "check_reader", "herd_scenario", "listen_overflows", "percentile"]

_KEY = base64.b64encode(b"livefeed-herd!!!").decode()
_CURSOR = re.compile(rb'data-cursor="([^"]*)"')
_CACHE = re.compile(rb"\r\nx-cache-status: *([A-Za-z_]+)", re.IGNORECASE)


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of ``values``, rounded to 0.1 ms; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(math.ceil(p / 100.0 * len(ordered)) - 1, 0))], 1)


@dataclass
class HerdReader:
    """What one reader saw: its page's cursor offset, its timings and every event offset, in arrival order."""

    index: int
    late_ms: float = 0.0
    page_status: int = 0
    cache_status: str = ""
    cursor: str = ""
    cursor_offset: int | None = None
    page_ms: float | None = None
    live_ms: float | None = None
    offsets: list[int] = field(default_factory=list)
    resets: int = 0
    error: str = ""


def check_reader(reader: HerdReader, posted: list[int]) -> str:
    """``""`` when the reader got exactly the posted offsets after its cursor, in order; else what went wrong."""
    if reader.error:
        return reader.error
    if reader.cursor_offset is None:
        return "no cursor on the page"
    if reader.resets:
        return "stream reset"
    expected = [o for o in posted if o > reader.cursor_offset]
    got = reader.offsets
    if got == expected:
        return ""
    if len(set(got)) < len(got):
        return "duplicate"
    if got != sorted(got):
        return "out of order"
    if set(expected) - set(got):
        return "gap"
    return "unexpected event"


# -- the worker process -------------------------------------------------------------------------
class _Worker:
    """One load-generator process: its share of the readers, scheduled by wall-clock arrival time."""

    def __init__(self, conn: multiprocessing.connection.Connection, host: str, port: int, feed: str,
                 sources: list[str]) -> None:
        self.conn = conn
        self.host = host
        self.port = port
        self.feed = feed
        self.sources = sources
        self.readers: dict[int, HerdReader] = {}
        self.last_offset: int | None = None
        self.done: dict[int, asyncio.Event] = {}
        self.writers: list[asyncio.StreamWriter] = []

    async def _receive(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    async def run(self) -> None:
        self.conn.send(("ready", os.getpid()))
        _, go = await self._receive()
        t0: float = go["t0"]
        tasks = [asyncio.create_task(self.reader(i, t0 + offset, go["timeout_s"])) for i, offset in go["readers"]]
        _, finish = await self._receive()
        self.last_offset = finish["last_offset"]
        for index, reader in self.readers.items():
            if reader.offsets and self.last_offset is not None and reader.offsets[-1] >= self.last_offset:
                self.done[index].set()
        waits = [asyncio.create_task(e.wait()) for e in self.done.values()]
        if waits:
            await asyncio.wait(waits, timeout=finish["wait_s"])
        for task in [*tasks, *waits]:
            task.cancel()
        await asyncio.gather(*tasks, *waits, return_exceptions=True)
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.conn.send(("result", {"readers": [self.readers[i].__dict__ for i, _ in go["readers"]],
                                   "cpu_s": usage.ru_utime + usage.ru_stime}))

    async def _open(self, n: int, left: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = (self.sources[n % len(self.sources)], 0) if self.sources else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, local_addr=local, limit=2**20), left)
        self.writers.append(writer)
        return reader, writer

    async def reader(self, index: int, at: float, timeout_s: float) -> None:
        """Arrive at wall time ``at``: GET the page, then follow the stream from its cursor until cancelled."""
        me = self.readers[index] = HerdReader(index)
        self.done[index] = asyncio.Event()
        await asyncio.sleep(max(at - time.time(), 0.0))
        me.late_ms = round((time.time() - at) * 1000.0, 1)
        arrived = time.perf_counter()
        deadline = arrived + timeout_s
        try:
            await self._page(me, index, deadline)
            me.page_ms = round((time.perf_counter() - arrived) * 1000.0, 2)
            if me.cursor_offset is None or me.page_status != 200:
                return
            await self._stream(me, index, arrived, deadline)
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            me.error = me.error or f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.done[index].set()  # a reader that stopped early has nothing more to wait for

    async def _page(self, me: HerdReader, index: int, deadline: float) -> None:
        reader, writer = await self._open(index, deadline - time.perf_counter())
        writer.write(build_request("GET", self.host, self.port, f"/feeds/{self.feed}",
                                   headers={"Connection": "close"}))
        raw = await asyncio.wait_for(reader.read(-1), deadline - time.perf_counter())
        writer.transport.abort()
        me.page_status = int(raw[9:12]) if raw[:5] == b"HTTP/" else 0
        head = raw[: raw.find(b"\r\n\r\n")]
        if status := _CACHE.search(head):
            me.cache_status = status[1].decode()
        if me.page_status != 200:
            me.error = f"page answered {me.page_status}"
            return
        cursor = _CURSOR.search(raw)
        text = cursor[1].decode() if cursor else ""
        me.cursor = text
        me.cursor_offset = int(text.rsplit(".", 1)[1]) if text else None

    async def _stream(self, me: HerdReader, index: int, arrived: float, deadline: float) -> None:
        reader, writer = await self._open(index, deadline - time.perf_counter())
        path = f"/v1/feeds/{self.feed}/stream?since={me.cursor}"
        writer.write((
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline - time.perf_counter())
        if not head.startswith(b"HTTP/1.1 101"):
            me.error = f"stream refused: {head[:12].decode(errors='replace')}"
            return
        done = self.done[index]
        while True:
            first = await reader.readexactly(2)
            length = first[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(length)
            opcode = first[0] & 0x0F
            if opcode == 9:
                writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload)
                continue
            if opcode == 8:
                me.error = me.error or "stream closed by the server"
                return
            if opcode != 1:
                continue
            message = orjson.loads(payload)
            kind = message.get("type", "")
            if kind == "hello":
                me.live_ms = round((time.perf_counter() - arrived) * 1000.0, 2)
            elif kind == "reset":
                me.resets += 1
            elif kind.startswith("item."):
                me.offsets.append(int(message["cursor"].rsplit(".", 1)[1]))
                if self.last_offset is not None and me.offsets[-1] >= self.last_offset:
                    done.set()


def _worker_main(conn: multiprocessing.connection.Connection, host: str, port: int, feed: str,
                 sources: list[str]) -> None:
    """Entry point of a herd process (uvloop when available)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = _Worker(conn, host, port, feed, sources)
    try:
        import uvloop

        uvloop.run(worker.run())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(worker.run())


# -- the orchestrator -----------------------------------------------------------------------------
def listen_overflows() -> int:
    """The machine's count of connections dropped because a listen queue was full (0 where unknown).

    System-wide (other processes' listeners count too), so only a difference over a window says much.
    """
    try:
        text = Path("/proc/net/netstat").read_text()
        lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))
    except (OSError, IndexError, ValueError):
        return 0


async def _recv(conn: multiprocessing.connection.Connection, timeout_s: float) -> Any:
    """The next message from a worker, or a RuntimeError after ``timeout_s``."""
    ready = await asyncio.to_thread(conn.poll, timeout_s)
    if not ready:
        raise RuntimeError(f"a herd process did not answer within {timeout_s:g}s")
    return conn.recv()


async def _post(host: str, port: int, token: str, feed: str, rate: float, seconds: float) -> list[int]:
    """Post ``rate`` items/s for ``seconds`` on a fixed timetable; the offsets of those ingest accepted."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(HttpConnection(host, port))
    offsets: list[int] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def one(k: int) -> None:
        conn = await pool.get()
        body = orjson.dumps({"headline": f"Herd item {k}", "body": "Breaking: the crowd arrives."})
        try:
            status, answer = await conn.send(
                build_request("POST", host, port, f"/v1/feeds/{feed}/items", body=body, headers=headers), 15.0)
        except (OSError, TimeoutError, ConnectionError):
            return
        finally:
            pool.put_nowait(conn)
        if status == 201:
            offsets.append(int(orjson.loads(answer)["cursor"].rsplit(".", 1)[1]))

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[None]] = []
    for k in range(max(int(rate * seconds), 1)):
        await asyncio.sleep(max(start + k / rate - loop.time(), 0.0))
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return sorted(offsets)


async def _applied(url: str, seed: list[int], timeout_s: float) -> bool:
    """Wait until history lists the last seed item (it may still be applying an earlier scenario's posts)."""
    if not seed:
        return False
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, AttributeError):
                answer = (await client.get(url, params={"limit": 1})).json()
                if int(answer["cursor"].rsplit(".", 1)[1]) >= seed[-1]:
                    return True
            await asyncio.sleep(0.5)
    return False


async def herd_scenario(bench: Bench) -> dict[str, Any]:
    """Run the herd; the result is the report's ``herd`` section (``{}`` without a gateway)."""
    cfg = bench.config
    if cfg.gateway_port is None:
        bench.notes.append("herd not measured: focused run without the gateway.")
        return {}
    n, window = cfg.herd_readers, cfg.herd_arrival_s
    feed = f"bench-herd-{int(time.time())}"
    seed = await _post(cfg.host, cfg.ingest_port, cfg.token, feed, 20.0, 0.5)  # the page has a cursor
    if not await _applied(f"http://{cfg.host}:{cfg.gateway_port}/v1/feeds/{feed}/items", seed, 60.0):
        bench.notes.append("herd: history had not applied the seed items within 60 s; pages may lack a cursor.")
    processes = max(1, math.ceil(n / cfg.herd_per_process))
    sources = [f"127.0.0.{2 + k}" for k in range(cfg.sources)] if cfg.sources else []
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[Any, multiprocessing.connection.Connection]] = []
    bench.progress.line(f"[herd] {n:,} readers arriving within {window:g}s from {processes} processes, "
                        f"{cfg.herd_rate:g} items/s posted", final=True)
    try:
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, cfg.host, cfg.gateway_port, feed, sources),
                                      daemon=True)
            process.start()
            child.close()
            workers.append((process, parent))
        for _, conn in workers:
            await _recv(conn, 60.0)
        t0 = time.time() + 1.0
        for k, (_, conn) in enumerate(workers):
            share = [(i, i * window / n) for i in range(k, n, processes)]
            conn.send(("go", {"t0": t0, "readers": share, "timeout_s": cfg.herd_timeout_s}))
        machine, overflows = MachineClock(), listen_overflows()
        fanout_processes = len(TreeClock(bench.fanout.pid).processes)
        await asyncio.sleep(max(t0 - 0.5 - time.time(), 0.0))
        posted = await _post(cfg.host, cfg.ingest_port, cfg.token, feed, cfg.herd_rate,
                             window + 0.5 + cfg.herd_tail_s)
        busy = machine.sample()
        for _, conn in workers:
            conn.send(("finish", {"last_offset": posted[-1] if posted else None, "wait_s": cfg.herd_timeout_s}))
        readers: list[HerdReader] = []
        generator_cpu_s = 0.0
        for _, conn in workers:
            _, answer = await _recv(conn, cfg.herd_timeout_s + 60.0)
            readers += [HerdReader(**row) for row in answer["readers"]]
            generator_cpu_s += answer["cpu_s"]
        window = time.time() - t0
        overflows = listen_overflows() - overflows
    finally:
        for process, conn in workers:
            conn.close()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
    result = _summary(bench, readers, posted, seed, busy, processes)
    result.update(fanout_processes=fanout_processes, listen_overflows=overflows,
                  generator_cpu_percent=round(generator_cpu_s / window * 100.0, 1) if window > 0 else None)
    return result


def _summary(bench: Bench, readers: list[HerdReader], posted: list[int], seed: list[int], busy: float,
             processes: int) -> dict[str, Any]:
    cfg = bench.config
    failures: dict[str, int] = {}
    for reader in readers:
        if problem := check_reader(reader, posted):
            key = problem.split(":")[0]
            failures[key] = failures.get(key, 0) + 1
    pages = [r.page_ms for r in readers if r.page_ms is not None and r.page_status == 200]
    live = [r.live_ms for r in readers if r.live_ms is not None]
    lates = [r.late_ms for r in readers]
    caches: dict[str, int] = {}
    for reader in readers:
        caches[reader.cache_status or "absent"] = caches.get(reader.cache_status or "absent", 0) + 1
    expected = sum(sum(1 for o in posted if o > r.cursor_offset) for r in readers if r.cursor_offset is not None)
    result = {
        "readers": len(readers),
        "arrival_s": cfg.herd_arrival_s,
        "processes": processes,
        "rate_per_s": cfg.herd_rate,
        "items_posted": len(posted),
        "seed_items": len(seed),
        "expected_deliveries": expected,
        "delivered": sum(len(r.offsets) for r in readers),
        "ok_readers": len(readers) - sum(failures.values()),
        "failed_readers": sum(failures.values()),
        "failures": failures,
        "page_p50_ms": percentile(pages, 50),
        "page_p99_ms": percentile(pages, 99),
        "live_p50_ms": percentile(live, 50),
        "live_p99_ms": percentile(live, 99),
        "live_max_ms": percentile(live, 100),
        "arrival_late_p99_ms": percentile(lates, 99),
        "page_cache_status": caches,
        "machine_busy_percent": busy,
        "errors": sorted({r.error for r in readers if r.error})[:5],
    }
    bench.progress.line(
        f"[herd] {result['ok_readers']:,}/{len(readers):,} readers got every item ({failures or 'no failures'}); "
        f"page p50 {result['page_p50_ms']} p99 {result['page_p99_ms']} ms; arrival to live p99 "
        f"{result['live_p99_ms']} ms; pages {caches}",
        final=True,
    )
    return result
