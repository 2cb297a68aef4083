"""livefeed against each peer, figure by figure: where it leads and where it does not.

The broadcast table ranks deliveries/s only; a peer users would pick instead (Centrifugo) can
trail there and still lead on connect rate or latency at a trickle, so each peer gets the same
five figures from the same run, each compared with livefeed's at the same reader count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BestRows = Callable[[list[dict[str, Any]], float], dict[tuple[str, int], dict[str, Any]]]
__all__ = ["peer_figures", "peer_markdown"]

# (key, column, short name, format, higher is better)
_FIGURES = (
    ("deliveries_per_s", "deliveries/s within the largest p99 bound", "deliveries/s", ",.0f", True),
    ("cpu_per_10k", "server CPU % per 10k deliveries/s", "CPU per delivery", ".1f", False),
    ("rss_per_reader_kb", "RSS per idle reader, KB", "memory per reader", ".1f", False),
    ("connect_per_s", "connects/s", "connect rate", ",.0f", True),
    ("trickle_p99_ms", "p99 ms at the lowest rate", "p99 at a trickle", ",.0f", False),
)
_BRIDGED = {"centrifugo": "Centrifugo's CPU and RSS are its own process's; the Python bridge that feeds it from Kafka "
                          "(its log gives its CPU) is not counted, and its hop is inside Centrifugo's latency."}


def peer_figures(results: dict[str, Any], best_rows: BestRows) -> dict[tuple[str, int], dict[str, float | None]]:
    """Per (system, readers) of the broadcast scenario: the five compared figures (None where not measured).

    ``best_rows`` is ``report.best_rows`` (passed in: the report imports this module).
    """
    steps: list[dict[str, Any]] = results["steps"]
    bound = max(results["config"]["p99_bounds_ms"])
    best = best_rows(steps, bound)
    connects = {(c["system"], c["readers"]): c for c in results["connects"]}
    out: dict[tuple[str, int], dict[str, float | None]] = {}
    for row in steps:
        if row["kind"] != "broadcast":
            continue
        key = (row["system"], row["readers"])
        lowest = min((s for s in steps if s["kind"] == "broadcast" and (s["system"], s["readers"]) == key),
                     key=lambda s: s["rate_per_s"])
        top = best.get(key)
        connect = connects.get(key, {})
        per_reader = connect.get("rss_per_reader_bytes")
        out[key] = {
            "deliveries_per_s": top["deliveries_per_s"] if top else None,
            "cpu_per_10k": round(top["server_cpu_percent"] / top["deliveries_per_s"] * 10_000, 2)
            if top and top["deliveries_per_s"] and top["server_cpu_percent"] else None,
            "rss_per_reader_kb": round(per_reader / 1024, 1) if per_reader else None,
            "connect_per_s": connect.get("connect_per_s"),
            "trickle_p99_ms": lowest["p99_ms"],
        }
    return out


def peer_markdown(
    results: dict[str, Any], best_rows: BestRows, labels: dict[str, str], order: list[str]
) -> list[str]:
    """The section's markdown lines: one table, then per peer and reader count where livefeed leads and trails."""
    figures = peer_figures(results, best_rows)
    keys = sorted(figures, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[1]))
    if not any(system != "livefeed" for system, _ in keys):
        return []
    out = ["\n### livefeed against each peer: where it leads and where it does not\n",
           *(f"{note}\n" for system, note in _BRIDGED.items() if any(k[0] == system for k in keys)),
           "| system | readers | " + " | ".join(column for _, column, _, _, _ in _FIGURES) + " |",
           "| --- | ---: | " + " | ".join("---:" for _ in _FIGURES) + " |"]
    for system, n in keys:
        row = figures[(system, n)]
        cells = ["-" if row[k] is None else format(row[k], spec) for k, _, _, spec, _ in _FIGURES]
        out.append(f"| {labels.get(system, system)} | {n:,} | " + " | ".join(cells) + " |")
    for system, n in keys:
        mine = figures.get(("livefeed", n))
        if system == "livefeed" or mine is None:
            continue
        leads: list[str] = []
        trails: list[str] = []
        for key, _, label, _, higher in _FIGURES:
            ours, theirs = mine[key], figures[(system, n)][key]
            if not ours or not theirs:
                continue
            factor = ours / theirs if higher else theirs / ours
            (leads if factor >= 1.0 else trails).append(f"{label} {max(factor, 1 / factor):.1f}x")
        out.append(f"\nvs {labels.get(system, system)} at {n:,} readers: livefeed leads on "
                   f"{', '.join(leads) or 'nothing measured'}; trails on {', '.join(trails) or 'nothing measured'}.")
    return out
