"""Fault injection for integration tests, and clients that ride through the faults.

``Stack.paused`` (deploy/stack.py) and :func:`crash` stop one of the stack's processes (SIGSTOP,
or a signal to its process group); :func:`restore` starts it again if it is gone, for a test's ``finally``.
:class:`ResumingReader` reconnects after any drop from its last cursor, as a browser does, and
:class:`KeyedWriter` retries every post with the same Idempotency-Key until it is acknowledged,
as a newsroom tool should: what they end up with is what the faults let through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Origin

from deploy.stack import Stack
from tests.utils.kafka import Record, kafka_events

__all__ = [
    "KeyedWriter",
    "ReaderBroken",
    "ResumingReader",
    "crash",
    "exited",
    "history_committed",
    "last_words",
    "offset",
    "read_back",
    "restore",
    "settle",
    "until",
    "wait_ready",
]

IDLE_S = 15.0
"""A stream silent this long is treated as dropped (the test stack sends a heartbeat every 5 s)."""
HISTORY_GROUP = "livefeed-history"
"""History's consumer group (LIVEFEED_HISTORY_GROUP's default; the test stack keeps it)."""
WRITER_RETRYABLE = frozenset({409, 429, 502, 503, 504})
"""Answers a keyed post is retried on: busy key, rate limit, gateway without ingest, Kafka or Redis away,
and the gateway's timeout (the write may have happened: the key makes the retry one item, as the CLI does)."""


def offset(cursor: str) -> int:
    """The Kafka offset in a cursor (``epoch.partition.offset``); one feed's cursors share a partition."""
    return int(cursor.rsplit(".", 1)[1])


async def crash(stack: Stack, name: str, sig: signal.Signals, timeout: float = 30.0) -> float:
    """Send ``sig`` to the process group of ``name``, wait until it exits, forget it; return the seconds it took.

    A process that does not exit within ``timeout`` is killed and the test fails: a SIGTERM
    that does not end a service within seconds would hang every deploy.
    """
    proc = stack.procs[name]
    started = time.monotonic()
    os.killpg(proc.pid, sig)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired as exc:
        stack.stop_process(name, timeout=1)
        raise AssertionError(f"{name} did not exit within {timeout:g}s of {sig.name}") from exc
    took = time.monotonic() - started
    stack.stop_process(name)
    return took


async def restore(stack: Stack, name: str) -> None:
    """Start ``name`` again (and wait until it answers) unless it is running: every fault test's ``finally``."""
    proc = stack.procs.get(name)
    if proc is not None and proc.poll() is None:
        return
    stack.stop_process(name)
    if name in stack.topology.kafka_nodes:
        await asyncio.to_thread(stack.start_broker, name)
    else:
        await asyncio.to_thread(stack.start_service, name)


def exited(stack: Stack) -> list[str]:
    """The stack's processes that are no longer running (nothing restarts them in the test stack)."""
    return [name for name, proc in stack.procs.items() if proc.poll() is not None]


def last_words(stack: Stack, name: str) -> str:
    """The last error (or worse) line of a service's log, cut short: why it exited."""
    lines = stack.log_path(name).read_text(errors="replace").splitlines()
    bad = [line for line in lines if '"level":"critical"' in line or '"level":"error"' in line]
    return (bad or lines or ["(empty log)"])[-1][:600]


async def history_committed(stack: Stack, cursor: str, timeout: float) -> float | None:
    """Seconds until history's consumer group has committed past ``cursor``; None on timeout or if history exited.

    A commit is history's own word that it applied the event from Kafka: ingest's write-through
    puts items in Redis too, so the list alone cannot tell a live history consumer from a dead one.
    """
    _, partition, at = cursor.rsplit(".", 2)
    tp = TopicPartition("livefeed.events", int(partition))
    started = time.monotonic()
    while time.monotonic() - started < timeout and "history" not in exited(stack):
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.topology.kafka_bootstrap)
        try:
            await admin.start()
            committed = (await admin.list_consumer_group_offsets(HISTORY_GROUP, partitions=[tp])).get(tp)
            if committed is not None and committed.offset > int(at):
                return time.monotonic() - started
        except KafkaError:
            pass
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
    return None


