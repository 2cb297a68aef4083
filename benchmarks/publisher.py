"""The newsroom side: posts items through ingest at a set rate, or in bursts, and times each ack.

Posts are scheduled on a fixed timetable (item ``k`` at ``start + k / rate``), each on its own
keep-alive connection from a small pool, so a slow answer does not delay the next post: the
offered rate stays the set rate. Every answer is timed (POST round trip, Kafka acks=all).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson

from .hist import Histogram
from .httpclient import HttpConnection, build_request

__all__ = ["PublishResult", "Publisher", "Target"]


@dataclass(frozen=True)
class Target:
    """Where a post goes: the feed, and the tag it carries (matched by tag-filtered readers)."""

    feed: str
    tag: str | None = None


@dataclass
class PublishResult:
    """What the publisher sent and how ingest answered."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    acked_targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0
    hist: Histogram = field(default_factory=Histogram)


class Publisher:
    """Posts to ``http://host:port/v1/feeds/{feed}/items`` with a newsroom bearer token."""

    def __init__(self, host: str, port: int, token: str, *, pool: int = 32) -> None:
        self.host = host
        self.port = port
        self.token = token
        self._free: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for _ in range(pool):
            self._free.put_nowait(HttpConnection(host, port))
        self._serial = 0

    def _request(self, target: Target) -> bytes:
        self._serial += 1
        body: dict[str, object] = {
            "headline": f"Benchmark item {self._serial}",
            "body": "A short body of a breaking news item, about as long as a real one's first line.",
        }
        if target.tag:
            body["tags"] = [target.tag]
        return build_request(
            "POST", self.host, self.port, f"/v1/feeds/{target.feed}/items", body=orjson.dumps(body),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )

    async def _post(self, target: Target, result: PublishResult) -> None:
        conn = await self._free.get()
        started = time.perf_counter()
        try:
            status, _ = await conn.send(self._request(target))
        except (OSError, TimeoutError, ConnectionError):
            result.failed += 1
            return
        finally:
            self._free.put_nowait(conn)
        result.hist.add((time.perf_counter() - started) * 1000.0)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 201:
            result.acked += 1
            result.acked_targets.append(target)
        else:
            result.failed += 1

    async def run(self, targets: list[Target], rate: float) -> PublishResult:
        """Post one item per target, ``rate`` per second on a fixed timetable; wait for every answer."""
        result = PublishResult()
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: list[asyncio.Task[None]] = []
        for k, target in enumerate(targets):
            due = start + k / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._post(target, result)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.seconds = loop.time() - start
        return result

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()
