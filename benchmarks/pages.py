"""The ``pages`` scenario: the reader page ``/feeds/{feed}`` through the gateway, uncached and cached.

Uncached, every request carries a query string of its own (``?nocache=N``), so the gateway's
micro-cache, whose key covers the whole request URI, misses every time and history renders each
page; cached, every request asks for the same URL and the gateway answers from its cache.
Both run in one benchmark, one after the other, with the same tool and connections, so their
ratio is the micro-cache's gain. Afterwards one sample request per mode reads the response's
``X-Cache-Status`` so the report says which mode really ran (a gateway without the cache sends no
such header, and the "cached" figure is then the uncached rate again).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import TYPE_CHECKING, Any

import httpx

from .hist import Histogram
from .httpclient import HttpConnection, build_request
from .procstat import MachineClock, listening_pid
from .proctree import TreeClock
from .publisher import Target

if TYPE_CHECKING:
    from .bench import Bench

__all__ = ["FROM_CACHE", "pages_scenario"]

FEED = "bench-pages"
FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})
"""``$upstream_cache_status`` values of an answer the gateway served from its cache."""

_UNIQUE_LUA = """local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "{path}?nocache=" .. n .. "." .. math.random(1000000000))
end"""


async def pages_scenario(bench: Bench) -> dict[str, Any]:
    """Measure both modes; the result is the report's ``pages`` section (``{}`` without a gateway)."""
    cfg = bench.config
    if cfg.gateway_port is None:
        bench.notes.append("pages not measured: focused run without the gateway.")
        return {}
    seeded = await bench.publisher.run([Target(FEED)] * 20, 50.0)
    if seeded.acked < 20:
        bench.notes.append(f"pages: only {seeded.acked} of 20 seed items were accepted.")
    await asyncio.sleep(2.0)  # history applies the seed before the first page is read
    path = f"/feeds/{FEED}"
    history_pid = cfg.pids.get("history") or listening_pid(cfg.gateway_port + (8002 - 8080))
    gateway_pid = cfg.pids.get("gateway") or listening_pid(cfg.gateway_port)
    result: dict[str, Any] = {"path": path, "connections": cfg.pages_connections, "seconds": cfg.http_seconds}
    for mode in ("uncached", "cached"):
        result[mode] = await _one_mode(bench, mode, path, history_pid, gateway_pid)
    uncached, cached = result["uncached"]["per_second"], result["cached"]["per_second"]
    result["ratio"] = round(cached / uncached, 1) if uncached else None
    result["modes_confirmed"] = (
        result["uncached"]["cache_status"] not in FROM_CACHE and result["cached"]["cache_status"] in FROM_CACHE
    )
    bench.progress.line(
        f"[pages] uncached {uncached:,.0f}/s, cached {cached:,.0f}/s, ratio {result['ratio']}; samples "
        f"{result['uncached']['cache_status']} / {result['cached']['cache_status']}",
        final=True,
    )
    return result


async def _one_mode(bench: Bench, mode: str, path: str, history_pid: int | None, gateway_pid: int | None
                    ) -> dict[str, Any]:
    cfg = bench.config
    assert cfg.gateway_port is not None
    wrk = shutil.which("wrk") if cfg.http_tool in ("auto", "wrk") else None
    if cfg.http_tool == "wrk" and wrk is None:
        raise RuntimeError("--http-tool wrk, but wrk is not installed (apt-get install wrk)")
    unique = mode == "uncached"
    history = TreeClock(history_pid) if history_pid else None
    gateway = TreeClock(gateway_pid) if gateway_pid else None
    machine = MachineClock()
    bench.progress.line(f"[pages {mode}] {cfg.pages_connections} connections for {cfg.http_seconds:g}s "
                        f"({'wrk' if wrk else 'python client'})")
    if wrk:
        lua = _UNIQUE_LUA.replace("{path}", path) if unique else ""
        result = await bench._wrk(wrk, cfg.gateway_port, "GET", path, b"", {}, request_lua=lua,
                                  connections=cfg.pages_connections)
    else:
        result = await _python_load(cfg.host, cfg.gateway_port, path, unique, cfg.pages_connections,
                                    cfg.http_seconds)
    result.update(
        history_cpu_percent=history.sample().cpu_percent if history else None,
        gateway_cpu_percent=gateway.sample().cpu_percent if gateway else None,
        machine_busy_percent=machine.sample(),
        cache_status=await _cache_status(f"http://{cfg.host}:{cfg.gateway_port}{path}", unique),
    )
    bench.progress.line(
        f"[pages {mode}] {result['per_second']:,.0f} GET/s, p50 {result['p50_ms']} p99 {result['p99_ms']} ms, "
        f"non-2xx {result['non_2xx']}, X-Cache-Status of a sample: {result['cache_status']}",
        final=True,
    )
    return result


async def _cache_status(url: str, unique: bool) -> str:
    """``X-Cache-Status`` of one request as the mode makes them ("absent" when the gateway sends none).

    Cached mode asks twice and reads the second answer: the first may have filled the cache.
    """
    async with httpx.AsyncClient(timeout=10.0) as client:
        if unique:
            answer = await client.get(url, params={"nocache": f"sample.{time.time_ns()}"})
        else:
            await client.get(url)
            answer = await client.get(url)
    return str(answer.headers.get("x-cache-status", "absent"))


async def _python_load(host: str, port: int, path: str, unique: bool, connections: int, seconds: float
                       ) -> dict[str, Any]:
    """The fallback without wrk: closed-loop keep-alive clients, a new query string per request if ``unique``."""
    hist = Histogram()
    statuses: dict[int, int] = {}
    counts = {"requests": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    fixed = build_request("GET", host, port, path)

    async def client(k: int) -> None:
        conn = HttpConnection(host, port)
        n = 0
        try:
            while time.monotonic() < deadline:
                n += 1
                request = build_request("GET", host, port, f"{path}?nocache={k}.{n}") if unique else fixed
                started = time.perf_counter()
                try:
                    status, _ = await conn.send(request, timeout_s=max(deadline - time.monotonic(), 0.1) + 5)
                except (OSError, TimeoutError, ConnectionError):
                    counts["errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
                hist.add((time.perf_counter() - started) * 1000.0)
                counts["requests"] += 1
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(connections)))
    elapsed = time.monotonic() - started
    summary = hist.summary()
    return {
        "tool": "python",
        "requests": counts["requests"],
        "per_second": round(counts["requests"] / elapsed, 1) if elapsed else 0.0,
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "non_2xx": sum(c for s, c in statuses.items() if not 200 <= s < 300),
        "errors": counts["errors"],
    }
