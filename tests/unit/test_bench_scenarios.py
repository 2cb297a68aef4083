"""The pure parts of issue 13's bench scenarios: the herd's reader check, percentiles, projection, report."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.fanout_workers import project
from benchmarks.herd import HerdReader, check_reader, percentile
from benchmarks.proctree import TreeClock
from benchmarks.scenario_report import scenario_markdown, scenario_targets

POSTED = [10, 11, 12, 13]


def reader(cursor: int | None, offsets: list[int], resets: int = 0, error: str = "") -> HerdReader:
    return HerdReader(index=0, cursor_offset=cursor, offsets=offsets, resets=resets, error=error)


def test_a_reader_passes_with_exactly_the_items_after_its_cursor_in_order() -> None:
    assert check_reader(reader(11, [12, 13]), POSTED) == ""
    assert check_reader(reader(9, POSTED), POSTED) == ""
    assert check_reader(reader(13, []), POSTED) == ""


def test_a_reader_fails_on_a_gap_a_duplicate_a_reordering_a_stranger_or_a_reset() -> None:
    assert check_reader(reader(11, [13]), POSTED) == "gap"
    assert check_reader(reader(11, [12, 12, 13]), POSTED) == "duplicate"
    assert check_reader(reader(11, [13, 12]), POSTED) == "out of order"
    assert check_reader(reader(11, [12, 13, 14]), POSTED) == "unexpected event"
    assert check_reader(reader(11, [12, 13], resets=1), POSTED) == "stream reset"
    assert check_reader(reader(None, []), POSTED) == "no cursor on the page"
    assert check_reader(reader(11, [], error="page answered 429"), POSTED) == "page answered 429"


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) is None


def test_the_projection_is_per_core_times_sixteen_and_says_nothing_without_a_figure() -> None:
    assert project(25_000.0, 10.0) == {"cores": 16, "deliveries_per_s": 400_000, "readers_at_rate": 40_000}
    assert project(None, 10.0)["deliveries_per_s"] is None


def test_a_tree_clock_counts_the_cpu_of_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                              "while time.process_time() < end: pass\ntime.sleep(5)"])
    try:
        clock = TreeClock(os.getpid())
        time.sleep(0.8)
        sample = clock.sample()
    finally:
        child.kill()
        child.wait(5)
    assert sample.children_cpu_s.get(child.pid, 0.0) > 0.1, sample
    assert sample.total_cpu_s >= sample.children_cpu_s[child.pid]


PAGES = {"path": "/feeds/x", "connections": 4, "seconds": 1.0, "ratio": 12.5, "modes_confirmed": True,
         **{mode: {"tool": "wrk", "per_second": rate, "p50_ms": 1.0, "p99_ms": 2.0, "non_2xx": 0, "errors": 0,
                   "history_cpu_percent": 50.0, "gateway_cpu_percent": 10.0, "cache_status": status}
            for mode, rate, status in (("uncached", 800.0, "MISS"), ("cached", 10_000.0, "HIT"))}}


def test_the_report_judges_the_page_ratio_by_the_samples_too() -> None:
    met = scenario_targets({"pages": PAGES})[0]
    assert met["met"] is True
    unconfirmed = scenario_targets({"pages": {**PAGES, "modes_confirmed": False}})[0]
    assert unconfirmed["met"] is False
    assert all(t["met"] is None for t in scenario_targets({}))


def test_the_report_has_a_section_per_scenario_that_ran_and_marks_the_projection_derived() -> None:
    workers = {"readers": 100, "rate_per_s": 10.0, "seconds": 1.0, "legs": [], "projection": {
        "cores": 16, "deliveries_per_s": 400_000, "readers_at_rate": 40_000, "basis_workers": 2,
        "per_core_deliveries_per_s": 25_000, "derived": True}}
    text = scenario_markdown({"pages": PAGES, "workers": workers})
    assert "### Reader page through the gateway" in text and "12.5x" in text
    assert "### Fanout worker processes" in text and "Derived, not measured" in text
    assert "share the same 2 cores" in text
    assert "### Herd" not in text
    assert scenario_markdown({}) == ""
