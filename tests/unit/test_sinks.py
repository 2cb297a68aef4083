"""Writing to readers without sockets: coalesced batches, shared buffers, order, and slow-reader drops.

The sinks are the real ones; only the transport (and a WebSocket connection's state) is a recording
fake of the few calls a sink makes.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from services.fanout.hub import Subscriber
from services.fanout.sinks import REAUTH_CLOSE_CODE, RESET_CLOSE_CODE, SseSink, WsSink, deliver_coalesced
from services.fanout.streams import Encoded
from shared.cursor import Cursor

LIMIT = 1000


class Transport:
    """Records writes; ``stalled`` keeps them pending, as when the peer does not read."""

    def __init__(self, pending: int = 0, *, stalled: bool = False) -> None:
        self.pending = pending
        self.stalled = stalled
        self.writes: list[bytes] = []
        self.aborted = False
        self.closed = False

    def get_write_buffer_size(self) -> int:
        return self.pending

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self.stalled:
            self.pending += len(data)

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def abort(self) -> None:
        self.aborted = True
        self.pending = 0

    def close(self) -> None:
        self.closed = True


class Protocol:
    def __init__(self) -> None:
        self.state = State.OPEN


class Connection:
    """The parts of a websockets ServerConnection a WsSink touches."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.protocol = Protocol()
        self.closed_with: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def ws_reader(pending: int = 0, *, stalled: bool = False) -> tuple[Subscriber, Transport]:
    transport = Transport(pending, stalled=stalled)
    sink = WsSink(cast(ServerConnection, Connection(transport)), LIMIT)
    return Subscriber("world", None, sink, -1), transport


def sse_reader(pending: int = 0, *, stalled: bool = False) -> tuple[Subscriber, Transport]:
    transport = Transport(pending, stalled=stalled)
    sink = SseSink(cast(Any, transport), LIMIT)
    return Subscriber("world", None, sink, -1), transport


def messages(*offsets: int) -> list[Encoded]:
    return [Encoded(orjson.dumps({"type": "item.published", "n": n}), Cursor("abc", 0, n)) for n in offsets]


def ws_numbers(data: bytes) -> list[int]:
    """The ``n`` of each unmasked text frame in ``data``, decoded independently of the sink."""
    numbers = []
    while data:
        assert data[0] == 0x81, "a final, unmasked text frame"
        length, start = data[1], 2
        if length == 126:
            (length,), start = struct.unpack("!H", data[2:4]), 4
        numbers.append(orjson.loads(data[start:start + length])["n"])
        data = data[start + length:]
    return numbers


def sse_numbers(data: bytes) -> list[tuple[str, int]]:
    """The ``(id, n)`` of each Server-Sent Event in ``data``."""
    events = []
    for block in data.decode().split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["id"], orjson.loads(fields["data"])["n"]))
    assert data.endswith(b"\n\n")
    return events


# One write per reader


def test_one_event_is_one_write_to_each_of_its_readers() -> None:
    (a, ta), (b, tb) = ws_reader(), sse_reader()
    deliver_coalesced([(messages(7)[0], [a, b])])
    assert [ws_numbers(w) for w in ta.writes] == [[7]]
    assert [sse_numbers(w) for w in tb.writes] == [[("abc.0.7", 7)]]


def test_a_batch_of_events_is_one_write_per_reader_in_order() -> None:
    (a, ta), (b, tb) = ws_reader(), sse_reader()
    batch = messages(1, 2, 3, 4)
    deliver_coalesced([(m, [a, b]) for m in batch])
    assert len(ta.writes) == 1 and ws_numbers(ta.writes[0]) == [1, 2, 3, 4]
    assert len(tb.writes) == 1
    assert sse_numbers(tb.writes[0]) == [("abc.0.1", 1), ("abc.0.2", 2), ("abc.0.3", 3), ("abc.0.4", 4)]


