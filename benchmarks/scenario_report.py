"""The report's sections for the pages, herd and workers scenarios (issue 13), and their targets.

Each section says what was measured and how the figure is defined, beside the figure, so a reader
of results.md need not open the code; a projection is marked as derived, never as measured.
"""

from __future__ import annotations

from typing import Any

from .numbers import figure as _f

__all__ = ["scenario_markdown", "scenario_targets"]


def scenario_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets beside what this run measured (met, missed, or not measured)."""
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, measured: str | None, met: bool | None) -> None:
        out.append({"target": name, "goal": goal, "measured": measured or "not measured",
                    "met": met if measured is not None else None})

    pages = results.get("pages") or {}
    if pages:
        ratio = pages.get("ratio")
        add("reader page via the gateway, cached / uncached", ">= 10x, in one run",
            f"{_f(pages['cached']['per_second'])}/s vs {_f(pages['uncached']['per_second'])}/s = {ratio}x "
            f"(samples {pages['cached']['cache_status']} / {pages['uncached']['cache_status']})",
            bool(ratio and ratio >= 10 and pages["modes_confirmed"]))
    else:
        add("reader page via the gateway, cached / uncached", ">= 10x, in one run", None, None)
    herd = results.get("herd") or {}
    add("herd: every reader gets every item", "0 failed readers",
        f"{_f(herd['ok_readers'])}/{_f(herd['readers'])} readers, failures {herd['failures'] or 'none'}"
        if herd else None, herd.get("failed_readers") == 0 and herd.get("readers", 0) > 0 if herd else None)
    add("herd: p99 from arrival to live", "reported", f"{herd['live_p99_ms']} ms (page p99 {herd['page_p99_ms']} ms)"
        if herd else None, True if herd else None)
    workers = results.get("workers") or {}
    legs = workers.get("legs", [])
    add("p50/p99 at 10k readers x 10 items/s, 1 vs 2 fanout workers", "reported, in one run",
        "; ".join(f"{leg['workers']} worker(s): p50 {leg['p50_ms']} / p99 {leg['p99_ms']} ms" for leg in legs) or None,
        True if legs else None)
    return out


def scenario_markdown(results: dict[str, Any]) -> str:
    """The markdown of whichever of the three scenarios ran ("" when none did)."""
    out: list[str] = []
    targets = scenario_targets(results)
    if not any(results.get(k) for k in ("pages", "herd", "workers")):
        return ""
    out.append("\n### Targets (issue 13)\n")
    out.append("| target | goal | measured | |\n| --- | --- | --- | --- |")
    for t in targets:
        mark = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        out.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {mark} |")
    out += _pages(results.get("pages") or {})
    out += _herd(results.get("herd") or {})
    out += _workers(results.get("workers") or {})
    return "\n".join(out) + "\n"


def _pages(pages: dict[str, Any]) -> list[str]:
    if not pages:
        return []
    out = ["\n### Reader page through the gateway: uncached vs micro-cached\n",
           f"`GET {pages['path']}` for {pages['seconds']:g} s per mode, {pages['connections']} connections, "
           "one after the other in the same run. Uncached: every request has a query string of its own "
           "(`?nocache=N`), so the gateway's cache misses and history renders each page; cached: the same URL "
           "every time. The cache column is the `X-Cache-Status` of one sample request made the same way after "
           "each mode (`absent`: the gateway sent none, it does not cache this page).\n",
           "| mode | tool | GET/s | p50 ms | p99 ms | non-2xx | errors | history CPU % | gateway CPU % "
           "| X-Cache-Status |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for mode in ("uncached", "cached"):
        m = pages[mode]
        out.append(f"| {mode} | {m['tool']} | {_f(m['per_second'])} | {_f(m['p50_ms'], 2)} | {_f(m['p99_ms'], 2)} "
                   f"| {m['non_2xx']} | {m['errors']} | {_f(m['history_cpu_percent'])} "
                   f"| {_f(m['gateway_cpu_percent'])} | {m['cache_status']} |")
    out.append(f"\nCached / uncached: **{pages['ratio']}x**"
               + ("" if pages["modes_confirmed"] else
                  " (the samples do not show a miss then a hit: this is not the cache's gain)") + ".")
    return out


def _herd(herd: dict[str, Any]) -> list[str]:
    if not herd:
        return []
    return [
        "\n### Herd: readers arriving while news is posted\n",
        f"{_f(herd['readers'])} readers arrive evenly within {herd['arrival_s']:g} s (from {herd['processes']} "
        f"load-generator processes) while {herd['rate_per_s']:g} items/s are posted through ingest "
        f"({herd['items_posted']} items). Each GETs the reader page through the gateway, reads its cursor "
        "(`data-cursor`), then opens the WebSocket stream through the gateway from it (`?since=`). "
        "**Arrival** is when the reader starts the page GET; **live** is when the stream's `hello` arrives "
        "(the fanout has subscribed it; the replay of what the page missed follows at once). A reader passes "
        "when it received exactly the items posted after its page's cursor: no gap, no duplicate, in order.\n",
        "| readers | passed | failures | page p50 ms | page p99 ms | arrival to live p50 ms | p99 ms | max ms "
        "| deliveries | page cache | machine busy % |\n"
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        f"| {_f(herd['readers'])} | {_f(herd['ok_readers'])} | {herd['failures'] or 'none'} "
        f"| {_f(herd['page_p50_ms'], 1)} | {_f(herd['page_p99_ms'], 1)} | {_f(herd['live_p50_ms'], 1)} "
        f"| {_f(herd['live_p99_ms'], 1)} | {_f(herd['live_max_ms'], 1)} "
        f"| {_f(herd['delivered'])}/{_f(herd['expected_deliveries'])} | {herd['page_cache_status']} "
        f"| {_f(herd['machine_busy_percent'])} |",
        f"\nArrivals ran up to {herd['arrival_late_p99_ms']} ms (p99) behind their schedule on the shared cores. "
        f"The herd's own processes used {herd.get('generator_cpu_percent', '-')} % of one core from the first "
        f"arrival to the end (their start-up included). The fanout ran as {herd.get('fanout_processes', '-')} "
        f"process(es). Connections the machine dropped meanwhile because a listen queue was full (every "
        f"listener counts; a dropped one is retried after 1, 3, 7 s): {herd.get('listen_overflows', '-')}."
        + (f" Errors: {'; '.join(herd['errors'])}." if herd["errors"] else ""),
    ]


def _workers(workers: dict[str, Any]) -> list[str]:
    if not workers:
        return []
    out = ["\n### Fanout worker processes: 1 vs 2\n",
           f"{_f(workers['readers'])} WebSocket readers on the fanout's port, {workers['rate_per_s']:g} items/s for "
           f"{workers['seconds']:g} s per leg, the fanout restarted with `LIVEFEED_FANOUT_WORKERS` set between legs. "
           "Latency is from ingest's acceptance to receipt. Fanout CPU is the sum over its processes (percent of "
           "one core); per worker, each process's CPU and its established TCP connections (readers, plus a few to "
           "Kafka and Redis). **The load generator, Kafka, Redis, ingest and the gateway share the same 2 cores.**\n",
           "| workers | processes | p50 ms | p95 ms | p99 ms | max ms | delivered | fanout CPU % | per worker CPU % "
           "| per worker connections | deliveries per fanout CPU-second | generator CPU % | machine busy % |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for leg in workers["legs"]:
        out.append(f"| {leg['workers']} | {leg['processes']} | {_f(leg['p50_ms'], 1)} | {_f(leg['p95_ms'], 1)} "
                   f"| {_f(leg['p99_ms'], 1)} | {_f(leg['max_ms'], 1)} | {_f(leg['deliveries'])}/{_f(leg['expected'])} "
                   f"| {_f(leg['fanout_cpu_percent'])} | {leg['per_worker_cpu_percent']} "
                   f"| {leg['per_worker_connections']} | {_f(leg['deliveries_per_cpu_s'])} "
                   f"| {_f(leg['generator_cpu_percent'])} | {_f(leg['machine_busy_percent'])} |")
    p = workers["projection"]
    if p.get("deliveries_per_s"):
        out.append(
            f"\n**Derived, not measured:** at {_f(p['per_core_deliveries_per_s'])} deliveries per fanout CPU-second "
            f"(the {p['basis_workers']}-worker leg), {p['cores']} workers with a core each would make about "
            f"{_f(p['deliveries_per_s'])} deliveries/s, i.e. about {_f(p['readers_at_rate'])} readers at "
            f"{workers['rate_per_s']:g} items/s, assuming the cost per delivery stays the same and Kafka, the "
            "gateway and the readers run elsewhere.")
    return out
