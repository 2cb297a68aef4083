"""shared/metrics.py without a network: route labels stay templates, lag is end less position, names are ours."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.breaker import Breaker
from shared.metrics import (
    CONSUMER_LAG,
    HTTP_REQUESTS,
    METRIC_NAMES,
    REDIS_ERRORS,
    HttpMetricsMiddleware,
    LagGauge,
    LoopHistogram,
)


def count(service: str, route: str, method: str, status: str) -> float:
    return float(HTTP_REQUESTS.labels(service, route, method, status)._value.get())


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/v1/feeds/{feed}/items/{item_id}")
    async def item(feed: str, item_id: str) -> dict[str, str]:
        return {"feed": feed, "id": item_id}

    api.add_middleware(HttpMetricsMiddleware, service="unit")
    return api


def test_a_request_is_counted_under_its_route_template_not_its_path() -> None:
    route = "/v1/feeds/{feed}/items/{item_id}"
    before = count("unit", route, "GET", "200")
    with TestClient(app()) as client:
        assert client.get("/v1/feeds/world/items/abc").status_code == 200
        assert client.get("/v1/feeds/other/items/def").status_code == 200
    assert count("unit", route, "GET", "200") == before + 2
    labels = {sample.labels.get("route") for family in HTTP_REQUESTS.collect() for sample in family.samples}
    assert not any("world" in str(label) for label in labels)


def test_unmatched_paths_and_unknown_methods_share_bounded_labels() -> None:
    before_404 = count("unit", "unmatched", "GET", "404")
    before_other = count("unit", "/v1/feeds/{feed}/items/{item_id}", "other", "405")
    with TestClient(app()) as client:
        for n in range(5):
            assert client.get(f"/random/{n}").status_code == 404
        assert client.request("BREW", "/v1/feeds/world/items/abc").status_code == 405
    assert count("unit", "unmatched", "GET", "404") == before_404 + 5
    assert count("unit", "/v1/feeds/{feed}/items/{item_id}", "other", "405") == before_other + 1


def test_lag_is_end_less_position_and_forgets_unassigned_partitions() -> None:
    lag = LagGauge("unit-consumer")
    lag.update({0: 10, 1: 5, 2: None}, {0: 7, 1: 5})
    assert CONSUMER_LAG.labels("unit-consumer", "0")._value.get() == 3
    assert CONSUMER_LAG.labels("unit-consumer", "1")._value.get() == 0
    lag.update({1: 9}, {1: 8})
    shown = {sample.labels["partition"] for family in CONSUMER_LAG.collect() for sample in family.samples
             if sample.labels["service"] == "unit-consumer"}
    assert shown == {"1"}


def test_a_breaker_counts_each_redis_failure_under_its_service() -> None:
    errors = REDIS_ERRORS.labels("unit-breaker", "request")
    before = errors._value.get()
    breaker = Breaker(service="unit-breaker")
    breaker.failed(ConnectionError("refused"))
    breaker.failed(ConnectionError("refused"))
    assert errors._value.get() == before + 2


def test_every_name_has_the_livefeed_prefix() -> None:
    assert METRIC_NAMES
    assert all(name.startswith("livefeed_") for name in METRIC_NAMES)


def test_the_loop_histogram_exports_cumulative_buckets_count_and_sum() -> None:
    histogram = LoopHistogram("unit_seconds", "unit", buckets=(0.1, 1.0), registry=None)
    for amount in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(amount)
    samples = {(s.name, s.labels.get("le")): s.value for f in histogram.collect() for s in f.samples}
    assert samples[("unit_seconds_bucket", "0.1")] == 2, "le is inclusive"
    assert samples[("unit_seconds_bucket", "1.0")] == 3
    assert samples[("unit_seconds_bucket", "+Inf")] == 4
    assert samples[("unit_seconds_count", None)] == 4
    assert samples[("unit_seconds_sum", None)] == 3.65