def test_each_reader_gets_only_its_events_in_batch_order() -> None:
    (a, ta), (b, tb), (c, tc), (_, td) = ws_reader(), ws_reader(), sse_reader(), ws_reader()
    m1, m2, m3, m4 = messages(1, 2, 3, 4)
    deliver_coalesced([(m1, [a, b]), (m2, [b, c]), (m3, [a, c]), (m4, [a, b, c])])
    assert [ws_numbers(w) for w in ta.writes] == [[1, 3, 4]]
    assert [ws_numbers(w) for w in tb.writes] == [[1, 2, 4]]
    assert [[n for _, n in sse_numbers(w)] for w in tc.writes] == [[2, 3, 4]]
    assert td.writes == []


def test_a_reader_with_one_event_in_a_batch_gets_that_frame_alone() -> None:
    (a, ta), (b, tb) = ws_reader(), sse_reader()
    m1, m2 = messages(1, 2)
    deliver_coalesced([(m1, [a]), (m2, [b])])
    assert ta.writes == [m1.ws()]
    assert tb.writes == [m2.sse()]


# Shared buffers


def test_readers_with_the_same_events_share_one_joined_buffer() -> None:
    readers = [ws_reader() for _ in range(3)]
    batch = messages(1, 2, 3)
    deliver_coalesced([(m, [r for r, _ in readers]) for m in batch])
    first, second, third = (t.writes[0] for _, t in readers)
    assert first is second is third


def test_each_stream_kind_gets_its_own_encoding_of_the_same_events() -> None:
    (w1, t1), (w2, t2), (s1, t3), (s2, t4) = ws_reader(), ws_reader(), sse_reader(), sse_reader()
    batch = messages(5, 6)
    deliver_coalesced([(m, [w1, s1, w2, s2]) for m in batch])
    assert t1.writes[0] is t2.writes[0]
    assert t3.writes[0] is t4.writes[0]
    assert ws_numbers(t1.writes[0]) == [5, 6]
    assert [n for _, n in sse_numbers(t3.writes[0])] == [5, 6]


def test_readers_with_different_events_do_not_share_a_buffer() -> None:
    (a, ta), (b, tb) = ws_reader(), ws_reader()
    m1, m2, m3 = messages(1, 2, 3)
    deliver_coalesced([(m1, [a, b]), (m2, [a]), (m3, [a, b])])
    assert ws_numbers(ta.writes[0]) == [1, 2, 3]
    assert ws_numbers(tb.writes[0]) == [1, 3]


def test_each_event_is_encoded_once_for_all_its_readers() -> None:
    readers = [ws_reader() for _ in range(4)]
    (m,) = messages(9)
    deliver_coalesced([(m, [r for r, _ in readers])])
    frames = [t.writes[0] for _, t in readers]
    assert all(frame is frames[0] for frame in frames)


def test_a_large_event_is_framed_with_a_16_bit_length() -> None:
    (a, ta) = ws_reader()
    big = Encoded(orjson.dumps({"n": 1, "pad": "x" * 500}), Cursor("abc", 0, 1))
    deliver_coalesced([(big, [a]), (messages(2)[0], [a])])
    assert ws_numbers(ta.writes[0]) == [1, 2]


# Slow readers


def test_a_reader_over_the_limit_is_dropped_and_the_others_still_get_the_batch() -> None:
    (slow, ts), (fast, tf) = sse_reader(pending=LIMIT + 1), sse_reader()
    before = SseSink.dropped
    deliver_coalesced([(m, [slow, fast]) for m in messages(1, 2)])
    assert ts.aborted and ts.writes == []
    assert SseSink.dropped == before + 1
    assert [n for _, n in sse_numbers(tf.writes[0])] == [1, 2]


