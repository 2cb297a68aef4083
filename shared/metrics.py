"""Every Prometheus metric livefeed exports, named and labelled here and nowhere else.

Each service serves them on its own port (``LIVEFEED_<SERVICE>_METRICS_PORT`` on
``LIVEFEED_METRICS_HOST``), never through the gateway: started by :func:`serve_metrics`. Every name
starts with ``livefeed_``; deploy/grafana/livefeed.json queries these names and a unit test
checks that it uses no other. Labels are bounded sets: a route's template, never its path; an
error's code, never its message.

Instrumentation stays off the fanout's per-reader loops: deliveries are counted once per
batch and the publish-to-delivery latency is observed once per event.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONSUMER_LAG",
    "FANOUT_DELIVERIES",
    "FANOUT_DROPS",
    "FANOUT_READERS",
    "FANOUT_REFUSED",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "METRIC_NAMES",
    "PRODUCE_SECONDS",
    "PUBLISH_TO_DELIVERY_SECONDS",
    "REDIS_ERRORS",
    "UNMATCHED_ROUTE",
    "HttpMetricsMiddleware",
    "LagGauge",
    "LoopHistogram",
    "route_template",
    "serve_metrics",
]

HTTP_REQUESTS = Counter(
    "livefeed_http_requests", "HTTP requests answered, by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "livefeed_http_request_duration_seconds", "Time to answer an HTTP request, by service, route template and method.",
    ["service", "route", "method"],
)
PRODUCE_SECONDS = Histogram(
    "livefeed_kafka_produce_duration_seconds",
    "Time from handing an event to the Kafka producer to its acknowledgement (or failure), by outcome.",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONSUMER_LAG = Gauge(
    "livefeed_kafka_consumer_lag", "Records in Kafka not yet consumed, per partition (updated each second).",
    ["service", "partition"],
)
REDIS_ERRORS = Counter(
    "livefeed_redis_errors", "Redis calls that failed or timed out, by service and operation.",
    ["service", "operation"],
)
FANOUT_READERS = Gauge("livefeed_fanout_readers", "Readers connected now, by transport (ws, sse).", ["transport"])
FANOUT_DELIVERIES = Counter(
    "livefeed_fanout_deliveries", "Events written to readers: one per event per reader it went to."
)
FANOUT_DROPS = Counter(
    "livefeed_fanout_drops", "Streams the fanout ended itself, by reason (slow_reader, or the reset's reason).",
    ["reason"],
)
FANOUT_REFUSED = Counter(
    "livefeed_fanout_refused_handshakes", "Stream requests refused before streaming, by transport and error code.",
    ["transport", "reason"],
)


class LoopHistogram(Collector):
    """A histogram for one thread's hot path: :meth:`observe` is a bisect and two additions, no lock.

    prometheus_client's Histogram takes a lock and walks its buckets on every observation
    (3.6 µs here); fanout observes once per event, so it keeps plain counts instead, which the
    scrape thread copies (a list copy is atomic under the GIL). Observe from one thread only.
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry | None = REGISTRY) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = [*sorted(buckets), math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        if registry is not None:
            registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total = list(self._counts), self._sum
        buckets = [("+Inf" if bound == math.inf else repr(bound), float(cumulative))
                   for bound, cumulative in zip(self._bounds, itertools.accumulate(counts), strict=True)]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


PUBLISH_TO_DELIVERY_SECONDS = LoopHistogram(
    "livefeed_fanout_publish_to_delivery_seconds",
    "From ingest accepting a write (the event's accepted_ms) to fanout writing it to its readers' sockets; "
    "the clocks of the two hosts must agree.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def _series_names(name: str, kind: str) -> tuple[str, ...]:
    """The names a metric's samples are exposed under (what a PromQL query can use)."""
    if kind == "counter":
        return (f"{name}_total", f"{name}_created")
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created")
    return (name,)


METRIC_NAMES = frozenset(
    series
    for metric in (HTTP_REQUESTS, HTTP_REQUEST_SECONDS, PRODUCE_SECONDS, CONSUMER_LAG, REDIS_ERRORS, FANOUT_READERS,
                   FANOUT_DELIVERIES, FANOUT_DROPS, FANOUT_REFUSED, PUBLISH_TO_DELIVERY_SECONDS)
    for family in metric.describe()
    for series in _series_names(family.name, family.type)
)
"""Every series name livefeed exports (``_total``, ``_bucket``… included): what a dashboard may query."""

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (a 404, or refused before routing)."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

for _transport in ("ws", "sse"):
    FANOUT_READERS.labels(_transport)


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/v1/feeds/{feed}/items``), not its raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """Counts and times every HTTP request of a FastAPI service by route template, method and status.

    Add it to the app (``app.add_middleware(HttpMetricsMiddleware, service="ingest")``): the
    router stores the matched route in the scope, read here after the answer.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(self.service, route, method).observe(time.perf_counter() - started)


class LagGauge:
    """One consumer's lag per partition: call :meth:`update` with each partition's end and next offset."""

    __slots__ = ("_shown", "service")

    def __init__(self, service: str) -> None:
        self.service = service
        self._shown: set[str] = set()

    def update(self, ends: Mapping[int, int | None], positions: Mapping[int, int]) -> None:
        """Set each partition's lag (``end - position``) and drop the partitions no longer in ``ends``.

        A partition whose end or position is not known yet keeps its last value.
        """
        shown = {str(partition) for partition in ends}
        for gone in self._shown - shown:
            CONSUMER_LAG.remove(self.service, gone)
        self._shown = shown
        for partition, end in ends.items():
            position = positions.get(partition)
            if end is not None and position is not None:
                CONSUMER_LAG.labels(self.service, str(partition)).set(max(0, end - position))


def serve_metrics(host: str, port: int, worker: int = 0) -> None:
    """Serve this process's metrics at ``http://host:port+worker/metrics`` from a daemon thread, for its life.

    Each worker process of a service (:mod:`shared.workers`) has its own counters, so worker i
    serves them on the service's metrics port plus i. Call it first thing in a service's ``main``,
    so the metrics can be scraped while the service still waits for Kafka. A port already taken
    raises here: a misconfigured service fails at start instead of running unobserved.
    """
    start_http_server(port + worker, addr=host)
