"""The gateway's per-address limits, its slow-client timeout, its own errors, and stream close codes.

The limits are checked on a second nginx of each test's own, started by ``Stack.start_gateway``
with low limits in front of the session's services, so the shared test gateway keeps its high
ones; the close codes and nginx's own refusals go through the shared test gateway itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from deploy.stack import Stack, Topology
from tests.utils.streams import next_message

OWN_GATEWAY_OFFSET = 7
"""The test's own gateway listens on the shared gateway's port plus this (nothing else uses it)."""


@contextlib.contextmanager
def own_gateway(stack: Stack, run_dir: Path, **settings: str) -> Iterator[Topology]:
    """A second gateway in front of the session's services, with these LIVEFEED_GATEWAY_* settings."""
    topology = replace(stack.topology, gateway=stack.topology.gateway + OWN_GATEWAY_OFFSET)
    gateway = Stack(topology=topology, run_dir=run_dir, quiet=True, extra_env=settings)
    try:
        gateway.start_gateway()
        yield topology
    finally:
        gateway.stop()


@contextlib.contextmanager
def gateway_to_dead_writes(stack: Stack, run_dir: Path) -> Iterator[Topology]:
    """A second gateway whose ingest and stream upstreams refuse connections (history stays up,
    so the gateway's start check passes): a port bound but never listening, held for the body."""
    dead = socket.socket()
    try:
        dead.bind((stack.topology.host, 0))
        port = dead.getsockname()[1]
        topology = replace(stack.topology, gateway=stack.topology.gateway + OWN_GATEWAY_OFFSET,
                           ingest=port, fanout=port, fanout_sse=port)
        gateway = Stack(topology=topology, run_dir=run_dir, quiet=True)
        try:
            gateway.start_gateway()
            yield topology
        finally:
            gateway.stop()
    finally:
        dead.close()


