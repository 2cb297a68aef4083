"""What a run leaves behind: JSON results, a markdown table, PNG plots, the README's section.

The targets of issue 6 are checked here against the measured rows, each with the figure it was
judged on; a target the run did not measure is reported as such, never as met.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["best_rows", "evaluate", "update_readme", "write_outputs"]

README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"
SYSTEM_ORDER = ["livefeed", "naive", "socketio", "ceiling"]
SYSTEM_LABEL = {"livefeed": "livefeed fanout", "naive": "naive FastAPI", "socketio": "python-socketio",
                "ceiling": "one-core write ceiling"}


def best_rows(steps: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (system, readers): the broadcast step with the most deliveries/s within the p99 bound.

    The ceiling has one blast per count, and it is its own best.
    """
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in steps:
        if row["kind"] == "blast" or (row["kind"] == "broadcast" and row["ok"]):
            key = (row["system"], row["readers"])
            rate = row.get("writes_per_s") if row["kind"] == "blast" else row["deliveries_per_s"]
            held = best.get(key)
            held_rate = None if held is None else (held.get("writes_per_s") if held["kind"] == "blast"
                                                   else held["deliveries_per_s"])
            if held is None or (rate or 0) > (held_rate or 0):
                best[key] = row
    return best


def _max_dps(best: dict[tuple[str, int], dict[str, Any]], system: str) -> tuple[float, int | None]:
    rows = [(r["deliveries_per_s"], n) for (s, n), r in best.items() if s == system and r["kind"] == "broadcast"]
    return max(rows, default=(0.0, None))


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 beside the figure measured for it: met, missed, or not measured."""
    steps: list[dict[str, Any]] = results["steps"]
    connects: list[dict[str, Any]] = results["connects"]
    http: dict[str, Any] = results["http"]
    best = best_rows(steps)
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
    lf, lf_n = _max_dps(best, "livefeed")
    bound = results["config"]["p99_bound_ms"]
    add("deliveries/s from one fanout", ">= 150,000",
        f"{lf:,.0f}/s at {lf_n:,} readers (p99 <= {bound:g} ms)" if lf_n else None, lf >= 150_000 if lf_n else None)
    for peer, factor in (("naive", 5.0), ("socketio", 3.0)):
        other, other_n = _max_dps(best, peer)
        measured = (f"{lf / other:.1f}x ({lf:,.0f} vs {other:,.0f}/s, both p99 <= {bound:g} ms)"
                    if lf_n and other_n and other else None)
        add(f"vs {SYSTEM_LABEL[peer]}", f">= {factor:g}x at equal p99", measured,
            lf / other >= factor if measured else None)
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
    ceilings = [r for r in steps if r["kind"] == "blast"]
    top = max(ceilings, key=lambda r: r["writes_per_s"], default=None)
    add("within 2x of the one-core write ceiling", "deliveries/s >= ceiling / 2",
        f"{lf:,.0f}/s vs ceiling {top['writes_per_s']:,.0f} writes/s ({top['writes_per_s'] / lf:.1f}x)"
        if top and lf else None,
        lf * 2 >= top["writes_per_s"] if top and lf else None)
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


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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
    best = best_rows(results["steps"])
    bound = results["config"]["p99_bound_ms"]
    out.append(f"\n### Broadcast: best deliveries/s with p99 <= {bound:g} ms and nothing lost\n")
    out.append("| system | readers | items/s | deliveries/s | p50 ms | p99 ms | server CPU % | generator CPU % "
               "| machine busy % |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (system, n), row in sorted(best.items(), key=lambda kv: (SYSTEM_ORDER.index(kv[0][0]), kv[0][1])):
        if row["kind"] == "blast":
            out.append(f"| {SYSTEM_LABEL[system]} | {n:,} | flat out | {_fmt(row['writes_per_s'])} written, "
                       f"{_fmt(row['deliveries_per_s'])} received | - | - | 100 | "
                       f"{_fmt(row['generator_cpu_percent'])} | {_fmt(row['machine_busy_percent'])} |")
        else:
            out.append(f"| {SYSTEM_LABEL[system]} | {n:,} | {row['rate_per_s']:g} | {_fmt(row['deliveries_per_s'])} "
                       f"| {_fmt(row['p50_ms'], 1)} | {_fmt(row['p99_ms'], 1)} | {_fmt(row['server_cpu_percent'])} "
                       f"| {_fmt(row['generator_cpu_percent'])} | {_fmt(row['machine_busy_percent'])} |")
    lf_rows = {n: r for (s, n), r in best.items() if s == "livefeed" and r["kind"] == "broadcast"}
    ratios: list[str] = []
    for (system, n), row in sorted(best.items()):
        if system in ("naive", "socketio") and n in lf_rows and row["deliveries_per_s"]:
            ratios.append(f"{SYSTEM_LABEL[system]} at {n:,} readers: "
                          f"{lf_rows[n]['deliveries_per_s'] / row['deliveries_per_s']:.1f}x")
    if ratios:
        out.append("\nlivefeed / peer at the same reader count and p99 bound: " + "; ".join(ratios) + ".")
    lat = [s for s in results["steps"] if s["kind"] in ("latency", "burst")]
    if lat:
        out.append("\n### Latency from ingest acceptance to receipt\n")
        out.append("| step | readers | items | delivered | p50 ms | p95 ms | p99 ms | max ms | fanout CPU % "
                   "| generator CPU % |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for s in lat:
            what = f"{s['rate_per_s']:g} items/s" if s["kind"] == "latency" else f"burst, {s['posted']} items in 1 s"
            out.append(f"| {what} | {s['readers']:,} | {s['acked']} | {s['deliveries']:,}/{s['expected']:,} | "
                       f"{_fmt(s['p50_ms'], 1)} | {_fmt(s['p95_ms'], 1)} | {_fmt(s['p99_ms'], 1)} | "
                       f"{_fmt(s['max_ms'], 1)} | {_fmt(s['server_cpu_percent'])} | "
                       f"{_fmt(s['generator_cpu_percent'])} |")
    if results["connects"]:
        out.append("\n### Connecting readers\n")
        out.append("| system | readers | connect/s | failed | server RSS MiB | RSS per reader KB |\n"
                   "| --- | ---: | ---: | ---: | ---: | ---: |")
        for c in results["connects"]:
            per = c["rss_per_reader_bytes"]
            per_text = "-" if per is None else f"{per / 1000:.1f}"
            out.append(f"| {SYSTEM_LABEL[c['system']]} | {c['readers']:,} | {_fmt(c['connect_per_s'])} | "
                       f"{c['failed']} | {c['rss_bytes'] / 2**20:,.0f} | {per_text} |")
    if results["http"]:
        out.append("\n### HTTP\n")
        out.append("| endpoint | tool | connections | req/s | p50 ms | p99 ms | non-2xx | server CPU % |\n"
                   "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, h in results["http"].items():
            what = "ingest POST (acks=all)" if name == "ingest" else "history GET via gateway"
            out.append(f"| {what} | {h['tool']} | {h['connections']} | {_fmt(h['per_second'])} | "
                       f"{_fmt(h['p50_ms'], 1)} | {_fmt(h['p99_ms'], 1)} | {h['non_2xx']} | "
                       f"{_fmt(h['server_cpu_percent'])} |")
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
    best = best_rows(results["steps"])
    written: list[str] = []
    systems = [s for s in SYSTEM_ORDER if any(k[0] == s for k in best)]
    if not systems:
        return written
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in systems:
        rows = sorted((n, r) for (s, n), r in best.items() if s == system)
        ys = [r["writes_per_s"] if r["kind"] == "blast" else r["deliveries_per_s"] for _, r in rows]
        ax.plot([n for n, _ in rows], ys, marker="o", label=SYSTEM_LABEL[system],
                linestyle="--" if system == "ceiling" else "-")
    ax.set_xlabel("subscribers (WebSocket readers)")
    ax.set_ylabel("deliveries / s")
    bound = results["config"]["p99_bound_ms"]
    ax.set_title(f"Best deliveries/s with p99 <= {bound:g} ms (2 cores, generator included)")
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
    ax.set_title("Latency at each system's best step")
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
