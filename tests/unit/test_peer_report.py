"""benchmarks/peer_report.py: each peer's figures beside livefeed's, with where livefeed leads and trails."""

from __future__ import annotations

from typing import Any

from benchmarks.peer_report import peer_figures, peer_markdown
from benchmarks.report import SYSTEM_LABEL, SYSTEM_ORDER, best_rows


def _step(system: str, rate: float, dps: float, p99: float, cpu: float, lost: int = 0) -> dict[str, Any]:
    return {"system": system, "kind": "broadcast", "readers": 1000, "rate_per_s": rate, "deliveries_per_s": dps,
            "p99_ms": p99, "server_cpu_percent": cpu, "lost": lost, "disconnects": 0, "post_failures": 0}


def _connect(system: str, per_s: float, per_reader: int) -> dict[str, Any]:
    return {"system": system, "readers": 1000, "connect_per_s": per_s, "rss_per_reader_bytes": per_reader}


RESULTS: dict[str, Any] = {
    "config": {"p99_bounds_ms": [100.0, 1000.0]},
    "steps": [
        _step("livefeed", 10, 10_000, 40, 10), _step("livefeed", 20, 20_000, 90, 20),
        _step("livefeed", 40, 30_000, 2_000, 30),
        _step("centrifugo", 10, 10_000, 20, 25), _step("centrifugo", 20, 19_000, 500, 50, lost=3),
    ],
    "connects": [_connect("livefeed", 1_000, 15 * 1024), _connect("centrifugo", 3_000, 50 * 1024)],
}


def test_each_figure_comes_from_the_best_lossless_step_within_the_largest_bound_and_the_lowest_rate() -> None:
    figures = peer_figures(RESULTS, best_rows)
    assert figures[("livefeed", 1000)] == {"deliveries_per_s": 20_000, "cpu_per_10k": 10.0,
                                           "rss_per_reader_kb": 15.0, "connect_per_s": 1_000, "trickle_p99_ms": 40}
    assert figures[("centrifugo", 1000)]["deliveries_per_s"] == 10_000  # the 19,000/s step lost deliveries
    assert figures[("centrifugo", 1000)]["cpu_per_10k"] == 25.0


def test_the_section_says_where_livefeed_leads_and_where_it_trails() -> None:
    text = "\n".join(peer_markdown(RESULTS, best_rows, SYSTEM_LABEL, SYSTEM_ORDER))
    assert "| Centrifugo (Go) | 1,000 | 10,000 | 25.0 | 50.0 | 3,000 | 20 |" in text
    assert ("vs Centrifugo (Go) at 1,000 readers: livefeed leads on deliveries/s 2.0x, CPU per delivery 2.5x, "
            "memory per reader 3.3x; trails on connect rate 3.0x, p99 at a trickle 2.0x.") in text
    assert "bridge" in text


def test_no_section_without_a_peer() -> None:
    alone = {**RESULTS, "steps": [s for s in RESULTS["steps"] if s["system"] == "livefeed"]}
    assert peer_markdown(alone, best_rows, SYSTEM_LABEL, SYSTEM_ORDER) == []
