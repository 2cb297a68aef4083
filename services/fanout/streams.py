"""What a stream request asks for (or why it is refused), and the bytes each kind of stream writes.

Shared by the WebSocket and SSE adapters; pure functions and small classes, no I/O. The SSE
port reads its request head with :class:`HeadReader` (h11 underneath); the WebSocket port's head
is read by the websockets library.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11

from shared.cursor import Cursor, CursorError
from shared.errors import ApiError
from shared.models import valid_feed, valid_tag
from shared.reader_tokens import TOKEN_FIELD, ReadAccess, bearer_token
from shared.settings import FanoutSettings

__all__ = [
    "MAX_HEAD_BYTES",
    "Encoded",
    "HeadReader",
    "RequestHead",
    "StreamOrigins",
    "StreamRequest",
    "authorize",
    "check_origin",
    "parse_stream_request",
    "refusal",
    "sse_chunk",
    "ws_text_frame",
]

MAX_FILTER_TAGS = 20
# A stream request's head is a request line and a few headers (a cursor is ~20 bytes): browsers
# send under 2 KiB. 16 KiB is nginx's default large_client_header_buffers (4 x 8k) in round terms.
MAX_HEAD_BYTES = 16384


def refusal(status: int, code: str, field: str, message: str) -> ApiError:
    """A refused stream request: the project's error, naming the one ``field`` that is wrong."""
    return ApiError(status, code, message, fields=[{"field": field, "message": message}])


def check_origin(origins: Sequence[str], allowed: Sequence[str]) -> None:
    """Raise the refusal for a stream request's ``Origin`` headers: a foreign one, or more than one.

    A request without Origin (not a browser) passes. Both adapters use this, so WebSocket and
    SSE agree on what a repeated header means: it is refused, not read first or last.
    """
    if len(origins) > 1:
        raise refusal(400, "bad_stream_request", "Origin", "Send one Origin header.")
    if origins and origins[0] not in allowed:
        raise refusal(403, "origin_not_allowed", "Origin", "This Origin may not open a stream.")


@dataclass(frozen=True, slots=True)
class StreamOrigins:
    """Which browser Origins may open a stream: the gateway's own for every feed, publishers' for public feeds only.

    ``own`` is ``LIVEFEED_ALLOWED_ORIGINS``, ``embed`` is ``LIVEFEED_EMBED_ORIGINS``: a publisher's page
    may show a public feed live, but a private feed's stream opens only from the gateway's pages.
    """

    own: tuple[str, ...]
    embed: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: FanoutSettings) -> StreamOrigins:
        return cls(tuple(settings.allowed_origins), tuple(settings.embed_origins))

    @property
    def every(self) -> tuple[str, ...]:
        """Every Origin that may open some stream (what the WebSocket library is told as a second line)."""
        return (*self.own, *self.embed)

    def check(self, origins: Sequence[str], *, private: bool) -> str | None:
        """Raise the refusal for ``origins`` (see :func:`check_origin`); else the Origin to answer with CORS.

        That is the request's one Origin on a public feed (SSE echoes it in ``Access-Control-Allow-Origin``),
        and None without an Origin or on a private feed, whose answers are never shared with another origin.
        """
        check_origin(origins, self.own if private else self.every)
        return origins[0] if origins and not private else None


def _bad(status: int, field: str, message: str) -> ApiError:
    return refusal(status, "bad_stream_request", field, message)


@dataclass(frozen=True, slots=True)
class StreamRequest:
    feed: str
    since: Cursor | None
    tags: frozenset[str] | None
    token: str | None = field(default=None, repr=False)
    """The ``token`` query parameter (a reader token, for a private feed); never in a repr or a log."""


