"""The benchmark's scenarios: connect readers, publish, measure; every loop bounded in count and time.

* ``broadcast``: for each system and each subscriber count, a ladder of publish rates (x1.5 a step
  while the step keeps every delivery with p99 within the largest bound, then bisection);
  the report reads each system's best deliveries/s within each p99 bound (100, 250, 500 and
  1000 ms by default) from those steps: that is the "equal p99" comparison. Readers are
  connected once per count and reused by every rate step; connecting records the connect rate
  and the RSS per connected (idle) reader. The ceiling program gets one flat-out blast per count.
* ``latency``: livefeed at 10,000 readers and 10 items/s, then a burst of 50 items in one second,
  then higher rates (20, 40, 80 items/s) while it keeps up: the sustained deliveries/s.
* ``http``: ingest POST/s with Kafka acks=all, and history GET/s through the gateway (wrk when
  installed, else a Python client).
* ``pages``, ``herd``, ``workers``: the reader page cached vs uncached, a herd of arriving readers,
  the fanout as 1 and 2 worker processes; each in its own module (pages.py, herd.py, fanout_workers.py).

Every figure comes with the CPU of the system under test, of the load generator and of the
whole machine over the same window, because all of them share two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fanout_workers import Restarter, workers_scenario
from .herd import herd_scenario
from .hist import Histogram
from .httpclient import build_request, http_load
from .loadgen import ReaderPool, ReaderSpec, WorkerReport, merge
from .pages import pages_scenario
from .procstat import CpuClock, MachineClock, listening_pid, open_files, rss_bytes
from .profiling import Profile
from .publisher import Publisher, PublishResult, Target
from .systems import PEER_OFFSETS, System, start_peer

__all__ = ["Bench", "BenchConfig"]


@dataclass
class BenchConfig:
    """Everything one run needs; ``benchmarks.run`` fills it from the command line."""

    host: str
    fanout_port: int
    ingest_port: int
    gateway_port: int | None
    kafka: str
    topic: str
    token: str
    log_dir: Path
    systems: list[str] = field(default_factory=lambda: ["livefeed", "naive", "socketio", "ceiling"])
    scenarios: list[str] = field(default_factory=lambda: ["broadcast", "latency", "http"])
    readers: list[int] = field(default_factory=lambda: [1_000, 5_000, 10_000, 19_000])
    feeds: int = 1
    tag_filters: int = 0
    step_s: float = 4.0
    max_steps: int = 10
    ladder_factor: float = 1.5
    start_dps: float = 10_000.0
    max_rate: float = 400.0
    max_dps: float = 600_000.0
    p99_bounds_ms: list[float] = field(default_factory=lambda: [100.0, 250.0, 500.0, 1000.0])
    latency_readers: int = 10_000
    latency_rate: float = 10.0
    latency_s: float = 10.0
    burst_items: int = 50
    burst_window_s: float = 1.0
    throughput_rates: list[float] = field(default_factory=lambda: [20.0, 40.0, 80.0])
    per_process: int = 5_000
    sources: int = 8
    connect_concurrency: int = 256
    http_seconds: float = 10.0
    http_connections: int = 32
    http_tool: str = "auto"
    pages_connections: int = 64
    herd_readers: int = 5_000
    herd_arrival_s: float = 2.0
    herd_rate: float = 8.0
    herd_tail_s: float = 2.0
    herd_per_process: int = 1_250
    herd_timeout_s: float = 30.0
    workers_counts: list[int] = field(default_factory=lambda: [1, 2])
    workers_readers: int = 10_000
    workers_rate: float = 10.0
    workers_seconds: float = 10.0
    pids: dict[str, int] = field(default_factory=dict)
    quiet: bool = False
    profile_dir: Path | None = None


def _readers_label(n: int) -> str:
    return f"{n:,}"


class Progress:
    """One status line a second while a step runs (carriage-returned on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def line(self, text: str, final: bool = False) -> None:
        if self.quiet:
            return
        if self.tty and not final:
            sys.stderr.write("\r\x1b[2K" + text)
        else:
            sys.stderr.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        sys.stderr.flush()


class Bench:
    """Runs the scenarios of one benchmark and collects every measured row."""

    def __init__(self, config: BenchConfig, fanout: System) -> None:
        self.config = config
        self.fanout = fanout
        largest = max([*config.readers, config.latency_readers if "latency" in config.scenarios else 0,
                       config.workers_readers if "workers" in config.scenarios else 0])
        self.pool = ReaderPool(max(1, math.ceil(largest / config.per_process)))
        self.progress = Progress(config.quiet)
        self.publisher = Publisher(config.host, config.ingest_port, config.token)
        self.on: System | None = None
        self.connected = 0
        self.groups: dict[str, int] = {}
        self.baseline_rss = 0
        self.connects: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.http: dict[str, Any] = {}
        self.notes: list[str] = []
        self.sections: dict[str, Any] = {}
        """Results of the pages, herd and workers scenarios, one top-level key each."""
        self.restart_fanout: Restarter | None = None
        """Set by the runner when it may restart the fanout (the workers scenario needs to)."""

    # -- readers --------------------------------------------------------------------------------
    def _spec(self, system: System, i: int) -> ReaderSpec:
        feeds, variants = self.config.feeds, self.config.tag_filters + 1
        feed = f"bench-{i % feeds}"
        variant = (i // feeds) % variants if system.filters else 0
        tag = None if variant == 0 else f"t{variant - 1}"
        return ReaderSpec(system.path(feed, tag), f"{feed}|{tag or ''}")

    async def close_readers(self) -> None:
        if self.on is not None:
            await self.pool.close_readers()
        self.on, self.connected, self.groups = None, 0, {}

    async def ensure_readers(self, system: System, n: int) -> dict[str, Any]:
        """Have exactly ``n`` readers on ``system``, adding to those already there if it can."""
        if self.on is not system or self.connected > n:
            await self.close_readers()
            await asyncio.sleep(0.5)
            self.baseline_rss = rss_bytes(system.pid)
        self.on = system
        added = n - self.connected
        specs = [self._spec(system, i) for i in range(self.connected, n)]
        sources = [f"127.0.0.{2 + k}" for k in range(self.config.sources)] if self.config.sources else []
        started = time.monotonic()
        watcher = asyncio.create_task(self._watch_connects(system, n, started))
        try:
            reports = await self.pool.connect(
                system.host, system.port, specs, mode=system.mode, sources=sources,
                concurrency=self.config.connect_concurrency, timeout_s=max(60.0, n / 200.0),
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        seconds = time.monotonic() - started
        total, _ = merge(reports)
        new = total.connected - self.connected
        self.connected = total.connected
        self.groups = total.by_group
        await asyncio.sleep(1.0)  # let the server settle before reading its memory
        rss = rss_bytes(system.pid)
        per_reader = round((rss - self.baseline_rss) / self.connected) if self.connected else None
        row: dict[str, Any] = {
            "system": system.name,
            "readers_wanted": n,
            "readers": self.connected,
            "added": new,
            "failed": total.failed,
            "seconds": round(seconds, 2),
            "connect_per_s": round(new / seconds, 1) if seconds else None,
            "rss_bytes": rss,
            "baseline_rss_bytes": self.baseline_rss,
            "rss_per_reader_bytes": per_reader,
            "server_open_files": open_files(system.pid),
            "errors": total.errors[:3],
        }
        self.connects.append(row)
        self.progress.line(
            f"[{system.name}] {self.connected:,}/{n:,} readers connected in {seconds:.1f}s "
            f"({row['connect_per_s']}/s), failed {total.failed}, RSS {rss / 2**20:.0f} MiB "
            f"({(per_reader or 0) / 1024:.1f} KiB/reader)",
            final=True,
        )
        if added and new < added:
            self.notes.append(f"{system.name}: only {new} of {added} readers connected ({total.errors[:1]})")
        return row

    async def _watch_connects(self, system: System, n: int, started: float) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.progress.line(
                f"[{system.name}] connecting {n:,} readers: {time.monotonic() - started:.0f}s, "
                f"server holds {open_files(system.pid):,} descriptors"
            )

    # -- one publish step ---------------------------------------------------------------------
    def _targets(self, count: int) -> list[Target]:
        feeds, tags = self.config.feeds, self.config.tag_filters
        return [
            Target(f"bench-{k % feeds}", f"t{(k // feeds) % tags}" if tags else None) for k in range(count)
        ]

    def _expected(self, system: System, published: PublishResult) -> int:
        total = 0
        for target in published.acked_targets:
            if system.filters:
                total += self.groups.get(f"{target.feed}|", 0)
                if target.tag:
                    total += self.groups.get(f"{target.feed}|{target.tag}", 0)
            else:
                total += sum(c for g, c in self.groups.items() if g.startswith(f"{target.feed}|"))
        return total

    def _per_post(self, system: System) -> float:
        """Deliveries one post makes, on average over the targets' cycle."""
        sample = self._targets(max(self.config.feeds * max(self.config.tag_filters, 1), 1))
        fake = PublishResult(acked_targets=sample)
        return max(self._expected(system, fake) / len(sample), 1.0)

    async def step(self, system: System, kind: str, rate: float, count: int) -> dict[str, Any]:
        """Publish ``count`` items at ``rate``/s to the connected readers; measure their delivery."""
        label = f"[{system.name} {self.connected:,} readers {kind} {rate:g}/s]"
        gen_before = sum(await self.pool.reset())
        fan_clock, machine = CpuClock(system.pid), MachineClock()
        wall_start = time.monotonic()
        sent_at = time.time() * 1000.0
        published_box: list[PublishResult] = []
        profile = self._profile(system.pid, count / rate, f"{system.name}-{kind}-{self.connected}-{rate:g}")
        await profile.start()
        ticker = asyncio.create_task(self._tick(label, wall_start, count, published_box))
        try:
            published = await self.publisher.run(self._targets(count), rate)
            published_box.append(published)
            fan = fan_clock.sample()
            busy = machine.sample()
            window = time.monotonic() - wall_start
            expected = self._expected(system, published)
            _, drain_s = await self._drain(expected)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        reports = await self.pool.report()
        total, hist = merge(reports)
        top = await profile.finish()
        gen_cpu = total.cpu_s - gen_before
        span = max(window, (total.last_ms - sent_at) / 1000.0) if total.last_ms else window
        row = self._row(system, kind, rate, published, total, hist, expected, span, fan.cpu_percent,
                        fan.rss_bytes, gen_cpu / (window + drain_s) * 100.0, busy)
        if top:
            row["profile"] = top
        self.steps.append(row)
        self.progress.line(
            f"{label} {row['deliveries']:,}/{expected:,} delivered, {row['deliveries_per_s']:,.0f}/s, "
            f"p50 {row['p50_ms']} p99 {row['p99_ms']} max {row['max_ms']} ms, "
            f"{system.name} CPU {fan.cpu_percent:.0f}%, generator CPU {row['generator_cpu_percent']:.0f}%, "
            f"drops {row['disconnects']} -> {'ok' if row['ok'] else 'over'}",
            final=True,
        )
        return row

    def _profile(self, pid: int | None, seconds: float, name: str) -> Profile:
        """A py-spy recording for this window when ``--profile`` asked for one (else a no-op)."""
        directory = self.config.profile_dir
        return Profile(pid if directory else None, seconds, (directory or Path(".")) / f"{name}.txt")

    def _row(
        self, system: System, kind: str, rate: float, published: PublishResult, total: WorkerReport,
        hist: Histogram, expected: int, span: float, cpu: float, rss: int, gen_cpu: float, busy: float,
    ) -> dict[str, Any]:
        summary = hist.summary()
        lost = max(expected - total.events, 0)
        offered = rate * expected / published.acked if published.acked else 0.0
        p99 = summary["p99_ms"]
        ok = (
            lost == 0 and total.disconnects == 0 and published.failed == 0 and p99 is not None
            and p99 <= max(self.config.p99_bounds_ms)
        )
        return {
            "system": system.name,
            "kind": kind,
            "readers": self.connected,
            "rate_per_s": rate,
            "posted": published.sent,
            "acked": published.acked,
            "post_failures": published.failed,
            "post_p99_ms": published.hist.summary()["p99_ms"],
            "expected": expected,
            "deliveries": total.events,
            "lost": lost,
            "deliveries_per_s": round(total.events / span, 1) if span else 0.0,
            "offered_per_s": round(offered, 1),
            "kept_up": bool(span) and lost == 0 and total.disconnects == 0 and total.events / span >= 0.9 * offered,
            "seconds": round(span, 2),
            "p50_ms": summary["p50_ms"],
            "p95_ms": summary["p95_ms"],
            "p99_ms": p99,
            "max_ms": summary["max_ms"],
            "disconnects": total.disconnects,
            "server_cpu_percent": cpu,
            "server_rss_bytes": rss,
            "generator_cpu_percent": round(gen_cpu, 1),
            "generator_processes": len(self.pool.handles),
            "machine_busy_percent": busy,
            "ok": ok,
        }

    async def _drain(self, expected: int) -> tuple[int, float]:
        """Wait for the deliveries still in flight: until all arrived, or 3 s without progress (20 s at most).

        Generous on purpose: on a machine shared with other work a process can be starved for a
        second or more, and a delivery that arrives after the drain counts as lost.
        """
        started = time.monotonic()
        last, still_since = -1, started
        received = 0
        while time.monotonic() - started < 20.0:
            received, _, _ = await self.pool.progress()
            now = time.monotonic()
            if received >= expected:
                break
            if received != last:
                last, still_since = received, now
            elif now - still_since > 3.0:
                break
            await asyncio.sleep(0.1)
        return received, time.monotonic() - started

    async def _tick(self, label: str, started: float, count: int, box: list[PublishResult]) -> None:
        while True:
            await asyncio.sleep(1.0)
            events, readers, drops = await self.pool.progress()
            elapsed = time.monotonic() - started
            self.progress.line(
                f"{label} {elapsed:.0f}s: {events:,} delivered ({events / elapsed:,.0f}/s) to {readers:,} "
                f"readers, {drops} dropped, {count} items {'posted' if box else 'posting'}"
            )

    # -- scenarios ------------------------------------------------------------------------------
    async def ladder(self, system: System, n: int) -> None:
        """Raise the publish rate until a step misses the p99 bound or loses a delivery."""
        cfg = self.config
        per_post = self._per_post(system)
        rate = min(max(cfg.start_dps / per_post, 0.5), cfg.max_rate)
        good: float | None = None
        bad: float | None = None
        for _ in range(cfg.max_steps):
            count = max(int(rate * cfg.step_s), 5)
            row = await self.step(system, "broadcast", round(rate, 2), count)
            if row["ok"]:
                good = rate
            else:
                bad = rate
            if bad is None:
                if rate >= cfg.max_rate or rate * cfg.ladder_factor * per_post > cfg.max_dps:
                    break
                rate = min(rate * cfg.ladder_factor, cfg.max_rate)
            elif good is None:
                if rate <= 0.5:
                    break
                rate = max(rate / cfg.ladder_factor, 0.5)
            else:
                if bad / good < 1.2:
                    break
                rate = math.sqrt(good * bad)

    async def ceiling(self, system: System) -> None:
        cfg = self.config
        gen_before = sum(await self.pool.reset())
        machine = MachineClock()
        started = time.monotonic()
        tally = await system.blast(cfg.step_s)
        busy = machine.sample()
        await self._drain(int(tally["written"]))
        total, hist = merge(await self.pool.report())
        gen_cpu = (total.cpu_s - gen_before) / (time.monotonic() - started) * 100.0
        span = (total.last_ms - total.first_ms) / 1000.0
        row = {
            "system": "ceiling",
            "kind": "blast",
            "readers": self.connected,
            "frames_written": int(tally["written"]),
            "writes_per_s": round(tally["per_second"], 1),
            "socket_full": int(tally["full"]),
            "rounds": int(tally["rounds"]),
            "deliveries": total.events,
            "deliveries_per_s": round(total.events / max(tally["seconds"], span), 1) if total.last_ms else 0.0,
            "server_cpu_percent": 100.0,
            "generator_cpu_percent": round(gen_cpu, 1),
            "generator_processes": len(self.pool.handles),
            "machine_busy_percent": busy,
            **{k: v for k, v in hist.summary().items() if k != "count"},
        }
        self.steps.append(row)
        self.progress.line(
            f"[ceiling {self.connected:,} sockets] {row['writes_per_s']:,.0f} writes/s from one core; readers got "
            f"{row['deliveries_per_s']:,.0f}/s; generator CPU {gen_cpu:.0f}%",
            final=True,
        )

    async def broadcast(self, system: System) -> None:
        for n in sorted(self.config.readers):
            await self.ensure_readers(system, n)
            if system.name == "ceiling":
                await self.ceiling(system)
            else:
                await self.ladder(system, n)
            if system.name == "livefeed" and "latency" in self.config.scenarios and n == self.config.latency_readers:
                await self.latency(system)
        await self.close_readers()

    async def latency(self, system: System) -> None:
        cfg = self.config
        if self.on is not system or self.connected != cfg.latency_readers:
            await self.ensure_readers(system, cfg.latency_readers)
        await self.step(system, "latency", cfg.latency_rate, max(int(cfg.latency_rate * cfg.latency_s), 1))
        await asyncio.sleep(1.0)
        await self.step(system, "burst", cfg.burst_items / cfg.burst_window_s, cfg.burst_items)
        for rate in cfg.throughput_rates:
            await asyncio.sleep(1.0)
            row = await self.step(system, "throughput", rate, max(int(rate * cfg.step_s), 1))
            if not row["kept_up"]:
                break

    async def http_scenario(self) -> None:
        cfg = self.config
        body = (b'{"headline":"Benchmark item","body":"A short body of a breaking news item, about as long as '
                b'a real one\'s first line."}')
        feed = "bench-http"
        if cfg.gateway_port is None:
            self.notes.append("history GET/s not measured: focused run without the gateway.")
        else:
            # History first, on a feed of 20 items, while its consumer is idle: the POST test
            # below leaves it applying thousands of events for a while.
            seeded = await self.publisher.run([Target(feed)] * 20, 50.0)
            if seeded.acked < 20:
                self.notes.append(f"history GET: only {seeded.acked} of 20 seed items were accepted.")
            await asyncio.sleep(2.0)
            history_pid = cfg.pids.get("history") or listening_pid(cfg.gateway_port + (8002 - 8080))
            self.http["history"] = await self._http_one(
                "history GET (gateway)", cfg.gateway_port, "GET", f"/v1/feeds/{feed}/items?limit=20", b"", {},
                history_pid,
            )
        ingest_pid = cfg.pids.get("ingest") or listening_pid(cfg.ingest_port)
        self.http["ingest"] = await self._http_one(
            "ingest POST", cfg.ingest_port, "POST", f"/v1/feeds/{feed}/items", body,
            {"Authorization": f"Bearer {cfg.token}", "Content-Type": "application/json"}, ingest_pid,
        )

    async def _http_one(
        self, label: str, port: int, method: str, path: str, body: bytes, headers: dict[str, str], pid: int | None
    ) -> dict[str, Any]:
        cfg = self.config
        wrk = shutil.which("wrk") if cfg.http_tool in ("auto", "wrk") else None
        if cfg.http_tool == "wrk" and wrk is None:
            raise RuntimeError("--http-tool wrk, but wrk is not installed (apt-get install wrk)")
        clock = CpuClock(pid) if pid else None
        machine = MachineClock()
        profile = self._profile(pid, cfg.http_seconds, label.split()[0] + "-" + method.lower())
        await profile.start()
        self.progress.line(f"[{label}] {cfg.http_connections} connections for {cfg.http_seconds:g}s "
                           f"({'wrk' if wrk else 'python client'})")
        if wrk:
            result = await self._wrk(wrk, port, method, path, body, headers)
        else:
            request = build_request(method, cfg.host, port, path, body=body, headers=headers)
            loaded = await http_load(cfg.host, port, request, connections=cfg.http_connections,
                                     duration_s=cfg.http_seconds)
            summary = loaded.hist.summary()
            result = {
                "tool": "python",
                "requests": loaded.requests,
                "per_second": round(loaded.per_second, 1),
                "p50_ms": summary["p50_ms"],
                "p99_ms": summary["p99_ms"],
                "max_ms": summary["max_ms"],
                "non_2xx": sum(c for s, c in loaded.statuses.items() if not 200 <= s < 300),
                "errors": loaded.errors,
            }
        sample = clock.sample() if clock else None
        top = await profile.finish()
        if top:
            result["profile"] = top
        result.update(
            connections=cfg.http_connections,
            seconds=cfg.http_seconds,
            server_cpu_percent=sample.cpu_percent if sample else None,
            machine_busy_percent=machine.sample(),
        )
        self.progress.line(
            f"[{label}] {result['per_second']:,.0f} req/s, p50 {result['p50_ms']} p99 {result['p99_ms']} ms, "
            f"non-2xx {result['non_2xx']}, server CPU {result['server_cpu_percent']}%",
            final=True,
        )
        return result

    async def _wrk(
        self, wrk: str, port: int, method: str, path: str, body: bytes, headers: dict[str, str],
        *, request_lua: str = "", connections: int | None = None,
    ) -> dict[str, Any]:
        """One wrk run; ``request_lua`` may define wrk's ``request`` function (a new path per request)."""
        cfg = self.config
        connections = connections or cfg.http_connections
        lines = [f'wrk.method = "{method}"', request_lua]
        if body:
            lines.append(f"wrk.body = {_lua_string(body.decode())}")
        for name, value in headers.items():
            lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
        lines.append(
            "done = function(s, lat, req)\n"
            '  io.write(string.format("WRKJSON %d %d %d %d %d %d %d %d\\n", s.requests, s.duration,'
            " lat:percentile(50), lat:percentile(99), lat.max, s.errors.connect + s.errors.read +"
            " s.errors.write + s.errors.timeout, s.errors.status, lat:percentile(95)))\n"
            "end"
        )
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write("\n".join(lines) + "\n")
        try:
            process = await asyncio.create_subprocess_exec(
                wrk, "-t1", f"-c{connections}", f"-d{cfg.http_seconds:g}s", "--timeout", "5s",
                "-s", script.name, f"http://{cfg.host}:{port}{path}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(process.communicate(), cfg.http_seconds + 60)
        finally:
            os.unlink(script.name)
        for line in out.decode().splitlines():
            if line.startswith("WRKJSON "):
                requests, duration_us, p50, p99, top, errors, non2xx, p95 = (int(v) for v in line.split()[1:])
                return {
                    "tool": "wrk",
                    "requests": requests,
                    "per_second": round(requests / (duration_us / 1e6), 1),
                    "p50_ms": round(p50 / 1000, 2),
                    "p95_ms": round(p95 / 1000, 2),
                    "p99_ms": round(p99 / 1000, 2),
                    "max_ms": round(top / 1000, 2),
                    "non_2xx": non2xx,
                    "errors": errors,
                }
        raise RuntimeError(f"wrk gave no result: {out.decode()[-500:]}")

    # -- the run --------------------------------------------------------------------------------
    async def run(self) -> None:
        cfg = self.config
        await self.pool.start()
        try:
            if "broadcast" in cfg.scenarios:
                for name in cfg.systems:
                    await self._with_system(name, self.broadcast)
            if "latency" in cfg.scenarios and not any(
                s["kind"] == "latency" for s in self.steps
            ):
                await self.latency(self.fanout)
                await self.close_readers()
            if "http" in cfg.scenarios:
                await self.http_scenario()
            for name, scenario in (("pages", pages_scenario), ("herd", herd_scenario),
                                   ("workers", workers_scenario)):
                if name in cfg.scenarios:
                    self.sections[name] = await scenario(self)
        finally:
            with contextlib.suppress(Exception):
                await self.close_readers()
            await self.pool.stop()
            self.publisher.close()

    async def _with_system(self, name: str, body: Any) -> None:
        cfg = self.config
        if name == "livefeed":
            await body(self.fanout)
            return
        port = cfg.fanout_port + PEER_OFFSETS[name]
        self.progress.line(f"[{name}] starting the peer on port {port}", final=True)
        try:
            system = await start_peer(name, cfg.host, port, cfg.kafka, cfg.topic, cfg.log_dir)
        except (RuntimeError, OSError) as exc:
            self.notes.append(f"{name} not measured: {exc} (log: {cfg.log_dir}/peer-{name}.log).")
            self.progress.line(f"[{name}] could not start: {exc}", final=True)
            return
        try:
            await body(system)
        finally:
            await self.close_readers()
            await system.stop()

    def generator_pids(self) -> list[int]:
        return self.pool.pids


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

