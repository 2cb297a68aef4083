"""Private feeds through the gateway, on the real servers: every read and both streams need a reader
token that grants the feed, a stream whose token expires is closed with ``reauth`` (WebSocket
4401), and public feeds do not change. The test stack makes ``private-*`` private.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from deploy.stack import Stack
from shared.reader_tokens import ReaderTokens
from tests.conftest import READER_TOKEN_KEY
from tests.utils.streams import next_event, next_message

TOKENS = ReaderTokens(SecretStr(READER_TOKEN_KEY))
CLOSE_WAIT_S = 15.0
"""The bound on waiting for an expiry to close a stream: the tick looks each second, the machine is shared."""


@pytest.fixture
def private_feed() -> str:
    return f"private-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def reader(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the gateway with no newsroom token: what a reader's browser or tool is."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        yield client


def token_for(feed: str, ttl_s: int = 600, *, now: float | None = None) -> str:
    return TOKENS.mint(feed, ttl_s, now=time.time() if now is None else now)[0]


def refusals(feed: str) -> list[tuple[str, str | None, int, str]]:
    """Each bad token a reader might hold, the status it must get and the error code."""
    return [
        ("no token", None, 401, "reader_token_required"),
        ("expired", token_for(feed, 60, now=time.time() - 120), 401, "reader_token_expired"),
        ("another feed's", token_for(f"private-{uuid.uuid4().hex[:12]}"), 403, "reader_token_wrong_feed"),
        ("forged", "eyJhbGciOiJIUzI1NiJ9.eyJmZWVkIjoieCJ9.c2lnbmF0dXJl", 401, "reader_token_invalid"),
    ]


async def post(api: httpx.AsyncClient, feed: str, headline: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, **fields})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def reads(feed: str, item_id: str) -> list[str]:
    return [f"/v1/feeds/{feed}/items", f"/v1/feeds/{feed}/key-events", f"/v1/feeds/{feed}/pinned",
            f"/v1/feeds/{feed}/items/{item_id}", f"/feeds/{feed}"]


async def test_every_read_of_a_private_feed_needs_a_token_that_grants_it(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, private_feed: str
) -> None:
    posted = (await post(api, private_feed, "Wire: embargoed until noon", pinned=True, key_event=True))["item"]
    for path in reads(private_feed, posted["id"]):
        for name, token, status, code in refusals(private_feed):
            by_query = await reader.get(path, params={"token": token} if token else None)
            by_header = await reader.get(path, headers={"Authorization": f"Bearer {token}"} if token else None)
            for response in (by_query, by_header):
                assert response.status_code == status, (path, name, response.text)
                assert "embargoed" not in response.text, (path, name)
                if path.startswith("/feeds/"):
                    assert response.headers["cache-control"] == "private, no-store", (path, name)
                else:
                    assert response.json()["error"] == code, (path, name)
                    assert response.json()["fields"] == [{"field": "token", "message": code}]
            if status == 401:
                assert by_query.headers["www-authenticate"].startswith("Bearer"), (path, name)
        good = token_for(private_feed)
        for response in (await reader.get(path, params={"token": good}),
                         await reader.get(path, headers={"Authorization": f"Bearer {good}"})):
            assert response.status_code == 200, (path, response.text)
            assert "embargoed" in response.text, path
            assert response.headers["cache-control"] == "private, no-store", path


async def test_public_feeds_are_unchanged_and_the_feed_list_omits_private_ones(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, private_feed: str, feed: str
) -> None:
    posted = (await post(api, feed, "Public news"))["item"]
    await post(api, private_feed, "Wire copy")
    for path in reads(feed, posted["id"]):
        for params in (None, {"token": "not-a-token"}):
            response = await reader.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["cache-control"] == "no-cache", path
    fresh = {"Cache-Control": "no-cache"}  # past the gateway's micro-cache, which may hold the index from before
    listed = [f["feed"] for f in (await reader.get("/v1/feeds", headers=fresh)).json()["feeds"]]
    assert feed in listed and private_feed not in listed
    assert not any(name.startswith("private-") for name in listed)
    index = await reader.get("/", headers=fresh)
    assert f"/feeds/{feed}" in index.text and private_feed not in index.text


# Streams


def stream_url(ws_url: str, feed: str, token: str | None = None, since: str | None = None) -> str:
    query = "&".join(f"{k}={v}" for k, v in (("token", token), ("since", since)) if v)
    return f"{ws_url}/v1/feeds/{feed}/stream" + (f"?{query}" if query else "")


async def open_ws(url: str, origin: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return await asyncio.wait_for(connect(url, origin=origin, additional_headers=headers), 10)  # type: ignore[arg-type]


async def refused_ws(url: str, origin: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as caught:
        ws = await open_ws(url, origin)
        await ws.close()
    response = caught.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


async def test_both_streams_refuse_a_private_feed_without_a_good_token(
    reader: httpx.AsyncClient, ws_url: str, origin: str, private_feed: str
) -> None:
    for name, token, status, code in refusals(private_feed):
        ws_status, ws_body = await refused_ws(stream_url(ws_url, private_feed, token), origin)
        assert (ws_status, ws_body["error"]) == (status, code), name
        assert ws_body["fields"] == [{"field": "token", "message": code}], name
        sse = await reader.get(f"/v1/feeds/{private_feed}/events", params={"token": token} if token else None)
        assert (sse.status_code, sse.json()["error"]) == (status, code), name
        if status == 401:
            assert sse.headers["www-authenticate"].startswith("Bearer"), name


@pytest.mark.parametrize("where", ["query", "header"])
async def test_a_websocket_with_a_good_token_streams_live_events(
    api: httpx.AsyncClient, ws_url: str, origin: str, private_feed: str, where: str
) -> None:
    token = token_for(private_feed)
    url = stream_url(ws_url, private_feed, token if where == "query" else None)
    ws = await open_ws(url, origin, {"Authorization": f"Bearer {token}"} if where == "header" else None)
    try:
        assert (await next_message(ws))["type"] == "hello"
        posted = await post(api, private_feed, "Live on the wire")
        event = await next_event(ws)
        assert event["item"] == posted["item"] and event["cursor"] == posted["cursor"]
    finally:
        await ws.close()


async def sse_messages(response: httpx.Response, timeout: float) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of each Server-Sent Event until the response ends, every read bounded."""
    lines = response.aiter_lines()
    event = "message"
    while True:
        try:
            line = await asyncio.wait_for(anext(lines), timeout)
        except StopAsyncIteration:
            return
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            yield event, orjson.loads(line[len("data: "):])
            event = "message"


