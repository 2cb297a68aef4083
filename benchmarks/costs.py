"""Why the benchmark keeps its own HTTP client and latency histogram: what the libraries would cost it.

``python -m benchmarks.costs`` prints one JSON line per measurement (``pip install aiohttp
hdrhistogram`` first to include those two; httpx is always there):

* ``http``: the client's own CPU per request, for the lean ``httpclient``, httpx and aiohttp,
  against a static local server (one fixed 201 answer, in its own process, so the client's
  ``getrusage`` counts the client alone): closed loop over 4 and 32 connections, then on the
  publisher's timetable at its top rate (400 posts/s by default).
* ``hist``: CPU per recorded latency in the readers' hot path, ``loadgen``'s flat 0.1 ms bucket
  list against HdrHistogram (1 us to 1 h, 3 significant digits), and the p50/p95/p99 each gives
  for the same million samples next to the exact ones.

The figures and what was decided from them are in the docstrings of ``httpclient`` and ``hist``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import random
import resource
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

import httpx

from .hist import BUCKETS, Histogram
from .httpclient import HttpConnection, build_request

__all__ = ["main"]

HOST = "127.0.0.1"
PATH = "/v1/feeds/bench-http/items"
BODY = b'{"headline":"Benchmark item","body":"A short body of a breaking news item, about as long as a real one."}'
HEADERS = {"Authorization": "Bearer bench-token", "Content-Type": "application/json"}
_ITEM = (b'{"item":{"id":"01m8cng7dqz8mzsg2ge1ydk21g","feed":"bench-http","version":1,"status":"published",'
         b'"headline":"Benchmark item","body":"A short body of a breaking news item, about as long as a real one.",'
         b'"tags":[],"urgency":"normal","url":null,"byline":null,"pinned":false,"key_event":false,'
         b'"published_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"},"cursor":"f733f5e9.1.41"}')
_ANSWER = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_ITEM), _ITEM)

Send = Callable[[int], Awaitable[None]]


class _Static(asyncio.Protocol):
    """Answers every complete request on the connection with the same 201."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(_ANSWER)


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """The static server's process: sends its port, serves until the parent closes the pipe."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Static, HOST, 0)
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv_bytes)

    with contextlib.suppress(EOFError):
        asyncio.run(run())


def _rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(send: Send, connections: int, seconds: float, rate: float | None) -> dict[str, float]:
    """Closed loop (``rate`` None) or ``rate`` requests/s on a timetable over ``connections`` slots."""
    for slot in range(connections):
        await send(slot)
    done = 0
    cpu_before, started = _rusage_cpu(), time.monotonic()
    deadline = started + seconds
    if rate is None:

        async def loop(slot: int) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await send(slot)
                done += 1

        await asyncio.gather(*(loop(slot) for slot in range(connections)))
    else:
        free: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(connections):
            free.put_nowait(slot)

        async def post() -> None:
            nonlocal done
            slot = await free.get()
            try:
                await send(slot)
                done += 1
            finally:
                free.put_nowait(slot)

        tasks: list[asyncio.Task[None]] = []
        for k in range(int(rate * seconds)):
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post()))
        await asyncio.gather(*tasks)
    wall, cpu = time.monotonic() - started, _rusage_cpu() - cpu_before
    return {"requests": done, "per_s": round(done / wall, 1), "client_cpu_percent": round(cpu / wall * 100, 1),
            "client_cpu_us_per_request": round(cpu / max(done, 1) * 1e6, 1)}


async def _client(name: str, port: int, connections: int, seconds: float, rate: float | None) -> dict[str, float]:
    """Measure one client; each runs in a fresh process (see :func:`_measure`)."""
    if name == "lean":
        pool = [HttpConnection(HOST, port) for _ in range(connections)]
        request = build_request("POST", HOST, port, PATH, body=BODY, headers=HEADERS)

        async def lean(slot: int) -> None:
            status, _ = await pool[slot].send(request)
            assert status == 201, status

        return await _drive(lean, connections, seconds, rate)
    if name == "httpx":
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=15,
                                     trust_env=False) as client:

            async def with_httpx(slot: int) -> None:
                answer = await client.post(PATH, content=BODY, headers=HEADERS)
                assert answer.status_code == 201, answer.status_code

            return await _drive(with_httpx, connections, seconds, rate)
    aiohttp: Any = importlib.import_module("aiohttp")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def with_aiohttp(slot: int) -> None:
            async with session.post(f"http://{HOST}:{port}{PATH}", data=BODY, headers=HEADERS) as answer:
                await answer.read()
                assert answer.status == 201, answer.status

        return await _drive(with_aiohttp, connections, seconds, rate)


def _measure(name: str, port: int, connections: int, seconds: float, rate: float | None) -> dict[str, float]:
    return asyncio.run(_client(name, port, connections, seconds, rate))


def _http(seconds: float, rate: float) -> None:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the static server did not start")
        port = int(parent.recv())
        names = ["lean", "httpx"] + (["aiohttp"] if importlib.util.find_spec("aiohttp") else [])
        for name in names:
            version = "" if name == "lean" else importlib.import_module(name).__version__
            for connections, pace in ((4, None), (32, None), (32, rate)):
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    figures = pool.submit(_measure, name, port, connections, seconds, pace).result(seconds * 20 + 60)
                print(json.dumps({"measure": "http", "client": f"{name} {version}".strip(),
                                  "connections": connections, "rate": pace, **figures}), flush=True)
    finally:
        parent.close()
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join(5)


def _hist(samples_n: int) -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(3.0, 0.8) for _ in range(samples_n)]  # ms: median 20, a tail to ~1 s
    samples[::997] = [rng.uniform(500.0, 15_000.0) for _ in samples[::997]]
    flat, top = [0] * BUCKETS, 0.0
    started = time.process_time()
    for latency in samples:  # loadgen._Reader.on_text's lines, as they are
        if latency > top:
            top = latency
        index = int(latency * 10.0) if latency > 0.0 else 0
        flat[index if index < BUCKETS else BUCKETS - 1] += 1
    flat_ns = (time.process_time() - started) / samples_n * 1e9
    ours = Histogram()
    ours.merge({i: c for i, c in enumerate(flat) if c}, top)
    exact = sorted(samples)
    row: dict[str, Any] = {
        "measure": "hist", "samples": samples_n, "flat_list_ns_per_sample": round(flat_ns),
        "flat_list": {k: ours.summary()[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "exact": {f"p{p}_ms": round(exact[int(samples_n * p / 100) - 1], 2) for p in (50, 95, 99)},
    }
    if importlib.util.find_spec("hdrh"):
        hdr = importlib.import_module("hdrh.histogram").HdrHistogram(1, 3_600_000_000, 3)
        record = hdr.record_value
        started = time.process_time()
        for latency in samples:
            record(int(latency * 1000.0) if latency > 0.0 else 0)
        row["hdrhistogram_ns_per_sample"] = round((time.process_time() - started) / samples_n * 1e9)
        at = hdr.get_percentile_to_value_dict([50.0, 95.0, 99.0])
        row["hdrhistogram"] = {f"p{p:g}_ms": at[p] / 1000.0 for p in (50.0, 95.0, 99.0)}
        row["hdrhistogram"]["max_ms"] = hdr.get_max_value() / 1000.0
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.costs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["http", "hist"], help="one of the two measurements (default: both)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each HTTP measurement (5)")
    p.add_argument("--rate", type=float, default=400.0, help="the timetabled rate, posts/s (400: --max-rate)")
    p.add_argument("--samples", type=int, default=1_000_000, help="latencies recorded by each histogram (1000000)")
    args = p.parse_args(argv)
    if args.only in (None, "hist"):
        _hist(args.samples)
    if args.only in (None, "http"):
        _http(args.seconds, args.rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