async def raw_exchange(topology: Topology, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is (however malformed) and read the answer to EOF: status, headers, body."""
    reader, writer = await asyncio.open_connection(topology.host, topology.gateway)
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), 30)
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_gateway_error(status: int, headers: dict[str, str], body: bytes, expected: int, field: str) -> None:
    """An error nginx made, in the services' error shape, naming the part of the request at fault."""
    lowered = {name.lower(): value for name, value in headers.items()}
    assert status == expected, (status, body[:300])
    assert lowered["content-type"] == "application/json", (lowered, body[:300])
    error = orjson.loads(body)
    assert isinstance(error["error"], str) and error["message"], error
    assert [entry["field"] for entry in error["fields"]] == [field], error
    assert error["fields"][0]["message"], error


def ws_base(topology: Topology) -> str:
    return f"ws://{topology.host}:{topology.gateway}"


async def open_ws(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    ws = await asyncio.wait_for(connect(url, additional_headers=headers), 10)
    hello = await next_message(ws, timeout=10)
    assert hello["type"] == "hello", hello
    return ws


async def refused_ws(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of a stream handshake the gateway refuses."""
    with pytest.raises(InvalidStatus) as refused:
        ws = await asyncio.wait_for(connect(url, additional_headers=headers), 10)
        await ws.close()
    response = refused.value.response
    return response.status_code, dict(response.headers.raw_items()), orjson.loads(response.body or b"null")


def assert_rate_limited(status: int, headers: dict[str, str], body: dict[str, Any], limit: str) -> None:
    """A 429 in the services' error shape, naming the limit, with a Retry-After to honour."""
    lowered = {name.lower(): value for name, value in headers.items()}
    assert status == 429, (status, body)
    assert lowered["content-type"].startswith("application/json")
    assert int(lowered["retry-after"]) >= 1
    assert body["error"] == "rate_limited" and body["message"]
    assert [field["field"] for field in body["fields"]] == ["connection"]
    assert limit in body["fields"][0]["message"]


async def test_streams_past_the_per_address_limit_get_a_json_429_and_reads_still_pass(
    stack: Stack, tmp_path: Path, feed: str
) -> None:
    """Four streams (WebSocket and SSE count together) pass, the fifth is refused until one closes."""
    with own_gateway(stack, tmp_path, LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS="4") as gateway:
        stream = f"{ws_base(gateway)}/v1/feeds/{feed}/stream"
        events = f"{gateway.base_url}/v1/feeds/{feed}/events"
        async with httpx.AsyncClient(timeout=10) as client, contextlib.AsyncExitStack() as held:
            sockets = [await open_ws(stream) for _ in range(2)]
            for ws in sockets:
                held.push_async_callback(ws.close)
            for _ in range(2):
                response = await held.enter_async_context(client.stream("GET", events))
                assert response.status_code == 200

            assert_rate_limited(*await refused_ws(stream), "at most 4 open streams per client address")
            refused = await client.get(events)
            assert_rate_limited(refused.status_code, dict(refused.headers), refused.json(),
                                "at most 4 open streams per client address")
            listing = await client.get(f"{gateway.base_url}/v1/feeds/{feed}/items")
            assert listing.status_code == 200, listing.text

            await sockets[0].close()
            again = await open_ws(stream)
            await again.close()


async def test_a_write_burst_past_the_limit_gets_a_json_429_that_leaves_nothing_behind(
    stack: Stack, tmp_path: Path, feed: str
) -> None:
    with own_gateway(stack, tmp_path, LIVEFEED_GATEWAY_WRITE_RATE_PER_S="1",
                     LIVEFEED_GATEWAY_WRITE_BURST="5") as gateway:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15,
                                     headers={"Authorization": f"Bearer {stack.token}"}) as client:

            async def post(n: int) -> httpx.Response:
                return await client.post(f"/v1/feeds/{feed}/items", json={"headline": f"burst {n}"},
                                         headers={"Idempotency-Key": f"{feed}-{n}"})

            first = await post(0)
            assert first.status_code == 201, first.text
            burst = await asyncio.gather(*(post(n) for n in range(1, 13)))
            statuses = [response.status_code for response in burst]
            assert statuses.count(201) >= 5, statuses
            assert set(statuses) == {201, 429}, statuses
            refused = statuses.index(429) + 1
            limited = burst[refused - 1]
            assert_rate_limited(limited.status_code, dict(limited.headers), limited.json(),
                                "at most 1 writes/s per client address, bursts of 5")

            listing = await client.get(f"/v1/feeds/{feed}/items")
            assert listing.status_code == 200, "a read was refused with the write budget"
            await asyncio.sleep(2)  # the write budget regains a request a second
            retried = await post(refused)
            assert retried.status_code == 201, retried.text
            assert "idempotent-replayed" not in retried.headers, "the refused write reached ingest"


async def test_a_read_burst_past_the_limit_gets_a_json_429(stack: Stack, tmp_path: Path, feed: str) -> None:
    with own_gateway(stack, tmp_path, LIVEFEED_GATEWAY_READ_RATE_PER_S="1",
                     LIVEFEED_GATEWAY_READ_BURST="20") as gateway:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15) as client:
            burst = await asyncio.gather(*(client.get(f"/v1/feeds/{feed}/items") for _ in range(40)))
            statuses = sorted(response.status_code for response in burst)
            assert statuses.count(200) >= 15, statuses
            assert set(statuses) == {200, 429}, statuses
            limited = next(response for response in burst if response.status_code == 429)
            assert_rate_limited(limited.status_code, dict(limited.headers), limited.json(),
                                "at most 1 reads/s per client address, bursts of 20")


async def test_x_forwarded_for_names_the_client_only_from_the_trusted_proxy(
    stack: Stack, tmp_path: Path, feed: str
) -> None:
    """Behind a trusted proxy each forwarded client has its own streams; from anyone else the header is ignored."""
    with own_gateway(stack, tmp_path / "trusting", LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS="1",
                     LIVEFEED_GATEWAY_TRUSTED_PROXY="127.0.0.1") as gateway:
        stream = f"{ws_base(gateway)}/v1/feeds/{feed}/stream"
        first = await open_ws(stream, {"X-Forwarded-For": "203.0.113.1"})
        second = await open_ws(stream, {"X-Forwarded-For": "203.0.113.2"})
        status, _, _ = await refused_ws(stream, {"X-Forwarded-For": "203.0.113.1"})
        assert status == 429
        await first.close()
        await second.close()
    with own_gateway(stack, tmp_path / "default", LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS="1") as gateway:
        stream = f"{ws_base(gateway)}/v1/feeds/{feed}/stream"
        first = await open_ws(stream, {"X-Forwarded-For": "203.0.113.1"})
        status, _, _ = await refused_ws(stream, {"X-Forwarded-For": "203.0.113.2"})
        assert status == 429, "a client chose its own address with X-Forwarded-For"
        await first.close()


async def test_a_slowloris_client_is_cut_off_after_the_header_timeout(stack: Stack, tmp_path: Path) -> None:
    """A client sending its request head a byte at a time is dropped once the head is overdue."""
    with own_gateway(stack, tmp_path, LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S="2") as gateway:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(gateway.host, gateway.gateway)
        head = b"GET /v1/feeds HTTP/1.1\r\nHost: livefeed\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        started = loop.time()
        cut_after: float | None = None
        try:
            for byte in head:
                if loop.time() - started > 8:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(reader.read(1024), 0.5)
                    assert answer == b"", f"the gateway answered a request head it never got: {answer!r}"
                    cut_after = loop.time() - started
                    break
        except ConnectionError:
            cut_after = loop.time() - started
        finally:
            writer.close()
        assert cut_after is not None, "still connected 8 s into a request head with a 2 s header timeout"
        assert cut_after < 6


async def test_a_body_over_the_gateway_limit_gets_a_json_413(stack: Stack, auth: dict[str, str], feed: str) -> None:
    async with httpx.AsyncClient(base_url=stack.topology.base_url, timeout=30, headers=auth) as client:
        refused = await client.post(f"/v1/feeds/{feed}/items", content=b"x" * 5_000_000,
                                    headers={"Content-Type": "application/json"})
    assert_gateway_error(refused.status_code, dict(refused.headers), refused.content, 413, "body")
    assert refused.json()["error"] == "body_too_large"


async def test_a_request_line_over_the_gateway_limit_gets_a_json_414(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.topology.base_url, timeout=30) as client:
        refused = await client.get(f"/v1/feeds/{'a' * 9000}/items")
    assert_gateway_error(refused.status_code, dict(refused.headers), refused.content, 414, "path")


@pytest.mark.parametrize("extra", [
    b"X-Big: " + b"a" * 20_000 + b"\r\n",
    b"".join(b"X-Part-%d: %s\r\n" % (n, b"a" * 7_000) for n in range(6)),
], ids=["one-field", "whole-head"])
async def test_a_header_over_the_gateway_limit_gets_a_json_400(stack: Stack, extra: bytes) -> None:
    """nginx's internal 494 (a field over one buffer, or a head over all four) is sent as a JSON 400."""
    status, headers, body = await raw_exchange(
        stack.topology, b"GET /v1/feeds HTTP/1.1\r\nHost: livefeed\r\n" + extra + b"\r\n")
    assert_gateway_error(status, headers, body, 400, "headers")
    assert orjson.loads(body)["error"] == "headers_too_large"


@pytest.mark.parametrize("request_bytes", [
    b"HELLO WORLD\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    b"GET /v1/fe\x00eds HTTP/1.1\r\nHost: livefeed\r\n\r\n",
    b"GET /v1/feeds HTTP/1.1\r\nHost: livefeed\r\nHost: other\r\n\r\n",
    b"GET /v1/feeds HTTP/1.1\r\n\r\n",
    b"GET /v1/feeds HTTP/1.1\r\nHost: livefeed\r\nNo colon here\r\n\r\n",
], ids=["garbage-line", "tls-hello", "nul-in-path", "two-hosts", "no-host", "bad-header-line"])
async def test_a_malformed_request_gets_a_json_400(stack: Stack, request_bytes: bytes) -> None:
    """Including request lines nginx cannot parse at all (it has no URI for them yet)."""
    status, headers, body = await raw_exchange(stack.topology, request_bytes)
    assert_gateway_error(status, headers, body, 400, "request")


async def test_a_service_that_is_down_gets_a_json_502_with_retry_after(
    stack: Stack, tmp_path: Path, auth: dict[str, str], feed: str
) -> None:
    """Writes and streams of a gateway whose ingest and fanout refuse connections; reads still pass."""
    with gateway_to_dead_writes(stack, tmp_path) as gateway:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15, headers=auth) as client:
            write = await client.post(f"/v1/feeds/{feed}/items", json={"headline": "nobody hears this"})
            stream = await client.get(f"/v1/feeds/{feed}/events")
            listing = await client.get(f"/v1/feeds/{feed}/items")
    for refused in (write, stream):
        assert_gateway_error(refused.status_code, dict(refused.headers), refused.content, 502, "service")
        assert refused.headers["retry-after"] == "2"
    assert listing.status_code == 200, listing.text


