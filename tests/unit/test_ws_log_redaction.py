"""The WebSocket port's log lines never hold a reader token, even at debug level, where websockets
logs every request line and header it reads (the calls below are the ones it makes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import services.fanout.websocket  # noqa: F401  (installs the filter on the logger the port uses)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJmZWVkIjoicHJpdmF0ZS1hIn0.c2lnbmF0dXJlLXNlY3JldA"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def captured() -> Iterator[Capture]:
    logger = logging.getLogger("websockets.server")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_request_lines_and_headers_are_logged_without_the_token(captured: Capture) -> None:
    logger = logging.getLogger("websockets.server")
    logger.debug("< %s %s %s", "GET", f"/v1/feeds/private-a/stream?since=e.0.5&token={TOKEN}&tags=x", "HTTP/1.1")
    logger.debug("< %s: %s", "Authorization", f"Bearer {TOKEN}")
    logger.debug("< %s: %s", "Origin", "http://127.0.0.1:8080")
    assert captured.lines == [
        "< GET /v1/feeds/private-a/stream?since=e.0.5&token=[redacted]&tags=x HTTP/1.1",
        "< Authorization: Bearer [redacted]",
        "< Origin: http://127.0.0.1:8080",
    ]
    assert not any(TOKEN in line or TOKEN.split(".")[2] in line for line in captured.lines)
