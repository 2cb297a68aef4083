"""Stream requests, request heads and frames without a network: what the fanout's edge reads and writes."""

from __future__ import annotations

import re
import struct
from urllib.parse import urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from services.fanout.streams import (
    MAX_HEAD_BYTES,
    HeadReader,
    RequestHead,
    StreamRequest,
    authorize,
    check_origin,
    parse_stream_request,
    sse_chunk,
    ws_text_frame,
)
from shared.cursor import Cursor
from shared.errors import ApiError
from shared.models import FeedSet
from shared.reader_tokens import ReadAccess, ReaderTokens

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
REFUSALS = {(404, "path"), (400, "path"), (400, "feed"), (400, "since"), (400, "tags"), (400, "token")}

feeds = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
tags = st.from_regex(r"[a-z0-9][a-z0-9-]{0,39}", fullmatch=True)
cursors = st.builds(
    Cursor,
    epoch=st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=32),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(-1, 2**62),
)
QUERY_PIECES = st.sampled_from(["since=", "tags=", "a", ",", "&", "%0A", "%2C", "%ff", ".", "0", "-", "[", "#"])
# Targets a peer might send: printable ASCII (what an HTTP request line may carry) and
# pieces of the real shape, so the generator reaches the deeper checks, not only the 404.
url_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)
targets = st.one_of(
    url_text,
    st.builds(lambda feed, suffix, query: f"/v1/feeds/{feed}/{suffix}?{query}",
              st.one_of(feeds, url_text), st.sampled_from(["stream", "events", "x"]), url_text),
    st.builds(lambda prefix, feed, query: f"{prefix}/v1/feeds/{feed}/stream?{query}",
              st.sampled_from(["", "//", "//[", "http://h", "/"]), feeds, st.lists(QUERY_PIECES).map("".join)),
)
last_event_ids = st.one_of(st.none(), st.text(max_size=40), cursors.map(Cursor.serialize))


@given(targets, st.sampled_from(["stream", "events"]), last_event_ids)
@example("//[", "stream", None)
@example("/v1/feeds/a/stream?tags=x%0A", "stream", None)
def test_any_request_is_served_or_refused_with_a_named_field(target: str, suffix: str, last_id: str | None) -> None:
    try:
        request = parse_stream_request(target, suffix, last_id)
    except ApiError as exc:
        assert (exc.status, exc.fields[0]["field"]) in REFUSALS
        assert exc.message
        return
    assert SLUG.fullmatch(request.feed) and len(request.feed) <= 63
    assert request.tags is None or all(SLUG.fullmatch(t) and len(t) <= 40 for t in request.tags)


@given(feeds, st.sampled_from(["stream", "events"]), st.one_of(st.none(), cursors),
       st.one_of(st.none(), st.lists(tags, min_size=1, max_size=20)))
def test_a_valid_request_round_trips(feed: str, suffix: str, since: Cursor | None, wanted: list[str] | None) -> None:
    query = {}
    if since is not None:
        query["since"] = since.serialize()
    if wanted is not None:
        query["tags"] = ",".join(wanted)
    target = f"/v1/feeds/{feed}/{suffix}" + (f"?{urlencode(query)}" if query else "")
    assert parse_stream_request(target, suffix) == StreamRequest(
        feed, since, frozenset(wanted) if wanted else None)


@given(feeds, cursors, cursors)
def test_last_event_id_wins_over_since(feed: str, since: Cursor, last: Cursor) -> None:
    request = parse_stream_request(f"/v1/feeds/{feed}/events?since={since}", "events", last.serialize())
    assert request.since == last


