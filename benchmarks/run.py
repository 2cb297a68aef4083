"""``livefeed-bench``: the fan-out benchmark against its peers, in one run.

Its own entry point, never imported by the product: ``python -m benchmarks.run`` is the same, and
``livefeed bench ...`` runs this command as a separate program.

It starts the real stack on its own ports (the defaults plus ``--shift``, 20000 unless told:
below the kernel's ephemeral port range, so no outgoing connection can take one of its ports)
in its own run directory, or measures a running one (``--url`` of its gateway: the other ports
are the gateway's shift from the defaults), then runs the scenarios (``benchmarks.bench``) and
writes JSON, markdown and PNG plots to ``--out`` (docs/benchmarks/ by default, which also
updates the README's Performance section). Progress goes to stderr; the exit code is 0 when
the run completed (a missed target is a result, not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy.stack import DEMO_TOKEN, ROOT, Stack, Topology

from .bench import Bench, BenchConfig
from .fanout_workers import stack_restarter
from .report import update_readme, write_outputs
from .systems import livefeed

__all__ = ["main"]

ALL_SYSTEMS = ("livefeed", "naive", "socketio", "ceiling", "centrifugo")
ALL_SCENARIOS = ("broadcast", "latency", "http", "pages", "herd", "workers")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in _list(text)]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livefeed-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_argument_group("what to measure")
    where.add_argument("--url", help="gateway URL of a running stack to measure instead of starting one")
    where.add_argument("--token", help=f"newsroom token for posts (default: the stack's, {DEMO_TOKEN!r})")
    where.add_argument("--shift", type=int, default=20_000, help="port shift of the stack this starts (20000)")
    where.add_argument("--focus", choices=["full", "fanout"], default="full",
                       help="full: the whole stack; fanout: only Kafka, Redis, ingest and fanout")
    where.add_argument("--run-dir", type=Path, help="run directory of the started stack (default: a fresh temp dir)")
    where.add_argument("--keep-run-dir", action="store_true", help="keep the run directory (logs) afterwards")
    where.add_argument("--systems", type=_list, default=list(ALL_SYSTEMS),
                       help="comma-separated, of: " + ",".join(ALL_SYSTEMS))
    where.add_argument("--scenarios", type=_list, default=list(ALL_SCENARIOS),
                       help="comma-separated, of: " + ",".join(ALL_SCENARIOS))
    load = p.add_argument_group("load")
    load.add_argument("--readers", type=_ints, default=[1_000, 5_000, 10_000, 19_000],
                      help="subscriber counts of the broadcast sweep (1000,5000,10000,19000)")
    load.add_argument("--feeds", type=int, default=1, help="spread readers and posts over this many feeds (1)")
    load.add_argument("--tag-filters", type=int, default=0,
                      help="readers cycle through no filter and tags=t0..t{N-1}; posts carry one of them (0)")
    load.add_argument("--step-seconds", type=float, default=4.0, help="publishing time of each rate step (4)")
    load.add_argument("--max-steps", type=int, default=10, help="rate steps per system and subscriber count (10)")
    load.add_argument("--ladder-factor", type=float, default=1.5, help="rate multiplier between ladder steps (1.5)")
    load.add_argument("--start-dps", type=float, default=10_000.0,
                      help="deliveries/s the first rate step aims at (10000)")
    load.add_argument("--max-rate", type=float, default=400.0, help="highest publish rate, items/s (400)")
    load.add_argument("--p99-bounds-ms", type=lambda t: [float(v) for v in _list(t)],
                      default=[100.0, 250.0, 500.0, 1000.0],
                      help="the 'equal p99' bounds the peers are compared at; the ladder climbs while a step "
                           "stays within the largest (100,250,500,1000)")
    load.add_argument("--latency-readers", type=int, default=10_000)
    load.add_argument("--latency-rate", type=float, default=10.0)
    load.add_argument("--latency-seconds", type=float, default=10.0)
    load.add_argument("--burst", type=int, default=50, help="items in the one-second burst (50)")
    load.add_argument("--throughput-rates", type=lambda t: [float(v) for v in _list(t)], default=[20.0, 40.0, 80.0],
                      help="after the latency steps, livefeed at these items/s until it stops keeping up (20,40,80)")
    load.add_argument("--per-process", type=int, default=5_000, help="readers per load-generator process (5000)")
    load.add_argument("--sources", type=int, default=8, help="127.0.0.x source addresses to spread readers over (8)")
    load.add_argument("--http-seconds", type=float, default=10.0)
    load.add_argument("--http-connections", type=int, default=32)
    load.add_argument("--http-tool", choices=["auto", "wrk", "python"], default="auto")
    load.add_argument("--pages-connections", type=int, default=64,
                      help="pages: connections of each mode, cached and uncached; it runs --http-seconds each (64)")
    load.add_argument("--herd-readers", type=int, default=5_000, help="herd: readers arriving (5000)")
    load.add_argument("--herd-seconds", type=float, default=2.0, help="herd: the window they arrive in (2)")
    load.add_argument("--herd-rate", type=float, default=8.0, help="herd: items/s posted meanwhile (8)")
    load.add_argument("--workers-counts", type=_ints, default=[1, 2], help="workers: fanout worker counts (1,2)")
    load.add_argument("--workers-readers", type=int, default=10_000, help="workers: readers (10000)")
    load.add_argument("--workers-rate", type=float, default=10.0, help="workers: items/s (10)")
    load.add_argument("--workers-seconds", type=float, default=10.0, help="workers: posting time per leg (10)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks", help="results folder (docs/benchmarks)")
    out.add_argument("--no-readme", action="store_true",
                     help="do not update README.md (implied when --out is not docs/benchmarks)")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    out.add_argument("--profile", type=Path, metavar="DIR",
                     help="record the server with py-spy during every measured window; raw stacks go to DIR")
    return p


def _raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _start_stack(args: argparse.Namespace, run_dir: Path) -> Stack:
    stack = Stack(
        topology=Topology.shifted(args.shift),
        run_dir=run_dir,
        token=args.token or DEMO_TOKEN,
        quiet=args.quiet,
        extra_env={
            "LIVEFEED_WRITE_RATE_PER_S": "1000000",
            "LIVEFEED_WRITE_BURST": "1000000",
            "LIVEFEED_GATEWAY_READ_RATE_PER_S": "1000000",
            "LIVEFEED_GATEWAY_READ_BURST": "1000000",
            # One fanout process, as each peer is one process, and so its pid is the one measured; the
            # workers scenario restarts it with more.
            "LIVEFEED_FANOUT_WORKERS": "1",
        },
    )
    try:
        if args.focus == "full":
            stack.start()
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.start_redis()
            stack.start_kafka()
            stack.start_service("ingest")
            stack.start_service("fanout")
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None, *, given_stack: Stack | None = None) -> int:
    """Run the benchmark; 0 when it completed, 2 on bad arguments, 1 when the run failed.

    ``given_stack``: a running stack of the caller's (tests), measured like ``--url`` but one whose
    fanout the workers scenario may restart (it restores it afterwards).
    """
    args = parser().parse_args(argv)
    bad = [s for s in args.systems if s not in ALL_SYSTEMS] + [s for s in args.scenarios if s not in ALL_SCENARIOS]
    if bad:
        print(f"livefeed-bench: unknown system or scenario: {', '.join(bad)}", file=sys.stderr)
        return 2
    _raise_nofile()
    given = argv if argv is not None else sys.argv[1:]
    command = "livefeed-bench" + (" " + shlex.join(given) if given else "")
    stack: Stack | None = None
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="livefeed-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    loadavg_start = os.getloadavg()
    try:
        if given_stack is not None:
            topology, token = given_stack.topology, args.token or given_stack.token or DEMO_TOKEN
            pids: dict[str, int] = {name: proc.pid for name, proc in given_stack.procs.items()}
            gateway: int | None = topology.gateway
        elif args.url:
            parts = urlsplit(args.url)
            topology = Topology.shifted((parts.port or 80) - Topology().gateway)
            topology = Topology(**{**topology.__dict__, "host": parts.hostname or "127.0.0.1"})
            token = args.token or DEMO_TOKEN
            pids = {}
            gateway = topology.gateway
        else:
            if not args.quiet:
                print(f"livefeed-bench: starting the stack on ports +{args.shift} in {run_dir}", file=sys.stderr)
            stack = _start_stack(args, run_dir)
            topology = stack.topology
            token = stack.token
            pids = {name: proc.pid for name, proc in stack.procs.items()}
            gateway = topology.gateway if args.focus == "full" else None
        config = BenchConfig(
            host=topology.host,
            fanout_port=topology.fanout,
            ingest_port=topology.ingest,
            gateway_port=gateway,
            kafka=f"{topology.host}:{topology.kafka}",
            topic=os.environ.get("LIVEFEED_TOPIC", "livefeed.events"),
            token=token,
            log_dir=run_dir / "logs",
            systems=args.systems,
            scenarios=args.scenarios,
            readers=args.readers,
            feeds=args.feeds,
            tag_filters=args.tag_filters,
            step_s=args.step_seconds,
            max_steps=args.max_steps,
            ladder_factor=args.ladder_factor,
            start_dps=args.start_dps,
            max_rate=args.max_rate,
            p99_bounds_ms=args.p99_bounds_ms,
            latency_readers=args.latency_readers,
            latency_rate=args.latency_rate,
            latency_s=args.latency_seconds,
            burst_items=args.burst,
            throughput_rates=args.throughput_rates,
            per_process=args.per_process,
            sources=args.sources,
            http_seconds=args.http_seconds,
            http_connections=args.http_connections,
            http_tool=args.http_tool,
            pages_connections=args.pages_connections,
            herd_readers=args.herd_readers,
            herd_arrival_s=args.herd_seconds,
            herd_rate=args.herd_rate,
            workers_counts=args.workers_counts,
            workers_readers=args.workers_readers,
            workers_rate=args.workers_rate,
            workers_seconds=args.workers_seconds,
            pids=pids,
            quiet=args.quiet,
            profile_dir=args.profile,
        )
        fanout = livefeed(topology.host, topology.fanout, pids.get("fanout"))
        bench = Bench(config, fanout)
        if (owned := stack or given_stack) is not None:
            bench.restart_fanout = stack_restarter(owned)
        asyncio.run(_run(bench))
        results: dict[str, Any] = {
            "command": command,
            "started": started,
            "environment": {
                "cores": os.cpu_count(),
                "cpu_model": _cpu_model(),
                "python": platform.python_version(),
                "loadavg_start": [round(v, 2) for v in loadavg_start],
                "loadavg_end": [round(v, 2) for v in os.getloadavg()],
                "fanout_pid": fanout.pid,
                "generator_processes": len(bench.pool.pids) or bench.pool.size,
                "stack": "reused (--url)" if args.url or given_stack
                         else f"started here, focus={args.focus}, shift={args.shift}",
                "note": "2 cores shared by the system under test, Kafka, Redis, the other services and the "
                        "load generator; other engineers' test stacks may run at the same time.",
            },
            "config": {k: v for k, v in config.__dict__.items()
                       if k not in ("log_dir", "pids", "token", "profile_dir")},
            "connects": bench.connects,
            "steps": bench.steps,
            "http": bench.http,
            "notes": bench.notes,
            **bench.sections,
        }
        out_dir: Path = args.out
        paths = write_outputs(results, out_dir)
        default_out = (ROOT / "docs" / "benchmarks").resolve()
        if not args.no_readme and out_dir.resolve() == default_out:
            update_readme(ROOT / "README.md", results, out_dir)
        if not args.quiet:
            print("livefeed-bench: wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
            for t in results["targets"]:
                mark = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
                print(f"  {t['target']:<44} {t['goal']:<28} {t['measured']}  [{mark}]", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("livefeed-bench: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"livefeed-bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if not args.keep_run_dir and args.run_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


async def _run(bench: Bench) -> None:
    await bench.run()


if __name__ == "__main__":
    raise SystemExit(main())
