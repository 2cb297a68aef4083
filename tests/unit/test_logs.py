"""The log filter that keeps a library's repeated error from flooding the log."""

from __future__ import annotations

import logging

from shared.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_the_same_message_passes_once_per_interval_then_says_how_many_were_held() -> None:
    clock = Clock()
    keep = RepeatFilter("aiokafka", every_s=10.0, clock=clock)
    assert keep.filter(record("aiokafka.conn", "Unable to connect"))
    for _ in range(99):
        clock.now += 0.1
        assert not keep.filter(record("aiokafka.conn", "Unable to connect"))
    clock.now += 0.2
    later = record("aiokafka.conn", "Unable to connect")
    assert keep.filter(later)
    assert later.__dict__["repeated"] == 99


def test_other_messages_and_other_loggers_pass() -> None:
    keep = RepeatFilter("aiokafka", every_s=10.0, clock=Clock())
    assert keep.filter(record("aiokafka.conn", "one"))
    assert keep.filter(record("aiokafka.conn", "another"))
    assert keep.filter(record("livefeed.history", "one"))
    assert keep.filter(record("livefeed.history", "one"))
