"""benchmarks/costs.py: its static server answers whole requests only, and its histogram figures are sound."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.costs import _ANSWER, _Static, main


class _Recording(asyncio.Transport):
    """A transport that keeps what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))


def test_the_static_server_answers_each_whole_request_once_however_the_bytes_arrive() -> None:
    post = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    get = b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n"
    protocol, transport = _Static(), _Recording()
    protocol.connection_made(transport)
    stream = post + get + post
    protocol.data_received(stream[:20])
    protocol.data_received(stream[20 : len(post) - 2])
    assert transport.written == []
    protocol.data_received(stream[len(post) - 2 : -1])
    assert transport.written == [_ANSWER, _ANSWER]
    protocol.data_received(stream[-1:])
    assert transport.written == [_ANSWER] * 3


def test_the_histogram_measure_gives_percentiles_within_a_bucket_of_the_exact_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--only", "hist", "--samples", "20000"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["measure"] == "hist" and row["flat_list_ns_per_sample"] > 0
    for p in ("p50_ms", "p95_ms", "p99_ms"):
        assert 0.0 <= row["flat_list"][p] - row["exact"][p] <= 0.1 + 1e-9, p
