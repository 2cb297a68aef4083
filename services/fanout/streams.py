"""What a stream request asks for, and the bytes each kind of stream writes.

Shared by the WebSocket and SSE adapters; pure functions and small classes, no I/O.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from shared.cursor import Cursor, CursorError
from shared.models import valid_feed

__all__ = ["Encoded", "StreamRequest", "StreamRequestError", "parse_stream_request", "sse_chunk", "ws_text_frame"]

_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_FILTER_TAGS = 20


class StreamRequestError(ValueError):
    """A stream request livefeed cannot serve; ``field`` names the part that is wrong."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class StreamRequest:
    feed: str
    since: Cursor | None
    tags: frozenset[str] | None


def parse_stream_request(target: str, suffix: str, last_event_id: str | None = None) -> StreamRequest:
    """Read ``/v1/feeds/{feed}/{suffix}?since=…&tags=a,b``; ``Last-Event-ID`` wins over ``since``."""
    parts = urlsplit(target)
    segments = parts.path.split("/")
    if len(segments) != 5 or segments[:3] != ["", "v1", "feeds"] or segments[4] != suffix:
        raise StreamRequestError(404, "path", f"no such stream: expected /v1/feeds/{{feed}}/{suffix}")
    feed = segments[3]
    if not valid_feed(feed):
        raise StreamRequestError(400, "feed", "a feed is lowercase letters, digits and dashes, 1 to 63 long")
    query = parse_qs(parts.query, keep_blank_values=False)
    since_text = last_event_id or next(iter(query.get("since", [])), None)
    since = None
    if since_text:
        try:
            since = Cursor.parse(since_text)
        except CursorError as exc:
            raise StreamRequestError(400, "since", str(exc)) from exc
    tags: frozenset[str] | None = None
    if "tags" in query:
        wanted = [t for value in query["tags"] for t in value.split(",") if t]
        if len(wanted) > MAX_FILTER_TAGS or not all(_TAG.match(t) for t in wanted):
            raise StreamRequestError(400, "tags", f"tags is up to {MAX_FILTER_TAGS} comma-separated tag slugs")
        tags = frozenset(wanted) or None
    return StreamRequest(feed, since, tags)


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed WebSocket text frame: the same bytes for every reader."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def sse_chunk(payload: bytes, event_id: str | None = None, event: str | None = None) -> bytes:
    """One Server-Sent Event; the JSON payload has no newlines, so it is one ``data:`` line."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + payload + b"\n\n"


class Encoded:
    """One event's message, encoded for each kind of stream at most once."""

    __slots__ = ("_sse", "_ws", "cursor", "message")

    def __init__(self, message: bytes, cursor: Cursor | None) -> None:
        self.message = message
        self.cursor = cursor
        self._ws: bytes | None = None
        self._sse: bytes | None = None

    def ws(self) -> bytes:
        if self._ws is None:
            self._ws = ws_text_frame(self.message)
        return self._ws

    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = sse_chunk(self.message, None if self.cursor is None else self.cursor.serialize())
        return self._sse