async def read_back(stack: Stack, feed: str, epoch: str, timeout: float = 30.0) -> list[Record]:
    """The feed's records in Kafka (:func:`kafka_events`), waiting (bounded) for a broker that just resumed.

    A broker resumed after a long pause answers metadata requests without itself for a moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return [record for record, _ in (await kafka_events(stack, {feed}, epoch))[feed]]
        except KafkaError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


async def wait_ready(base_url: str, timeout: float) -> float:
    """Seconds until history's readiness says 200 (caught up with Kafka); fails after ``timeout``."""
    started = time.monotonic()
    last = "no answer"
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(httpx.TransportError):
                answer = await client.get("/api/history/readyz")
                if answer.status_code == 200:
                    return time.monotonic() - started
                last = f"{answer.status_code} {answer.text[:200]}"
            await asyncio.sleep(0.1)
    raise AssertionError(f"history not ready {timeout:g}s after its restart: {last}")


async def until(check: Callable[[], bool], timeout: float, what: str, tasks: list[asyncio.Task[Any]]) -> None:
    """Wait until ``check()``; fail after ``timeout``, or at once if one of ``tasks`` died (with its error)."""
    deadline = time.monotonic() + timeout
    while not check():
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"{task.get_name()} failed while waiting for {what}") from task.exception()
        assert time.monotonic() < deadline, f"no {what} within {timeout:g}s"
        await asyncio.sleep(0.05)


class ReaderBroken(Exception):
    """The stream broke its contract (a reset, a hello at another cursor): reconnecting cannot fix it."""


class _Dropped(Exception):
    """The stream could not be opened or ended; the reader reconnects."""


