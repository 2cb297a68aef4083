"""The fanout service: Kafka in, every reader's WebSocket or SSE stream out.

It reads every partition itself (no consumer group: each instance sees every event), feeds
the :class:`~services.fanout.hub.Hub`, and writes what the hub returns. At start it reads back
``LIVEFEED_FANOUT_WARMUP`` events per partition so reconnecting readers can resume, and opens
its ports only once it has caught up, so a new reader never receives old events as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from typing import Any

import orjson
from aiokafka import TopicPartition
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from shared.kafka import feed_partitioner, make_consumer, read_topic_epoch, topic_partitions, wait_for_kafka
from shared.settings import FanoutSettings
from shared.wire import Event, WireError, hello_message, reset_message

from .hub import Hub, ResetNeeded, Subscriber
from .sinks import SseSink, WsSink, deliver_coalesced
from .streams import Encoded, StreamRequest, StreamRequestError, parse_stream_request, sse_chunk, ws_text_frame

__all__ = ["Fanout"]

log = logging.getLogger("livefeed.fanout")

RESET_CLOSE_CODE = 4000
COALESCE_MAX = 64  # events written to a reader in one write at most: bounds the batch's memory
SSE_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache, no-store\r\n"
    b"X-Accel-Buffering: no\r\n"
    b"Connection: close\r\n\r\n"
    b"retry: 1000\n\n"
)


class Fanout:
    def __init__(self, settings: FanoutSettings) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.ready = asyncio.Event()
        self._requests: dict[ServerConnection, StreamRequest] = {}
        self._sinks: set[WsSink | SseSink] = set()

    async def run(self) -> None:
        """Consume and serve until cancelled."""
        settings = self.settings
        await wait_for_kafka(settings)
        epoch = await read_topic_epoch(settings)
        consumer = make_consumer(settings, group_id=None)
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, settings.topic)
            hub = self.hub = Hub(epoch, buffer=settings.fanout_buffer, partition_of=feed_partitioner(len(partitions)))
            tps = [TopicPartition(settings.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            for tp in tps:
                start = max(begins[tp], ends[tp] - settings.fanout_warmup)
                consumer.seek(tp, start)
                hub.start_partition(tp.partition, start)
            log.info("fanout warming up", extra={"epoch": epoch, "partitions": len(tps)})
            caught_up: dict[TopicPartition, int] | None = {
                tp: ends[tp] for tp in tps if ends[tp] > max(begins[tp], ends[tp] - settings.fanout_warmup)
            }
            servers: list[Server | asyncio.Server] = []
            heartbeat: asyncio.Task[None] | None = None
            try:
                while True:
                    if caught_up is not None and not caught_up:
                        caught_up = None
                        servers = await self._open(hub)
                        heartbeat = asyncio.create_task(self._heartbeat())
                        self.ready.set()
                    batches = await consumer.getmany(timeout_ms=100)
                    deliveries: list[tuple[Encoded, list[Subscriber]]] = []
                    for tp, records in batches.items():
                        partition = tp.partition
                        for record in records:
                            try:
                                event = Event.parse(record.value)
                            except WireError:
                                log.error("skipping a record that is not a livefeed event",
                                          extra={"partition": partition, "offset": record.offset})
                                continue
                            delivery = hub.publish(partition, record.offset, event)
                            if delivery.recipients:
                                deliveries.append((delivery.message, delivery.recipients))
                                if len(deliveries) >= COALESCE_MAX:
                                    deliver_coalesced(deliveries)
                                    deliveries = []
                        if caught_up and records and records[-1].offset + 1 >= caught_up.get(tp, 0):
                            caught_up.pop(tp, None)
                    if deliveries:
                        deliver_coalesced(deliveries)
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                for server in servers:
                    server.close()
                for server in servers:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(server.wait_closed(), 5)
        finally:
            await consumer.stop()

    async def _open(self, hub: Hub) -> list[Server | asyncio.Server]:
        settings = self.settings
        ws = await serve(
            self._serve_ws,
            settings.fanout_host,
            settings.fanout_port,
            process_request=self._check_ws,
            origins=[*(Origin(o) for o in settings.allowed_origins), None],
            compression=None,
            max_size=4096,
            max_queue=4,
            ping_interval=settings.heartbeat_s,
            ping_timeout=settings.heartbeat_s,
            server_header=None,
            backlog=4096,
        )
        sse = await asyncio.start_server(
            self._serve_sse, settings.fanout_host, settings.fanout_sse_port, limit=16384, backlog=1024
        )
        log.info("fanout ready", extra={"ws_port": settings.fanout_port, "sse_port": settings.fanout_sse_port,
                                        "feeds": hub.feeds()})
        return [ws, sse]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            for sink in list(self._sinks):
                sink.heartbeat()

    def _check_ws(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse a bad stream request before the upgrade, with a JSON body naming the field."""
        if request.path == "/healthz":
            return _json_response(200, {"status": "ok", "readers": self.hub.subscribers if self.hub else 0})
        try:
            parsed = parse_stream_request(request.path, "stream")
        except StreamRequestError as exc:
            return _json_response(exc.status, _error_body("bad_stream_request", exc.message, exc.field))
        if self.hub is not None and self.hub.subscribers >= self.settings.fanout_max_clients:
            return _json_response(503, _FULL)
        self._requests[conn] = parsed
        return None

    async def _serve_ws(self, conn: ServerConnection) -> None:
        hub = self.hub
        request = self._requests.pop(conn, None)
        if hub is None or request is None:
            await conn.close(1011, "not ready")
            return
        sink = WsSink(conn, self.settings.fanout_queue_limit)
        try:
            sub, replay, position = hub.subscribe(request.feed, request.since, request.tags, sink)
        except ResetNeeded as exc:
            await conn.send(reset_message(request.feed, exc.reason.value, None).decode())
            await conn.close(RESET_CLOSE_CODE, "reset: reload history")
            return
        self._sinks.add(sink)
        try:
            sink.write(ws_text_frame(hello_message(request.feed, position)))
            for encoded in replay:
                sink.deliver(encoded)
            async for _ in conn:
                pass
        except ConnectionClosed:
            pass
        finally:
            self._leave(sub, sink)

    async def _serve_sse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sub: Subscriber | None = None
        sink: SseSink | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line, headers = _parse_head(head)
            method, target = request_line[0], request_line[1]
            if method != "GET":
                return _write_json(writer, 405, _error_body("method_not_allowed", "Use GET.", "method"))
            origin = headers.get("origin")
            if origin is not None and origin not in self.settings.allowed_origins:
                return _write_json(writer, 403, _FOREIGN_ORIGIN)
            if target == "/healthz":
                return _write_json(writer, 200, {"status": "ok"})
            request = parse_stream_request(target, "events", headers.get("last-event-id"))
            hub = self.hub
            if hub is None:
                return _write_json(writer, 503, _error_body("not_ready", "Starting; retry shortly.", "connection"))
            if hub.subscribers >= self.settings.fanout_max_clients:
                return _write_json(writer, 503, _FULL)
            sink = SseSink(writer.transport, self.settings.fanout_queue_limit)
            try:
                sub, replay, position = hub.subscribe(request.feed, request.since, request.tags, sink)
            except ResetNeeded as exc:
                reset = reset_message(request.feed, exc.reason.value, None)
                writer.write(SSE_HEADERS + sse_chunk(reset, event="reset"))
                return None
            self._sinks.add(sink)
            writer.write(SSE_HEADERS + sse_chunk(hello_message(request.feed, position), event="hello"))
            for encoded in replay:
                sink.deliver(encoded)
            while await reader.read(1024):
                pass
        except StreamRequestError as exc:
            _write_json(writer, exc.status, _error_body("bad_stream_request", exc.message, exc.field))
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            if sub is not None and sink is not None:
                self._leave(sub, sink)
            writer.close()
        return None

    def _leave(self, sub: Subscriber, sink: WsSink | SseSink) -> None:
        self._sinks.discard(sink)
        if self.hub is not None:
            self.hub.unsubscribe(sub)


def _error_body(code: str, message: str, field: str) -> dict[str, Any]:
    return {"error": code, "message": message, "fields": [{"field": field, "message": message}]}


_FULL = _error_body("too_many_readers", "This fanout is full; retry shortly.", "connection")
_FOREIGN_ORIGIN = _error_body("origin_not_allowed", "This Origin may not open a stream.", "Origin")


def _json_response(status: int, body: dict[str, Any]) -> Response:
    payload = orjson.dumps(body)
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                       ("Connection", "close")])
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


def _write_json(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    writer.write(
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload
    )


def _parse_head(head: bytes) -> tuple[list[str], dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3:
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return request_line, headers