async def test_the_services_own_errors_pass_through_the_gateway_unchanged(
    stack: Stack, auth: dict[str, str], feed: str
) -> None:
    """Only nginx's own errors are rewritten: a service's 404 and 422 keep their codes and fields."""
    async with httpx.AsyncClient(base_url=stack.topology.base_url, timeout=15, headers=auth) as client:
        missing = await client.get(f"/v1/feeds/{feed}/items/01m8cng7dqz8mzsg2ge1ydk21g")
        invalid = await client.post(f"/v1/feeds/{feed}/items", json={"headline": ""})
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"] == "not_found"
    assert missing.json()["fields"][0]["field"] != "path", "the gateway's 404 replaced the service's"
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["error"] == "validation_error"


async def test_a_reset_reaches_the_client_through_the_gateway_with_code_4000(
    ws_url: str, feed: str
) -> None:
    """A cursor from another epoch: the reset message, then close code 4000 with its reason."""
    ws = await asyncio.wait_for(connect(f"{ws_url}/v1/feeds/{feed}/stream"), 10)
    hello = await next_message(ws, timeout=10)
    await ws.close()
    epoch, partition, _ = hello["cursor"].split(".")
    wrong = format(int(epoch, 16) ^ 0xFFFFFFFF, f"0{len(epoch)}x")
    ws = await asyncio.wait_for(connect(f"{ws_url}/v1/feeds/{feed}/stream?since={wrong}.{partition}.0"), 10)
    reset = await next_message(ws, timeout=10)
    assert reset["type"] == "reset", reset
    with pytest.raises(ConnectionClosedError) as closed:
        await next_message(ws, timeout=10)
    assert closed.value.rcvd is not None, "the connection ended without a close frame"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "reset: reload history")