def parse_stream_request(target: str, suffix: str, last_event_id: str | None = None) -> StreamRequest:
    """Read ``/v1/feeds/{feed}/{suffix}?since=…&tags=a,b&token=…``; ``Last-Event-ID`` wins over ``since``.

    Any target raises :class:`~shared.errors.ApiError` ``bad_stream_request`` (404 ``path``, else 400
    naming the field) or nothing.
    """
    try:
        parts = urlsplit(target)
    except ValueError:
        raise _bad(400, "path", "the request target is not a URL path") from None
    segments = parts.path.split("/")
    if len(segments) != 5 or segments[:3] != ["", "v1", "feeds"] or segments[4] != suffix:
        raise _bad(404, "path", f"no such stream: expected /v1/feeds/{{feed}}/{suffix}")
    feed = segments[3]
    if not valid_feed(feed):
        raise _bad(400, "feed", "a feed is lowercase letters, digits and dashes, 1 to 63 long")
    query = parse_qs(parts.query, keep_blank_values=False)
    since_text = last_event_id or next(iter(query.get("since", [])), None)
    since = None
    if since_text:
        try:
            since = Cursor.parse(since_text)
        except CursorError as exc:
            raise _bad(400, "since", str(exc)) from exc
    tags: frozenset[str] | None = None
    if "tags" in query:
        wanted = [t for value in query["tags"] for t in value.split(",") if t]
        if len(wanted) > MAX_FILTER_TAGS or not all(valid_tag(t) for t in wanted):
            raise _bad(400, "tags", f"tags is up to {MAX_FILTER_TAGS} comma-separated tag slugs")
        tags = frozenset(wanted) or None
    tokens = query.get(TOKEN_FIELD, [])
    if len(tokens) > 1:
        raise _bad(400, TOKEN_FIELD, "send one reader token")
    return StreamRequest(feed, since, tags, tokens[0] if tokens else None)


def authorize(
    access: ReadAccess, request: StreamRequest, authorizations: Sequence[str], *, now: float | None = None
) -> float | None:
    """The expiry (Unix seconds) of the reader token that opens ``request``'s private feed; None for a public one.

    The one check of both adapters, made on connect: the token is ``Authorization: Bearer`` (one
    header, for non-browser clients) or the ``token`` query parameter (browsers cannot send headers
    on a stream). Raises the refusal (401 ``reader_token_*``, 403 ``reader_token_wrong_feed``, 400 for
    two Authorization headers). A public feed costs one set lookup: no header is read, no JWT decoded.
    """
    if request.feed not in access.private:
        return None
    if len(authorizations) > 1:
        raise _bad(400, "Authorization", "send one Authorization header")
    return access.check(request.feed, bearer_token(next(iter(authorizations), None), request.token), now=now)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """One HTTP request's method, target and headers (names lower-cased, the last repeat wins).

    ``Authorization`` is kept apart, in :attr:`authorizations`, so no repr of ``headers`` shows a token.
    """

    method: str
    target: str
    headers: Mapping[str, str]
    origins: tuple[str, ...] = ()
    """Every ``Origin`` header, in order (``headers`` keeps only the last)."""
    authorizations: tuple[str, ...] = field(default=(), repr=False)
    """Every ``Authorization`` header, in order; never in a repr or a log."""


class HeadReader:
    """Reads one HTTP/1.x request head of at most ``limit`` bytes; no I/O, h11 does the parsing.

    Read at most :attr:`room` bytes from the peer and pass them to :meth:`feed` until it returns
    the :class:`RequestHead`. :meth:`feed` raises :class:`~shared.errors.ApiError` naming the part at
    fault: 400 ``request-line``, ``Host`` or ``headers`` for a malformed head, 414 ``request-line``
    or 431 ``headers`` for one over the limit. Bytes after the head are ignored.
    """

    __slots__ = ("_h11", "_line_seen", "room")

    def __init__(self, limit: int = MAX_HEAD_BYTES) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
        self._line_seen = False
        self.room = limit

    def feed(self, data: bytes) -> RequestHead | None:
        """The head once complete, ``None`` while more bytes are needed; ``data`` is never empty."""
        self.room -= len(data)
        self._line_seen = self._line_seen or b"\n" in data
        self._h11.receive_data(data)
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise _head_error(exc) from None
        if isinstance(event, h11.Request):
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
                       if name != b"authorization"}
            origins = tuple(value.decode("latin-1") for name, value in event.headers if name == b"origin")
            authorizations = tuple(
                value.decode("latin-1") for name, value in event.headers if name == b"authorization"
            )
            return RequestHead(event.method.decode("ascii"), event.target.decode("ascii"), headers, origins,
                               authorizations)
        if self.room <= 0:
            if not self._line_seen:
                raise _bad(414, "request-line", "the request line is too long")
            raise _bad(431, "headers", "the request headers are too large")
        return None


def _head_error(exc: h11.RemoteProtocolError) -> ApiError:
    """Our own words for h11's verdict: its messages quote the peer's bytes, which we do not echo."""
    text = str(exc)
    if "request line" in text:
        return _bad(400, "request-line", "the request line is not `METHOD /target HTTP/1.1`")
    if "Host" in text:
        return _bad(400, "Host", "an HTTP/1.1 request carries exactly one Host header")
    return _bad(exc.error_status_hint, "headers", "the request headers are malformed")


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
