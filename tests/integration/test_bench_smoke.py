"""Issue 6's benchmark harness, run for a few seconds against the test stack: does it work?

Only the harness is checked (readers connect, events are delivered and counted, the result
files are written); no figure is asserted, because CI's machine is shared and timing is noise.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.run import main
from deploy.stack import Stack

READERS = 300


def test_a_short_benchmark_connects_readers_counts_deliveries_and_writes_results(
    stack: Stack, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    assert stack.token is not None
    code = main([
        "--url", stack.topology.base_url,
        "--token", stack.token,
        "--systems", "livefeed,naive,ceiling",
        "--scenarios", "broadcast,http",
        "--readers", str(READERS),
        "--per-process", "150",
        "--step-seconds", "1",
        "--max-steps", "1",
        "--start-dps", "3000",
        "--http-seconds", "1",
        "--http-connections", "4",
        "--http-tool", "python",
        "--out", str(out),
        "--quiet",
    ])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().startswith("# Benchmark results")

    connects = {c["system"]: c for c in results["connects"]}
    assert set(connects) == {"livefeed", "naive", "ceiling"}
    for connect in connects.values():
        assert connect["readers"] == READERS, connect
        assert connect["failed"] == 0, connect

    for system in ("livefeed", "naive"):
        step = next(s for s in results["steps"] if s["system"] == system)
        assert step["acked"] > 0, step
        assert step["expected"] == step["acked"] * READERS
        assert step["deliveries"] == step["expected"], step
        assert step["p99_ms"] is not None
        assert step["generator_processes"] == 2

    blast = next(s for s in results["steps"] if s["system"] == "ceiling")
    assert blast["frames_written"] > 0 and blast["deliveries"] > 0

    assert results["http"]["ingest"]["requests"] > 0
    assert results["http"]["history"]["requests"] > 0
    names = {t["target"] for t in results["targets"]}
    assert "readers on one fanout" in names
    assert any(name.startswith("deliveries/s from one fanout") for name in names)


def test_the_pages_herd_and_workers_scenarios_run_and_report(stack: Stack, tmp_path: Path) -> None:
    """Tiny versions of issue 13's scenarios: each runs, checks what it must, and has its section."""
    out = tmp_path / "bench13"
    code = main([
        "--scenarios", "pages,herd,workers",
        "--readers", "100",
        "--per-process", "100",
        "--http-seconds", "1",
        "--pages-connections", "4",
        "--http-tool", "python",
        "--herd-readers", "50",
        "--herd-seconds", "2",
        "--workers-readers", "100",
        "--workers-seconds", "1",
        "--out", str(out),
        "--quiet",
    ], given_stack=stack)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    markdown = (out / "results.md").read_text()

    pages = results["pages"]
    for mode in ("uncached", "cached"):
        assert pages[mode]["requests"] > 0, pages
        assert pages[mode]["cache_status"], pages
    assert "### Reader page through the gateway" in markdown

    herd = results["herd"]
    assert herd["readers"] == 50
    assert herd["items_posted"] > 0
    assert herd["failed_readers"] == 0, (herd["failures"], herd["errors"], herd["page_cache_status"])
    assert herd["delivered"] == herd["expected_deliveries"] > 0
    assert herd["page_p99_ms"] is not None and herd["live_p99_ms"] is not None
    assert "### Herd" in markdown

    legs = results["workers"]["legs"]
    assert [leg["workers"] for leg in legs] == [1, 2]
    for leg in legs:
        assert leg["readers"] == 100 and leg["deliveries"] == leg["expected"] > 0, leg
        assert leg["fanout_cpu_s"] > 0, leg
    assert results["workers"]["projection"]["derived"] is True
    assert "### Fanout worker processes" in markdown
    assert not any(s["kind"].startswith("workers") for s in results["steps"])