async def test_a_frame_over_the_fanout_limit_closes_with_1009_through_the_gateway(ws_url: str, feed: str) -> None:
    """The client's whole 10 MB frame is taken (not reset mid-send), then the close frame says 1009."""
    ws = await open_ws(f"{ws_url}/v1/feeds/{feed}/stream")
    await asyncio.wait_for(ws.send("x" * 10_000_000), 30)
    with pytest.raises(ConnectionClosedError) as closed:
        await next_message(ws, timeout=30)
    assert closed.value.rcvd is not None, "the connection ended without a close frame"
    assert closed.value.rcvd.code == 1009


async def test_a_frame_over_the_fanout_limit_ends_in_a_close_frame_and_eof_not_a_reset(
    stack: Stack, feed: str
) -> None:
    """At the TCP level: the gateway takes the whole frame, sends close 1009, then ends the stream cleanly."""
    host, port = stack.topology.host, stack.topology.gateway
    reader, writer = await asyncio.open_connection(host, port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /v1/feeds/{feed}/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = b"x" * 10_000_000
        writer.write(b"\x81\xff" + struct.pack("!Q", len(payload)) + b"\0\0\0\0" + payload)  # masked with 0s
        await asyncio.wait_for(writer.drain(), 30)  # a reset from the gateway raises ConnectionResetError here
        received = await asyncio.wait_for(reader.read(), 30)  # read() to EOF; a reset raises instead
    finally:
        writer.close()
    assert received_close_code(received) == 1009


def received_close_code(data: bytes) -> int | None:
    """The code of the close frame among the server's (unmasked) frames in ``data``, if any."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        if opcode == 0x8:
            return int(struct.unpack("!H", data[at : at + 2])[0]) if length >= 2 else None
        at += length
    return None
