"""deploy/grafana/livefeed.json queries only series shared/metrics.py defines, and shows every one of them.

A renamed metric would otherwise leave an empty panel that nobody notices until an incident.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shared.metrics import METRIC_NAMES

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "livefeed.json"
SERIES = re.compile(r"\blivefeed_[a-z0-9_]+")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def families(names: set[str] | frozenset[str]) -> set[str]:
    """Series names without the suffixes Prometheus adds (``_total``, ``_bucket``…)."""
    return {re.sub(r"_(total|created|bucket|count|sum)$", "", name) for name in names}


def test_every_query_uses_only_series_livefeed_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in expressions(dashboard) for name in SERIES.findall(expr)}
    assert used, "no livefeed_ series in the dashboard's queries"
    assert used <= METRIC_NAMES, f"not in shared/metrics.py: {sorted(used - METRIC_NAMES)}"


def test_every_metric_has_a_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in expressions(dashboard) for name in SERIES.findall(expr)}
    assert families(METRIC_NAMES) - families(used) == set()


def test_the_check_catches_a_misspelt_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["targets"][0]["expr"] = "rate(livefeed_http_request_total[1m])"
    used = {name for expr in expressions(dashboard) for name in SERIES.findall(expr)}
    assert used - METRIC_NAMES == {"livefeed_http_request_total"}


def test_every_panel_has_a_unique_id_and_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel.get("targets") for panel in dashboard["panels"])
