"""The ``workers`` scenario: the same trickle with the fanout as 1 and as 2 worker processes, in one run.

For each worker count the stack's fanout is restarted with ``LIVEFEED_FANOUT_WORKERS`` set (with
more than 1, a parent and N children share the port with ``SO_REUSEPORT``, each reading Kafka
itself), the readers connect to its port (the kernel spreads them over the workers), and
``workers_rate`` items/s are posted for ``workers_seconds``: the latency regime, where nothing can
be coalesced. The fanout's CPU is the sum over the parent and its children (each child's share
shown too); deliveries per fanout CPU-second give the per-core figure the 16-core projection is
derived from. The load generator, Kafka, Redis, ingest and the gateway share the same two cores.
Afterwards the fanout is restarted as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from deploy.stack import Stack

from .proctree import TreeClock, established

if TYPE_CHECKING:
    from .bench import Bench

__all__ = ["PROJECTED_CORES", "WORKERS_ENV", "project", "stack_restarter", "workers_scenario"]

WORKERS_ENV = "LIVEFEED_FANOUT_WORKERS"
PROJECTED_CORES = 16

Restarter = Callable[[int | None], int]
"""Restart the fanout with ``n`` workers (None: as the stack had it); returns the new fanout pid."""


def stack_restarter(stack: Stack) -> Restarter:
    """A :data:`Restarter` for a stack this process drives; it waits until the new fanout is ready."""
    original = stack.extra_env.get(WORKERS_ENV)

    def restart(workers: int | None) -> int:
        value = original if workers is None else str(workers)
        if value is None:
            stack.extra_env.pop(WORKERS_ENV, None)
        else:
            stack.extra_env[WORKERS_ENV] = value
        stack.restart_service("fanout")
        t = stack.topology
        expected = int(value) if value is not None else 1
        ready: set[int] = set()
        deadline = time.monotonic() + 60.0
        # With SO_REUSEPORT a worker that has not opened its port yet gets no reader: wait until each
        # one has answered, or every reader would land on the first.
        while len(ready) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fanout with {WORKERS_ENV}={value} was not ready within 60 s "
                                   f"(workers ready: {sorted(ready)})")
            try:
                answer = httpx.get(f"http://{t.host}:{t.fanout}/readyz", timeout=2.0)
                if answer.status_code == 200:
                    ready.add(int(answer.json().get("worker", 0)))
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        return stack.procs["fanout"].pid

    return restart


def project(per_core_dps: float | None, rate: float) -> dict[str, Any]:
    """The 16-core figures derived from one fanout core's deliveries per CPU-second (None when unmeasured)."""
    if not per_core_dps:
        return {"cores": PROJECTED_CORES, "deliveries_per_s": None, "readers_at_rate": None}
    total = per_core_dps * PROJECTED_CORES
    return {"cores": PROJECTED_CORES, "deliveries_per_s": round(total), "readers_at_rate": round(total / rate)}


async def workers_scenario(bench: Bench) -> dict[str, Any]:
    """Run one leg per worker count; the result is the report's ``workers`` section."""
    cfg = bench.config
    restart = bench.restart_fanout
    if restart is None:
        bench.notes.append("workers not measured: it restarts the fanout, so it needs a stack this run started "
                           "(not --url).")
        return {}
    legs: list[dict[str, Any]] = []
    try:
        for count in cfg.workers_counts:
            await bench.close_readers()
            bench.progress.line(f"[workers] restarting the fanout with {WORKERS_ENV}={count}", final=True)
            bench.fanout.pid = await asyncio.to_thread(restart, count)
            legs.append(await _leg(bench, count))
            await bench.close_readers()
    finally:
        await bench.close_readers()
        bench.fanout.pid = await asyncio.to_thread(restart, None)
    best = max((leg["deliveries_per_cpu_s"] or 0.0 for leg in legs), default=0.0)
    multi = [leg for leg in legs if leg["processes"] > 1]
    basis = max(multi, key=lambda leg: leg["workers"]) if multi else (legs[-1] if legs else None)
    per_core = basis["deliveries_per_cpu_s"] if basis else None
    result = {
        "readers": cfg.workers_readers,
        "rate_per_s": cfg.workers_rate,
        "seconds": cfg.workers_seconds,
        "legs": legs,
        "projection": {**project(per_core, cfg.workers_rate), "basis_workers": basis["workers"] if basis else None,
                       "per_core_deliveries_per_s": per_core, "best_per_core_deliveries_per_s": best,
                       "derived": True},
    }
    return result


async def _settle(pid: int, idle_percent: float = 25.0, timeout_s: float = 30.0) -> float:
    """Wait until the fanout is done with the connect storm (under ``idle_percent`` of a core over a second).

    On a starved machine it may still be answering handshakes, some of readers that gave up, long
    after the load generator stopped connecting; a step started then measures that backlog, not
    the delivery path. Returns the seconds waited (at most ``timeout_s``).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        clock = TreeClock(pid)
        await asyncio.sleep(1.0)
        if clock.sample().cpu_percent < idle_percent:
            break
    return round(time.monotonic() - started, 1)


async def _leg(bench: Bench, count: int) -> dict[str, Any]:
    cfg = bench.config
    pid = bench.fanout.pid
    connect = await bench.ensure_readers(bench.fanout, cfg.workers_readers)
    bench.connects.remove(connect)  # not a row of the connect table: its RSS is the parent's alone
    settle_s = await _settle(pid)
    clock = TreeClock(pid)
    spread = [established(p) for p in clock.processes]
    row = await bench.step(bench.fanout, f"workers-{count}", cfg.workers_rate,
                           max(int(cfg.workers_rate * cfg.workers_seconds), 1))
    sample = clock.sample()
    bench.steps.remove(row)  # its own section: not a row of the latency or broadcast tables
    cpu_s = sample.total_cpu_s
    leg = {
        "workers": count,
        "processes": len(sample.children_cpu_s) or 1,
        "readers": row["readers"],
        "connect_failed": connect["failed"],
        "connect_s": connect["seconds"],
        "settle_s": settle_s,
        "acked": row["acked"],
        "expected": row["expected"],
        "deliveries": row["deliveries"],
        "lost": row["lost"],
        "deliveries_per_s": row["deliveries_per_s"],
        "p50_ms": row["p50_ms"],
        "p95_ms": row["p95_ms"],
        "p99_ms": row["p99_ms"],
        "max_ms": row["max_ms"],
        "disconnects": row["disconnects"],
        "fanout_cpu_percent": sample.cpu_percent,
        "per_worker_cpu_percent": list(sample.per_process_percent().values()),
        "per_worker_connections": spread,
        "fanout_cpu_s": round(cpu_s, 3),
        "deliveries_per_cpu_s": round(row["deliveries"] / cpu_s) if cpu_s else None,
        "generator_cpu_percent": row["generator_cpu_percent"],
        "machine_busy_percent": row["machine_busy_percent"],
    }
    bench.progress.line(
        f"[workers {count}] {leg['processes']} process(es): p50 {leg['p50_ms']} p99 {leg['p99_ms']} ms, "
        f"{leg['deliveries']:,}/{leg['expected']:,} delivered, fanout CPU {leg['fanout_cpu_percent']}% "
        f"({leg['per_worker_cpu_percent']}), {leg['deliveries_per_cpu_s']} deliveries per CPU-second",
        final=True,
    )
    return leg