@dataclass(eq=False)
class ResumingReader:
    """A reader of ``feed`` that reconnects after any drop with its last cursor (WS ``since``, SSE ``Last-Event-ID``).

    With no cursor it starts from now, at the cursor its first ``hello`` names.
    ``received`` is every item event in the order it arrived. Set :meth:`until` to learn, through
    :attr:`reached`, when it has read up to a cursor.
    """

    transport: Literal["ws", "sse"]
    feed: str
    cursor: str | None
    received: list[Record] = field(default_factory=list)
    connections: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    _target: int | None = field(default=None, init=False, repr=False)

    def until(self, cursor: str) -> None:
        """Set :attr:`reached` once this reader has read ``cursor`` (at once if it already has)."""
        self._target = offset(cursor)
        self.reached.clear()
        self._check_reached()

    async def run(self, ws_url: str, base_url: str, origin: str) -> None:
        """Read until cancelled, reconnecting after each drop (backoff 0.1 s to 1 s); raises :class:`ReaderBroken`."""
        backoff = 0.1
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=IDLE_S)) as client:
            while True:
                connections = self.connections
                try:
                    if self.transport == "ws":
                        await self._ws_session(ws_url, origin)
                    else:
                        await self._sse_session(client, origin)
                    self.drops["ended"] += 1
                except _Dropped as exc:
                    self.drops[str(exc)] += 1
                except (OSError, TimeoutError, WebSocketException, httpx.HTTPError) as exc:
                    self.drops[type(exc).__name__] += 1
                if self.connections > connections:
                    backoff = 0.1
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)

    async def _ws_session(self, ws_url: str, origin: str) -> None:
        url = f"{ws_url}/v1/feeds/{self.feed}/stream" + ("" if self.cursor is None else f"?since={self.cursor}")
        try:
            async with connect(url, origin=Origin(origin), open_timeout=10, close_timeout=1) as ws:
                self._hello(orjson.loads(await asyncio.wait_for(ws.recv(), IDLE_S)))
                while True:
                    self._take(orjson.loads(await asyncio.wait_for(ws.recv(), IDLE_S)))
        except InvalidStatus as exc:
            raise _Dropped(f"WS {exc.response.status_code}") from exc

    async def _sse_session(self, client: httpx.AsyncClient, origin: str) -> None:
        headers = {"Origin": origin, "Accept": "text/event-stream"}
        if self.cursor is not None:
            headers["Last-Event-ID"] = self.cursor
        async with client.stream("GET", f"/v1/feeds/{self.feed}/events", headers=headers) as response:
            if response.status_code != 200:
                raise _Dropped(f"SSE {response.status_code}")
            data, hello = "", False
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    message: dict[str, Any] = orjson.loads(data)
                    if not hello:
                        self._hello(message)
                        hello = True
                    else:
                        self._take(message)
                    data = ""

    def _hello(self, message: dict[str, Any]) -> None:
        if message["type"] == "reset":
            raise ReaderBroken(f"{self.transport} reader got {message} resuming from {self.cursor}")
        if message["type"] != "hello" or (self.cursor is not None and message["cursor"] != self.cursor):
            raise ReaderBroken(f"{self.transport} reader resuming from {self.cursor} got {message} first")
        self.cursor = message["cursor"]
        self.connections += 1

    def _take(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "heartbeat":
            return
        if not kind.startswith("item."):
            raise ReaderBroken(f"{self.transport} reader at {self.cursor} got {message}")
        item = message["item"]
        self.received.append((message["cursor"], kind, item["id"], item["version"]))
        self.cursor = message["cursor"]
        self._check_reached()

    def _check_reached(self) -> None:
        if self._target is not None and self.cursor is not None and offset(self.cursor) >= self._target:
            self.reached.set()


async def settle(readers: list[ResumingReader], tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait until every reader has :attr:`~ResumingReader.reached` its cursor; fail with each one's state."""

    def state() -> str:
        return "; ".join(f"{r.transport} at {r.cursor} ({len(r.received)} events, drops {dict(r.drops)})"
                         for r in readers)

    try:
        await until(lambda: all(r.reached.is_set() for r in readers), timeout, "readers caught up", list(tasks))
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {state()}") from exc.__cause__
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise AssertionError(f"{task.get_name()} failed after catching up") from task.exception()


@dataclass(eq=False)
class KeyedWriter:
    """Posts items to ``feed``, each with its own Idempotency-Key, retried until a 2xx (or ``give_up_s``).

    ``answers`` counts every status seen (0: no answer at all); ``acked`` holds each 2xx body in
    the order the answers came. An answer that retrying cannot fix (a 500, a 4xx other than
    409 and 429) fails the writer at once.
    """

    client: httpx.AsyncClient
    feed: str
    give_up_s: float = 60.0
    acked: list[dict[str, Any]] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    no_answer: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    in_flight: int = 0

    async def post(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Post ``body`` until it is acknowledged; return the 2xx body."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        deadline = time.monotonic() + self.give_up_s
        while True:
            started = time.monotonic()
            self.in_flight += 1
            try:
                answer = await self.client.post(f"/v1/feeds/{self.feed}/items", json=body, headers=headers, timeout=20)
            except httpx.TransportError as exc:
                self.answers[0] += 1
                self.no_answer[type(exc).__name__] += 1
            else:
                self.answers[answer.status_code] += 1
                if answer.is_success:
                    self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                    written: dict[str, Any] = answer.json()
                    self.acked.append(written)
                    return written
                if answer.status_code not in WRITER_RETRYABLE:
                    raise AssertionError(f"POST answered {answer.status_code}: {answer.text[:300]}")
            finally:
                self.in_flight -= 1
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            assert time.monotonic() < deadline, f"a keyed POST was not acknowledged within {self.give_up_s:g}s"
            await asyncio.sleep(0.2)

    async def run(self, stop: asyncio.Event, name: str, pace_s: float) -> None:
        """Post one item after another, ``pace_s`` apart, until ``stop`` is set."""
        n = 0
        while not stop.is_set():
            await self.post({"headline": f"{name} {n}", "tags": [name]})
            n += 1
            await asyncio.sleep(pace_s)
