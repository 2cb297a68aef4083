"""The Centrifugo peer without Centrifugo: its reader's framing, its config, its batches and its build guard.

The reader is fed bytes as the server would send them (a 101 answer, then WebSocket text frames
holding newline-delimited pushes), so what is counted is publications, not frames. No network.
"""

from __future__ import annotations

import asyncio
import json
import stat
import struct
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from benchmarks.loadgen import _FACTORIES, _Reader, _Stats
from benchmarks.peers import centrifugo

UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
CONNECT = b'{"connect":{"client":"c1","version":"6.9.1","subs":{"bench-0":{}},"ping":25,"session":"s1"}}'


def _frame(payload: bytes) -> bytes:
    """An unmasked server text frame."""
    n = len(payload)
    head = struct.pack("!BB", 0x81, n) if n < 126 else struct.pack("!BBH", 0x81, 126, n)
    return head + payload


def _publication(ts_ms: float, offset: int = 0) -> bytes:
    message = (b'{"type":"item.published","cursor":"e.0.1","feed":"bench-0","ts":' + repr(ts_ms).encode()
               + b',"item":{"id":"x","headline":"h"}}')
    return b'{"channel":"bench-0","pub":{"data":' + message + b',"offset":' + str(offset).encode() + b"}}"


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        pass


def _reader() -> tuple[_Reader, _Stats, asyncio.Future[bool], asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    stats = _Stats()
    ready: asyncio.Future[bool] = loop.create_future()
    reader = _FACTORIES["centrifugo"](b"GET / HTTP/1.1\r\n\r\n", stats, "bench-0|", ready)
    reader.connection_made(_Transport())  # type: ignore[arg-type]
    return reader, stats, ready, loop


def test_the_reader_is_connected_on_the_connect_push_not_on_the_upgrade() -> None:
    reader, stats, ready, loop = _reader()
    try:
        reader.data_received(UPGRADE)
        assert not ready.done()
        reader.data_received(_frame(CONNECT))
        assert ready.done() and ready.result() is True
        assert stats.events == 0
    finally:
        loop.close()


def test_every_publication_of_a_joined_frame_counts_with_its_own_latency() -> None:
    reader, stats, _, loop = _reader()
    try:
        now = time.time() * 1000.0
        joined = b"\n".join([_publication(now - 5.0, 1), b"{}", _publication(now - 50.0, 2),
                             _publication(now - 500.0, 3)])
        frames = _frame(CONNECT) + _frame(joined) + _frame(_publication(now - 5.0, 4))
        data = UPGRADE + frames
        reader.data_received(data[:200])
        reader.data_received(data[200:])
        assert stats.events == 4
        assert stats.other == 1  # the {} ping
        assert sum(stats.hist) == 4
        assert 450.0 <= stats.max_ms < 5_000.0
    finally:
        loop.close()


def test_reader_path_carries_the_connect_command_subscribing_to_the_feed() -> None:
    parts = urlsplit(centrifugo.reader_path("bench-3"))
    assert parts.path == "/connection/uni_websocket"
    assert json.loads(parse_qs(parts.query)["cf_connect"][0]) == {"subs": {"bench-3": {}}}


def test_the_config_has_a_fresh_owner_only_api_key_anonymous_uni_websocket_and_no_history(tmp_path: Path) -> None:
    first = centrifugo.write_config(tmp_path / "a", "127.0.0.1", 21003)
    second = centrifugo.write_config(tmp_path / "b", "127.0.0.1", 21003)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    config = json.loads(first.read_text())
    key = config["http_api"]["key"]
    assert len(key) >= 24 and key != json.loads(second.read_text())["http_api"]["key"]
    assert config["http_server"] == {"address": "127.0.0.1", "port": 21003}
    assert config["uni_websocket"]["enabled"] is True
    assert config["client"]["allow_anonymous_connect_without_token"] is True
    assert config["client"]["connection_limit"] >= 20_000
    channels = config["channel"]["without_namespace"]
    assert channels["allow_subscribe_for_client"] and channels["allow_subscribe_for_anonymous"]
    assert channels["history_size"] == 0


def test_a_batch_publishes_each_message_unchanged_to_its_feed_channel() -> None:
    body = centrifugo.batch_body([("bench-0", b'{"ts":1.5,"a":"\\u00e9"}'), ("bench-1", b'{"ts":2}')])
    assert json.loads(body) == {"commands": [
        {"publish": {"channel": "bench-0", "data": {"ts": 1.5, "a": "\u00e9"}}},
        {"publish": {"channel": "bench-1", "data": {"ts": 2}}},
    ]}


def test_a_built_binary_is_reused_and_a_missing_go_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(centrifugo, "_find_go", lambda: None)
    with pytest.raises(RuntimeError, match="install Go"):
        asyncio.run(centrifugo.ensure_binary(tmp_path, print))
    built = centrifugo.binary_path(tmp_path)
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert asyncio.run(centrifugo.ensure_binary(tmp_path, print)) == built
