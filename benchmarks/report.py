"""What a run leaves behind: JSON results, a markdown table, PNG plots, the README's section.

The targets of issue 6 are checked here against the measured rows, each with the figure it was
judged on; a target the run did not measure is reported as such, never as met.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .numbers import figure
from .peer_report import peer_markdown
from .scenario_report import scenario_markdown

__all__ = ["best_rows", "evaluate", "update_readme", "write_outputs"]

README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"
SYSTEM_ORDER = ["livefeed", "naive", "socketio", "centrifugo", "ceiling"]
SYSTEM_LABEL = {"livefeed": "livefeed fanout", "naive": "naive FastAPI", "socketio": "python-socketio",
                "centrifugo": "Centrifugo (Go)", "ceiling": "one-core write ceiling"}


def _lossless(row: dict[str, Any]) -> bool:
    return not row["lost"] and not row["disconnects"] and not row["post_failures"] and row["p99_ms"] is not None


def best_rows(steps: list[dict[str, Any]], bound: float) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (system, readers): the broadcast step with the most deliveries/s, nothing lost, p99 <= ``bound``."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in steps:
        if row["kind"] != "broadcast" or not _lossless(row) or row["p99_ms"] > bound:
            continue
        key = (row["system"], row["readers"])
        if key not in best or row["deliveries_per_s"] > best[key]["deliveries_per_s"]:
            best[key] = row
    return best


def ceilings(steps: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The ceiling program's blast per reader count."""
    return {row["readers"]: row for row in steps if row["kind"] == "blast"}


def ratios(steps: list[dict[str, Any]], bounds: list[float], peer: str) -> list[dict[str, Any]]:
    """livefeed / ``peer`` deliveries/s at the same reader count and p99 bound, wherever both have a step."""
    out: list[dict[str, Any]] = []
    for bound in bounds:
        best = best_rows(steps, bound)
        for (system, n), row in sorted(best.items()):
            if system != peer or ("livefeed", n) not in best or not row["deliveries_per_s"]:
                continue
            mine = best[("livefeed", n)]["deliveries_per_s"]
            out.append({"readers": n, "bound_ms": bound, "livefeed": mine, "peer": row["deliveries_per_s"],
                        "ratio": round(mine / row["deliveries_per_s"], 2)})
    return out


def sustained(steps: list[dict[str, Any]], system: str = "livefeed") -> dict[str, Any] | None:
    """The step with the most deliveries/s that kept up with what was offered, losing nothing."""
    rows = [r for r in steps if r["system"] == system and r.get("kept_up") and r["kind"] != "blast"]
    return max(rows, key=lambda r: r["deliveries_per_s"], default=None)