def test_a_websocket_reader_over_the_limit_is_aborted() -> None:
    (slow, ts), (fast, tf) = ws_reader(pending=LIMIT + 1), ws_reader()
    before = WsSink.dropped
    deliver_coalesced([(m, [slow, fast]) for m in messages(1, 2)])
    assert ts.aborted and ts.writes == []
    assert WsSink.dropped == before + 1
    assert ws_numbers(tf.writes[0]) == [1, 2]


def test_a_reader_exactly_at_the_limit_is_still_written_to() -> None:
    (ws, tw), (sse, ts) = ws_reader(pending=LIMIT), sse_reader(pending=LIMIT)
    deliver_coalesced([(m, [ws, sse]) for m in messages(1, 2)])
    assert not tw.aborted and len(tw.writes) == 1
    assert not ts.aborted and len(ts.writes) == 1


def test_a_reader_that_stops_reading_is_dropped_once_its_backlog_passes_the_limit() -> None:
    reader, transport = ws_reader(stalled=True)
    batches = 0
    while not transport.aborted and batches < 1000:
        deliver_coalesced([(m, [reader]) for m in messages(1, 2, 3)])
        batches += 1
    assert transport.aborted
    written = sum(len(w) for w in transport.writes)
    assert LIMIT < written <= LIMIT + len(transport.writes[0])


def test_a_closed_reader_is_skipped_without_counting_a_drop() -> None:
    (ws, tw), (sse, ts) = ws_reader(), sse_reader()
    cast(Connection, cast(WsSink, ws.sink).conn).protocol.state = State.CLOSING
    ts.closed = True
    dropped = (WsSink.dropped, SseSink.dropped)
    deliver_coalesced([(m, [ws, sse]) for m in messages(1, 2)])
    assert tw.writes == [] and ts.writes == []
    assert (WsSink.dropped, SseSink.dropped) == dropped


# Heartbeats and resets


def test_heartbeats_are_a_frame_on_websockets_and_a_comment_on_sse() -> None:
    (ws, tw), (sse, ts) = ws_reader(), sse_reader()
    ws.sink.heartbeat()
    sse.sink.heartbeat()
    assert tw.writes == [b"\x81\x14" + b'{"type":"heartbeat"}']
    assert ts.writes == [b": heartbeat\n\n"]


def test_an_sse_reset_sends_a_reset_event_then_ends_the_stream() -> None:
    sse, transport = sse_reader()
    sse.sink.reset(b'{"type":"reset"}')
    assert transport.writes == [b'event: reset\ndata: {"type":"reset"}\n\n']
    assert transport.closed


async def test_a_websocket_reset_sends_the_message_then_closes_with_the_reset_code() -> None:
    ws, transport = ws_reader()
    ws.sink.reset(b'{"type":"reset"}')
    assert transport.writes == [b"\x81\x10" + b'{"type":"reset"}']
    connection = cast(Connection, cast(WsSink, ws.sink).conn)
    for _ in range(10):
        if connection.closed_with is not None:
            break
        await asyncio.sleep(0)
    assert connection.closed_with is not None and connection.closed_with[0] == RESET_CLOSE_CODE == 4000


def test_an_sse_reauth_sends_a_reauth_event_then_ends_the_stream() -> None:
    sse, transport = sse_reader()
    sse.sink.reauth(b'{"type":"reauth"}')
    assert transport.writes == [b'event: reauth\ndata: {"type":"reauth"}\n\n']
    assert transport.closed


async def test_a_websocket_reauth_sends_the_message_then_closes_with_4401() -> None:
    ws, transport = ws_reader()
    ws.sink.reauth(b'{"type":"reauth"}')
    assert transport.writes == [b"\x81\x11" + b'{"type":"reauth"}']
    connection = cast(Connection, cast(WsSink, ws.sink).conn)
    for _ in range(10):
        if connection.closed_with is not None:
            break
        await asyncio.sleep(0)
    assert connection.closed_with == (REAUTH_CLOSE_CODE, "reader_token_expired") == (4401, "reader_token_expired")
