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

from .hub import Hub, ResetNeeded, ResetReason, Subscriber
from .sinks import RESET_CLOSE_CODE, SseSink, WsSink, deliver_coalesced
from .streams import (
    Encoded,
    HeadReader,
    RequestHead,
    StreamRequest,
    StreamRequestError,
    parse_stream_request,
    sse_chunk,
    ws_text_frame,
)

__all__ = ["Fanout"]

log = logging.getLogger("livefeed.fanout")

AHEAD_GRACE_S = 5.0
"""How long a reader may wait for Kafka to reach its cursor before it is told to reset."""
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
            hub = self.hub = Hub(epoch, buffer=settings.fanout_buffer, partition_of=feed_partitioner(len(partitions)),
                                 op_ttl_s=settings.idempotency_ttl_s)
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
                    for tp in tps:
                        end = consumer.highwater(tp)
                        if end is not None:
                            hub.note_end(tp.partition, end)
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
        """Keep idle streams alive, and reset readers whose cursor Kafka never reached."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if self.hub is not None:
                for sub in self.hub.overdue(now=loop.time(), grace=AHEAD_GRACE_S):
                    self._sinks.discard(sub.sink)
                    sub.sink.reset(reset_message(sub.feed, ResetReason.cursor_ahead.value, None))
            for sink in list(self._sinks):
                sink.heartbeat()

    def _check_ws(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse a bad stream request before the upgrade, with a JSON body naming the field.

        It keeps nothing: websockets may still refuse the handshake after this (Origin, Upgrade)
        without calling the handler, so :meth:`_serve_ws` reads the request again from ``conn``.
        """
        if request.path == "/healthz":
            return _json_response(200, {"status": "ok", "readers": self.hub.subscribers if self.hub else 0})
        try:
            parse_stream_request(request.path, "stream")
        except StreamRequestError as exc:
            return _json_response(exc.status, _error_body("bad_stream_request", exc.message, exc.field))
        if self.hub is not None and self.hub.subscribers >= self.settings.fanout_max_clients:
            return _json_response(503, _FULL)
        return None

    async def _serve_ws(self, conn: ServerConnection) -> None:
        """Stream to one upgraded reader until it leaves."""
        hub = self.hub
        request = _accepted_stream(conn)
        if hub is None or request is None:
            await conn.close(1011, "not ready")
            return
        sink = WsSink(conn, self.settings.fanout_queue_limit)
        try:
            sub, replay, position = hub.subscribe(request.feed, request.since, request.tags, sink,
                                                    now=asyncio.get_running_loop().time())
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
        """Stream to one SSE reader until it leaves; a bad or slow request head gets a JSON answer naming the field."""
        sub: Subscriber | None = None
        sink: SseSink | None = None
        try:
            try:
                head = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT_S)
            except TimeoutError:
                return await _answer(reader, writer, 408, _SLOW_HEAD)
            if head is None:
                return None
            if head.method != "GET":
                return await _answer(reader, writer, 405, _error_body("method_not_allowed", "Use GET.", "method"))
            origin = head.headers.get("origin")
            if origin is not None and origin not in self.settings.allowed_origins:
                return await _answer(reader, writer, 403, _FOREIGN_ORIGIN)
            if head.target == "/healthz":
                return await _answer(reader, writer, 200, {"status": "ok"})
            request = parse_stream_request(head.target, "events", head.headers.get("last-event-id"))
            hub = self.hub
            if hub is None:
                return await _answer(reader, writer, 503, _NOT_READY)
            if hub.subscribers >= self.settings.fanout_max_clients:
                return await _answer(reader, writer, 503, _FULL)
            sink = SseSink(writer.transport, self.settings.fanout_queue_limit)
            try:
                sub, replay, position = hub.subscribe(request.feed, request.since, request.tags, sink,
                                                    now=asyncio.get_running_loop().time())
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
            await _answer(reader, writer, exc.status, _error_body("bad_stream_request", exc.message, exc.field))
        except ConnectionError:
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
_NOT_READY = _error_body("not_ready", "Starting; retry shortly.", "connection")

HEAD_TIMEOUT_S = 10.0
"""A whole SSE request head must arrive within this (slowloris bound); browsers and nginx send it at once."""
LINGER_S = 2.0
LINGER_BYTES = 65536
"""After an answer to a refused request, read and drop at most this much for at most LINGER_S: closing
with unread input sends a TCP reset, which can destroy the answer before the client reads it."""
_SLOW_HEAD = _error_body(
    "request_timeout", f"The request head did not arrive within {HEAD_TIMEOUT_S:g} s.", "headers"
)


def _accepted_stream(conn: ServerConnection) -> StreamRequest | None:
    """The stream a completed handshake asked for, parsed again from the request websockets keeps on ``conn``."""
    if conn.request is None:
        return None
    try:
        return parse_stream_request(conn.request.path, "stream")
    except StreamRequestError:
        return None


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


async def _read_head(reader: asyncio.StreamReader) -> RequestHead | None:
    """The SSE request head, never reading past the head limit; ``None`` if the peer left before finishing it."""
    head_reader = HeadReader()
    while head_reader.room > 0:
        data = await reader.read(head_reader.room)
        if not data:
            return None
        head = head_reader.feed(data)
        if head is not None:
            return head
    return None


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                  body: dict[str, Any]) -> None:
    """Send a final JSON answer, then half-close and drain (bounded) so the peer gets to read it.

    The caller closes the connection afterwards.
    """
    _write_json(writer, status, body)
    if writer.can_write_eof():
        writer.write_eof()
    drained = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_S):
            while drained < LINGER_BYTES and (chunk := await reader.read(LINGER_BYTES)):
                drained += len(chunk)