async def test_sse_with_a_good_token_streams_live_events(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, private_feed: str
) -> None:
    token = token_for(private_feed)
    async with reader.stream("GET", f"/v1/feeds/{private_feed}/events", params={"token": token}) as response:
        assert response.status_code == 200
        messages = sse_messages(response, 10)
        assert (await anext(messages))[0] == "hello"
        posted = await post(api, private_feed, "Live on the wire, by SSE")
        event, data = await anext(messages)
        assert (event, data["item"]) == ("message", posted["item"])


async def test_a_websocket_whose_token_expires_is_told_to_reauth_and_resumes_with_a_new_one(
    api: httpx.AsyncClient, ws_url: str, origin: str, private_feed: str
) -> None:
    now = time.time()
    token, expires = TOKENS.mint(private_feed, 6, now=now)
    ws = await open_ws(stream_url(ws_url, private_feed, token), origin)
    try:
        assert (await next_message(ws))["type"] == "hello"
        first = await post(api, private_feed, "Before the token runs out")
        assert (await next_event(ws))["item"]["id"] == first["item"]["id"]
        reauth = await next_message(ws, timeout=CLOSE_WAIT_S)
        assert reauth == {"type": "reauth", "feed": private_feed, "reason": "reader_token_expired"}
        assert time.time() >= expires - 0.5, "closed before the token expired"
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws, timeout=CLOSE_WAIT_S)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "reader_token_expired")
    finally:
        await ws.close()
    missed = await post(api, private_feed, "Posted while the reader had no token")
    status, body = await refused_ws(stream_url(ws_url, private_feed, token, since=first["cursor"]), origin)
    assert (status, body["error"]) == (401, "reader_token_expired")
    resumed = await open_ws(stream_url(ws_url, private_feed, token_for(private_feed), since=first["cursor"]), origin)
    try:
        assert (await next_message(resumed))["type"] == "hello"
        assert (await next_event(resumed))["item"] == missed["item"]
    finally:
        await resumed.close()


async def test_an_sse_stream_whose_token_expires_gets_reauth_then_ends(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, private_feed: str
) -> None:
    token, expires = TOKENS.mint(private_feed, 6, now=time.time())
    async with reader.stream("GET", f"/v1/feeds/{private_feed}/events", params={"token": token}) as response:
        assert response.status_code == 200
        messages = sse_messages(response, CLOSE_WAIT_S)
        assert (await anext(messages))[0] == "hello"
        posted = await post(api, private_feed, "Before the token runs out, by SSE")
        assert (await anext(messages))[1]["item"] == posted["item"]
        rest = [message async for message in messages]
    assert rest == [("reauth", {"type": "reauth", "feed": private_feed, "reason": "reader_token_expired"})]
    assert time.time() >= expires - 0.5, "ended before the token expired"


async def test_reader_tokens_never_reach_a_log(
    stack: Stack, api: httpx.AsyncClient, reader: httpx.AsyncClient, ws_url: str, origin: str, private_feed: str
) -> None:
    """Good, wrong-feed and expired tokens, in the query and the header, on every read and both streams."""
    posted = (await post(api, private_feed, "Logged nowhere"))["item"]
    tokens = [token_for(private_feed), token_for(f"private-{uuid.uuid4().hex[:12]}"),
              token_for(private_feed, 60, now=time.time() - 120)]
    for token in tokens:
        for path in [*reads(private_feed, posted["id"]), f"/v1/feeds/{private_feed}/events"]:
            if path.endswith("/events"):
                async with reader.stream("GET", path, params={"token": token}) as response:
                    await response.aclose()
            else:
                await reader.get(path, params={"token": token})
                await reader.get(path, headers={"Authorization": f"Bearer {token}"})
        try:
            ws = await open_ws(stream_url(ws_url, private_feed, token), origin)
            await ws.close()
        except InvalidStatus:
            pass
    await asyncio.sleep(1)
    logs = sorted((stack.run_dir / "logs").glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        for token in tokens:
            assert token not in text and token.split(".")[2] not in text, f"a reader token is in {log.name}"