def _primary(results: dict[str, Any]) -> float:
    """The bound the plots and headline use: 250 ms (the burst target's) when measured, else the largest."""
    bounds: list[float] = results["config"]["p99_bounds_ms"]
    return 250.0 if 250.0 in bounds else max(bounds)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 beside the figure measured for it: met, missed, or not measured."""
    steps: list[dict[str, Any]] = results["steps"]
    connects: list[dict[str, Any]] = results["connects"]
    http: dict[str, Any] = results["http"]
    targets: list[dict[str, Any]] = []

    def add(name: str, goal: str, measured: str | None, met: bool | None) -> None:
        targets.append({"target": name, "goal": goal, "measured": measured or "not measured",
                        "met": met if measured is not None else None})

    lf_connects = [c for c in connects if c["system"] == "livefeed"]
    most = max(lf_connects, key=lambda c: c["readers"], default=None)
    add("readers on one fanout", ">= 19,000",
        None if most is None else f"{most['readers']:,} connected ({most['failed']} failed)",
        None if most is None else most["readers"] >= 19_000)
    add("RSS per idle reader", "<= 20 KB",
        None if most is None or most["rss_per_reader_bytes"] is None
        else f"{most['rss_per_reader_bytes'] / 1000:.1f} KB at {most['readers']:,} readers",
        None if most is None or most["rss_per_reader_bytes"] is None else most["rss_per_reader_bytes"] <= 20_000)
    bounds: list[float] = results["config"]["p99_bounds_ms"]
    top_row = sustained(steps)
    add("deliveries/s from one fanout (sustained, nothing lost)", ">= 150,000",
        None if top_row is None else f"{top_row['deliveries_per_s']:,.0f}/s at {top_row['readers']:,} readers, "
        f"{top_row['rate_per_s']:g} items/s (p50 {top_row['p50_ms']}, p99 {top_row['p99_ms']} ms)",
        None if top_row is None else top_row["deliveries_per_s"] >= 150_000)
    for peer, factor in (("naive", 5.0), ("socketio", 3.0)):
        points = ratios(steps, bounds, peer)
        low = min(points, key=lambda p: p["ratio"], default=None)
        high = max(points, key=lambda p: p["ratio"], default=None)
        only_livefeed = sorted({
            (n, b) for b in bounds for (s, n) in best_rows(steps, b)
            if s == "livefeed" and (peer, n) not in best_rows(steps, b)
            and any(r["system"] == peer and r["readers"] == n for r in steps)
        })
        measured = None
        if low is not None and high is not None:
            measured = (f"{low['ratio']:.1f}x to {high['ratio']:.1f}x over {len(points)} (readers, p99 bound) points; "
                        f"lowest at {low['readers']:,} readers, p99 <= {low['bound_ms']:g} ms "
                        f"({low['livefeed']:,.0f} vs {low['peer']:,.0f}/s)")
            if only_livefeed:
                measured += f"; at {len(only_livefeed)} more point(s) only livefeed met the bound"
        elif only_livefeed:
            measured = f"only livefeed met a bound, at {len(only_livefeed)} (readers, p99 bound) point(s)"
        add(f"vs {SYSTEM_LABEL[peer]}", f">= {factor:g}x at equal p99", measured,
            None if measured is None else (low is None or low["ratio"] >= factor))
    latency = next((s for s in steps if s["kind"] == "latency"), None)
    add("p50 at 10,000 readers, 10 items/s", "<= 10 ms",
        None if latency is None else f"{latency['p50_ms']} ms ({latency['readers']:,} readers)",
        None if latency is None else (latency["p50_ms"] or 1e9) <= 10 and latency["readers"] >= 10_000)
    add("p99 at 10,000 readers, 10 items/s", "<= 50 ms",
        None if latency is None else f"{latency['p99_ms']} ms, {latency['lost']} lost",
        None if latency is None else (latency["p99_ms"] or 1e9) <= 50 and latency["lost"] == 0
        and latency["readers"] >= 10_000)
    burst = next((s for s in steps if s["kind"] == "burst"), None)
    add("50-item burst to 10,000 readers", "all reached, p99 <= 250 ms",
        None if burst is None else f"{burst['deliveries']:,}/{burst['expected']:,} delivered, p99 {burst['p99_ms']} ms",
        None if burst is None else burst["lost"] == 0 and (burst["p99_ms"] or 1e9) <= 250
        and burst["readers"] >= 10_000)
    top = max(ceilings(steps).values(), key=lambda r: r["writes_per_s"], default=None)
    most_dps = top_row["deliveries_per_s"] if top_row else 0.0
    add("within 2x of the one-core write ceiling", "deliveries/s >= ceiling / 2",
        f"{most_dps:,.0f}/s sustained vs ceiling {top['writes_per_s']:,.0f} writes/s "
        f"(ceiling / fanout = {top['writes_per_s'] / most_dps:.2f})" if top and most_dps else None,
        most_dps * 2 >= top["writes_per_s"] if top and most_dps else None)
    ingest = http.get("ingest")
    add("ingest POST/s per process", ">= 2,000/s, p99 <= 25 ms",
        None if ingest is None else f"{ingest['per_second']:,.0f}/s, p99 {ingest['p99_ms']} ms, "
        f"{ingest['non_2xx']} non-2xx",
        None if ingest is None else ingest["per_second"] >= 2_000 and (ingest["p99_ms"] or 1e9) <= 25
        and ingest["non_2xx"] == 0)
    history = http.get("history")
    add("history GET/s per process (gateway)", ">= 5,000/s, p99 <= 20 ms",
        None if history is None else f"{history['per_second']:,.0f}/s, p99 {history['p99_ms']} ms",
        None if history is None else history["per_second"] >= 5_000 and (history["p99_ms"] or 1e9) <= 20
        and history["non_2xx"] == 0)
    return targets


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown: targets, the broadcast comparison, latency, HTTP, every step."""
    out: list[str] = []
    env = results["environment"]
    out.append(f"Run {results['started']} on {env['cores']} cores ({env['cpu_model']}), load generator on the same "
               f"machine. Load average at start {env['loadavg_start']}, at end {env.get('loadavg_end', '-')}. "
               "Other engineers' test stacks may have been running: the machine-busy column shows it.\n")
    out.append(f"Command: `{results['command']}`\n")
    out.append("### Targets (issue 6)\n")
    out.append("| target | goal | measured | |\n| --- | --- | --- | --- |")
    for t in results["targets"]:
        mark = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        out.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {mark} |")
    steps: list[dict[str, Any]] = results["steps"]
    bounds: list[float] = results["config"]["p99_bounds_ms"]
    by_bound = {bound: best_rows(steps, bound) for bound in bounds}
    keys = sorted({key for best in by_bound.values() for key in best}
                  | {(r["system"], r["readers"]) for r in steps if r["kind"] == "broadcast"},
                  key=lambda k: (SYSTEM_ORDER.index(k[0]), k[1]))
    if keys:
        out.append("\n### Broadcast: best deliveries/s within each p99 bound, nothing lost\n")
        out.append("Each system gets a ladder of publish rates (items/s through ingest) at each reader count; a cell "
                   "is its most deliveries/s among the steps whose p99 (ingest acceptance to receipt) stayed within "
                   "the bound, with that step's rate and p99. `-`: no step of that system met the bound there.\n")
        out.append("| system | readers | " + " | ".join(f"p99 <= {b:g} ms" for b in bounds) + " |")
        out.append("| --- | ---: | " + " | ".join("---:" for _ in bounds) + " |")
        for system, n in keys:
            cells = []
            for bound in bounds:
                row = by_bound[bound].get((system, n))
                cells.append("-" if row is None else
                             f"{row['deliveries_per_s']:,.0f}/s ({row['rate_per_s']:g}/s, p99 {row['p99_ms']:.0f})")
            out.append(f"| {SYSTEM_LABEL[system]} | {n:,} | " + " | ".join(cells) + " |")
        for n, row in sorted(ceilings(steps).items()):
            out.append(f"| {SYSTEM_LABEL['ceiling']} | {n:,} | {row['writes_per_s']:,.0f} writes/s flat out, "
                       f"one frame per socket per syscall (readers got {row['deliveries_per_s']:,.0f}/s, "
                       f"generator CPU {row['generator_cpu_percent']:.0f}%) |" + " |" * (len(bounds) - 1))
        for peer in ("naive", "socketio", "centrifugo"):
            points = ratios(steps, bounds, peer)
            if points:
                out.append(f"\nlivefeed / {SYSTEM_LABEL[peer]} at the same readers and bound: " + "; ".join(
                    f"{p['readers']:,} readers, p99 <= {p['bound_ms']:g} ms: {p['ratio']:.1f}x" for p in points) + ".")
        out.extend(peer_markdown(results, best_rows, SYSTEM_LABEL, SYSTEM_ORDER))
    lat = [s for s in results["steps"] if s["kind"] in ("latency", "burst", "throughput")]
    if lat:
        out.append("\n### Latency from ingest acceptance to receipt, and sustained throughput\n")
        out.append("| step | readers | items | delivered | deliveries/s | p50 ms | p95 ms | p99 ms | max ms "
                   "| fanout CPU % | generator CPU % | machine busy % |\n"
                   "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for s in lat:
            what = {"latency": f"{s['rate_per_s']:g} items/s",
                    "throughput": f"{s['rate_per_s']:g} items/s (throughput)"}.get(
                s["kind"], f"burst, {s['posted']} items in 1 s")
            out.append(f"| {what} | {s['readers']:,} | {s['acked']} | {s['deliveries']:,}/{s['expected']:,} | "
                       f"{figure(s['deliveries_per_s'])} | {figure(s['p50_ms'], 1)} | {figure(s['p95_ms'], 1)} | "
                       f"{figure(s['p99_ms'], 1)} | {figure(s['max_ms'], 1)} | {figure(s['server_cpu_percent'])} | "
                       f"{figure(s['generator_cpu_percent'])} | {figure(s['machine_busy_percent'])} |")
    if results["connects"]:
        out.append("\n### Connecting readers\n")
        out.append("| system | readers | connect/s | failed | server RSS MiB | RSS per reader KB |\n"
                   "| --- | ---: | ---: | ---: | ---: | ---: |")
        for c in results["connects"]:
            per = c["rss_per_reader_bytes"]
            per_text = "-" if per is None else f"{per / 1000:.1f}"
            out.append(f"| {SYSTEM_LABEL[c['system']]} | {c['readers']:,} | {figure(c['connect_per_s'])} | "
                       f"{c['failed']} | {c['rss_bytes'] / 2**20:,.0f} | {per_text} |")
    if results["http"]:
        out.append("\n### HTTP\n")
        out.append("| endpoint | tool | connections | req/s | p50 ms | p99 ms | non-2xx | server CPU % |\n"
                   "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, h in results["http"].items():
            what = "ingest POST (acks=all)" if name == "ingest" else "history GET via gateway"
            out.append(f"| {what} | {h['tool']} | {h['connections']} | {figure(h['per_second'])} | "
                       f"{figure(h['p50_ms'], 1)} | {figure(h['p99_ms'], 1)} | {h['non_2xx']} | "
                       f"{figure(h['server_cpu_percent'])} |")
    out.append(scenario_markdown(results))
    if results["notes"]:
        out.append("\nNotes: " + " ".join(results["notes"]))
    return "\n".join(out) + "\n"


def _plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Latency percentiles and deliveries/s against subscriber count, one line per system."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    bound = _primary(results)
    best = best_rows(results["steps"], bound)
    blasts = ceilings(results["steps"])
    written: list[str] = []
    systems = [s for s in SYSTEM_ORDER if any(k[0] == s for k in best)]
    if not systems and not blasts:
        return written
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in systems:
        rows = sorted((n, r) for (s, n), r in best.items() if s == system)
        ax.plot([n for n, _ in rows], [r["deliveries_per_s"] for _, r in rows], marker="o", label=SYSTEM_LABEL[system])
    if blasts:
        ns = sorted(blasts)
        ax.plot(ns, [blasts[n]["writes_per_s"] for n in ns], marker="s", linestyle="--",
                label="one-core write ceiling (writes/s)")
    ax.set_xlabel("subscribers (WebSocket readers)")
    ax.set_ylabel("deliveries / s")
    ax.set_title(f"Best deliveries/s with p99 <= {bound:g} ms, nothing lost (2 cores, generator included)",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "deliveries.png", dpi=110)
    plt.close(fig)
    written.append("deliveries.png")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in systems:
        if system == "ceiling":
            continue
        rows = sorted((n, r) for (s, n), r in best.items() if s == system)
        xs = [n for n, _ in rows]
        line = ax.plot(xs, [r["p99_ms"] for _, r in rows], marker="o", label=f"{SYSTEM_LABEL[system]} p99")
        ax.plot(xs, [r["p50_ms"] for _, r in rows], marker="x", linestyle=":", color=line[0].get_color(),
                label=f"{SYSTEM_LABEL[system]} p50")
    ax.set_xlabel("subscribers (WebSocket readers)")
    ax.set_ylabel("ms from ingest acceptance to receipt")
    ax.set_title(f"p50 and p99 at each system's best step within p99 <= {bound:g} ms", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "latency.png", dpi=110)
    plt.close(fig)
    written.append("latency.png")
    return written


def write_outputs(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.md and the plots into ``out_dir``; return what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["targets"] = evaluate(results)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str) + "\n")
    paths["markdown"].write_text("# Benchmark results\n\n" + markdown(results))
    for name in _plots(results, out_dir):
        paths[name.removesuffix(".png")] = out_dir / name
    return paths


def update_readme(readme: Path, results: dict[str, Any], out_dir: Path) -> None:
    """Put the latest table, plot and command in the README's Performance section (at its end).

    The section is appended once, between markers; a later run replaces only what is between them.
    """
    rel = out_dir.resolve().relative_to(readme.parent.resolve())
    body = "\n".join([
        README_START,
        "## Performance",
        "",
        f"Measured with `{results['command']}` on this project's 2-core machine, with the load generator on "
        "the same machine (its CPU is in every row). Full results: "
        f"[{rel}/results.md]({rel}/results.md) and [{rel}/results.json]({rel}/results.json); "
        f"misses and their profiles: [{rel}/NOTES.md]({rel}/NOTES.md).",
        "",
        markdown(results).split("\n### Connecting readers")[0].rstrip(),
        "",
        f"![deliveries/s against subscribers]({rel}/deliveries.png)",
        f"![latency against subscribers]({rel}/latency.png)",
        README_END,
        "",
    ])
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start >= 0 and end > start:
        text = text[:start] + body + text[end + len(README_END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + body
    readme.write_text(text)