@pytest.mark.parametrize(
    ("target", "status", "field"),
    [
        ("/v1/feeds/a/events", 404, "path"),
        ("/v1/feeds/A/stream", 400, "feed"),
        ("/v1/feeds/a/stream?since=nope", 400, "since"),
        ("/v1/feeds/a/stream?tags=" + ",".join(f"t{n}" for n in range(21)), 400, "tags"),
        ("/v1/feeds/a/stream?tags=Bad", 400, "tags"),
        ("//[", 400, "path"),
    ],
)
def test_errors_name_the_field(target: str, status: int, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_stream_request(target, "stream")
    assert (caught.value.status, caught.value.fields[0]["field"]) == (status, field)


def _read(head: bytes, chunk: int = 7) -> RequestHead | None:
    reader = HeadReader()
    for start in range(0, len(head), chunk):
        result = reader.feed(head[start:start + chunk][:reader.room])
        if result is not None:
            return result
        if reader.room <= 0:
            break
    return None


def _refusal(head: bytes) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        _read(head, chunk=4096)
    return caught.value.status, caught.value.fields[0]["field"]


def test_a_head_arriving_in_pieces_is_read() -> None:
    head = _read(b"GET /v1/feeds/a/events?since=x HTTP/1.1\r\nHost: h\r\nLast-Event-ID: c.0.1\r\n"
                 b"Origin: http://o\r\n\r\nignored")
    assert head == RequestHead("GET", "/v1/feeds/a/events?since=x",
                               {"host": "h", "last-event-id": "c.0.1", "origin": "http://o"}, ("http://o",))


def test_every_origin_header_is_kept_in_order() -> None:
    head = _read(b"GET /v1/feeds/a/events HTTP/1.1\r\nHost: h\r\nOrigin: http://a\r\nOrigin: http://b\r\n\r\n")
    assert head is not None and head.origins == ("http://a", "http://b")


@pytest.mark.parametrize(("origins", "status"), [(["http://evil"], 403), (["http://ok", "http://ok"], 400),
                                                 (["http://evil", "http://ok"], 400)])
def test_a_foreign_or_repeated_origin_is_refused_naming_it(origins: list[str], status: int) -> None:
    with pytest.raises(ApiError) as caught:
        check_origin(origins, ["http://ok"])
    assert (caught.value.status, caught.value.fields[0]["field"]) == (status, "Origin")


@pytest.mark.parametrize("origins", [[], ["http://ok"]])
def test_no_origin_or_an_allowed_one_passes(origins: list[str]) -> None:
    check_origin(origins, ["http://ok"])


def test_an_incomplete_head_waits_for_more() -> None:
    assert _read(b"GET /v1/feeds/a/events HTTP/1.1\r\nHost: h\r\n") is None


@pytest.mark.parametrize(
    ("head", "status", "field"),
    [
        (b"hello\r\n\r\n", 400, "request-line"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "request-line"),
        (b"GET /x\r\nHost: h\r\n\r\n", 400, "request-line"),
        (b"GET /x HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\n", 400, "headers"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nLast-Event-ID: " + b"x" * 20_000 + b"\r\n\r\n", 431, "headers"),
        (b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, "request-line"),
    ],
)
def test_a_bad_head_is_refused_naming_the_part(head: bytes, status: int, field: str) -> None:
    assert _refusal(head) == (status, field)


def test_a_head_of_exactly_the_limit_is_read() -> None:
    start = b"GET /x HTTP/1.1\r\nHost: h\r\nX: "
    head = start + b"y" * (MAX_HEAD_BYTES - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD_BYTES
    assert _read(head, chunk=4096) is not None
    assert _refusal(head[:-4] + b"y\r\n\r\n") == (431, "headers")


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e" + struct.pack("!H", 126)),
        (65535, b"\x81\x7e" + struct.pack("!H", 65535)),
        (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
    ],
)
def test_ws_text_frame_length_encodings(length: int, header: bytes) -> None:
    payload = b"p" * length
    assert ws_text_frame(payload) == header + payload


def test_sse_chunk() -> None:
    assert sse_chunk(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert sse_chunk(b"{}", event_id="e.0.5") == b"id: e.0.5\ndata: {}\n\n"
    assert sse_chunk(b"{}", event="hello") == b"event: hello\ndata: {}\n\n"
    assert sse_chunk(b"{}", "e.0.5", "reset") == b"id: e.0.5\nevent: reset\ndata: {}\n\n"


# Reader tokens: parsed from the query, checked by one function for both adapters

ACCESS = ReadAccess(FeedSet(["private-*"]), ReaderTokens(SecretStr("k" * 32)))
NOW = 1_800_000_000.0


def _token(feed: str, ttl_s: int = 60) -> str:
    assert ACCESS.tokens is not None
    return ACCESS.tokens.mint(feed, ttl_s, now=NOW)[0]


def test_the_token_query_parameter_is_read_and_never_shown() -> None:
    request = parse_stream_request("/v1/feeds/private-a/stream?since=e.0.1&token=abc.def.ghi", "stream")
    assert request.token == "abc.def.ghi"
    assert "abc.def.ghi" not in repr(request)
    with pytest.raises(ApiError) as caught:
        parse_stream_request("/v1/feeds/private-a/stream?token=a&token=b", "stream")
    assert (caught.value.status, caught.value.fields[0]["field"]) == (400, "token")


def test_a_public_stream_needs_no_token_and_reads_no_header() -> None:
    request = parse_stream_request("/v1/feeds/news/stream?token=garbage", "stream")
    assert authorize(ACCESS, request, ["Bearer x", "Bearer y"], now=NOW) is None


@pytest.mark.parametrize("where", ["query", "header"])
def test_a_private_stream_opens_with_its_token_in_the_query_or_the_header(where: str) -> None:
    token = _token("private-a")
    target = "/v1/feeds/private-a/events" + (f"?token={token}" if where == "query" else "")
    headers = [f"Bearer {token}"] if where == "header" else []
    assert authorize(ACCESS, parse_stream_request(target, "events"), headers, now=NOW) == NOW + 60


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        ("", [], 401, "reader_token_required"),
        ("?token=not-a-jwt", [], 401, "reader_token_invalid"),
        (f"?token={_token('private-a', 10)}", [], 401, "reader_token_expired"),
        (f"?token={_token('private-b')}", [], 403, "reader_token_wrong_feed"),
        ("", [f"Bearer {_token('private-a')}", f"Bearer {_token('private-a')}"], 400, "bad_stream_request"),
    ],
)
def test_a_private_stream_is_refused_without_a_token_that_grants_it(
    query: str, headers: list[str], status: int, code: str
) -> None:
    request = parse_stream_request(f"/v1/feeds/private-a/stream{query}", "stream")
    with pytest.raises(ApiError) as caught:
        authorize(ACCESS, request, headers, now=NOW + 30)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_authorization_headers_are_kept_apart_from_the_others() -> None:
    head = _read(b"GET /v1/feeds/a/events HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cret\r\n"
                 b"authorization: Bearer other\r\n\r\n")
    assert head is not None and head.authorizations == ("Bearer s3cret", "Bearer other")
    assert "authorization" not in head.headers and "s3cret" not in repr(head)
