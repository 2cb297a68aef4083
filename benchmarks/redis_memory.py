"""``python -m benchmarks.redis_memory``: Redis memory per retained item and per Idempotency-Key.

It starts a throwaway ``redis-server`` (no persistence) on 6380 plus ``--shift``, writes items the
way history does (:meth:`shared.store.ItemStore.apply` with the partition watermark, events made
by ingest's own :mod:`services.ingest.lifecycle`) and Idempotency-Keys the way ingest does
(:class:`services.ingest.idempotency.IdempotencyStore`), and reads ``INFO memory`` ``used_memory``
before and after each step. docs/scaling.md sizes Redis from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from services.ingest import lifecycle
from services.ingest.idempotency import IdempotencyStore, op_id
from shared.cursor import Cursor
from shared.models import ItemCreate, ItemUpdate
from shared.settings import CommonSettings
from shared.store import ItemStore
from shared.wire import Event

__all__ = ["Profile", "main"]

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "0bench00"
PARTITIONS = 3
WRITER = "desk"


@dataclass(frozen=True)
class Profile:
    """One kind of item: how long its text is and what else it carries."""

    name: str
    headline_chars: int
    body_chars: int
    tags: int
    extras: bool
    """A byline and a source URL."""

    def create(self, k: int) -> ItemCreate:
        words = "Air defences were active over the capital overnight, officials said. "
        body = (words * (self.body_chars // len(words) + 1))[: self.body_chars]
        return ItemCreate(
            headline=(f"{k} " + "Explosions heard in Kyiv as air raid sirens sound " * 8)[: self.headline_chars],
            body=body,
            tags=[f"tag-{(k + i) % 40}" for i in range(self.tags)],
            byline="Staff reporter" if self.extras else None,
            url="https://news.example/world/2026/11/27/kyiv-explosions" if self.extras else None,
        )


PROFILES = (
    Profile("headline only", 80, 0, 0, False),
    Profile("typical (80-char headline, 600-char body, 2 tags, byline, url)", 80, 600, 2, True),
    Profile("long (80-char headline, 5,000-char body, 5 tags, byline, url)", 80, 5_000, 5, True),
)


def _log(message: str) -> None:
    print(f"redis_memory: {message}", file=sys.stderr, flush=True)


async def _used(redis: aioredis.Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def _wait_for(redis: aioredis.Redis, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await redis.ping()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def measure_profile(redis: aioredis.Redis, profile: Profile, feeds: int, per_feed: int) -> dict[str, object]:
    """Write ``feeds`` times ``per_feed`` items of ``profile``, edit each once, then key each; bytes per step."""
    defaults = CommonSettings.model_fields
    await redis.flushall()
    store = ItemStore(redis, max_items=per_feed, max_age_s=int(defaults["retention_age_s"].default),
                      op_ttl_s=int(defaults["idempotency_ttl_s"].default))
    idem = IdempotencyStore(redis, ttl_s=int(defaults["idempotency_ttl_s"].default))
    await store.reset(EPOCH)
    offsets = [0] * PARTITIONS
    start = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    async def apply(event: Event, feed_index: int) -> None:
        partition = feed_index % PARTITIONS
        await store.apply(event, Cursor(EPOCH, partition, offsets[partition]), watermark=True)
        offsets[partition] += 1

    await apply(lifecycle.publish("warm-up", "01warmup", profile.create(0), start, by=WRITER), 0)
    keys = [uuid.uuid4().hex for _ in range(feeds * per_feed)]
    items: list[tuple[int, dict[str, object]]] = []
    before = await _used(redis)
    for k in range(feeds * per_feed):
        now = start + timedelta(milliseconds=k)
        event = lifecycle.publish(f"feed-{k % feeds}", lifecycle.new_item_id(now), profile.create(k), now,
                                  op_id(WRITER, keys[k]), by=WRITER)
        await apply(event, k % feeds)
        items.append((k % feeds, event.item))
    published = await _used(redis)
    for k, (feed_index, item) in enumerate(items):
        now = start + timedelta(hours=1, milliseconds=k)
        await apply(lifecycle.edit(item, ItemUpdate(correction="Corrects the time of the first blast."), now,
                                   by=WRITER), feed_index)
    edited = await _used(redis)
    for k, (_, item) in enumerate(items):
        claim = await idem.begin(WRITER, keys[k], uuid.uuid4().hex + uuid.uuid4().hex, str(item["id"]))
        body = orjson.dumps({"item": item, "cursor": f"{EPOCH}.0.{k}"})
        await idem.finish(WRITER, keys[k], claim, status=201, body=body)
    keyed = await _used(redis)
    n = len(items)
    return {
        "profile": profile.name,
        "items": n,
        "feeds": feeds,
        "item_json_bytes": len(orjson.dumps(items[0][1])),
        "per_item_bytes": round((published - before) / n),
        "per_extra_version_bytes": round((edited - published) / n),
        "per_idempotency_key_bytes": round((keyed - edited) / n),
        "used_memory_mb": round(keyed / 1_048_576, 1),
    }


async def measure(port: int, feeds: int, per_feed: int) -> list[dict[str, object]]:
    redis = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=False, socket_timeout=30)
    try:
        await _wait_for(redis)
        rows = []
        for profile in PROFILES:
            _log(f"{profile.name}: {feeds * per_feed:,} items")
            rows.append(await measure_profile(redis, profile, feeds, per_feed))
        return rows
    finally:
        await redis.aclose()


def _markdown(rows: list[dict[str, object]], version: str, command: str) -> str:
    lines = [
        "# Redis memory per retained item",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), "
        f"redis-server {version} (jemalloc), with `{command}`.",
        "",
        "Items are written as history writes them (`ItemStore.apply` with the partition watermark; events from "
        "ingest's `lifecycle`), each publish carrying an Idempotency-Key's `op` as the CLI and console send. "
        "`used_memory` (`INFO memory`) is read before and after each step; each figure is the difference "
        "divided by the items. *per item*: the item's hash, its first version in `rev:`, its entries in "
        "`list:` and `tag:`, the `op:` key. *per extra version*: one edit (a correction) of each item, which "
        "adds a version to `rev:` (up to 100 are kept). *per Idempotency-Key*: ingest's `idem:` hash with "
        "the 201 answer, kept `LIVEFEED_IDEMPOTENCY_TTL_S` (24 h).",
        "",
        "| item | items (feeds) | item JSON bytes | per item | per extra version | per Idempotency-Key |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['profile']} | {row['items']:,} ({row['feeds']}) | {row['item_json_bytes']:,} "
            f"| {row['per_item_bytes']:,} B | {row['per_extra_version_bytes']:,} B "
            f"| {row['per_idempotency_key_bytes']:,} B |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_memory", description=__doc__)
    parser.add_argument("--shift", type=int, default=18_000, help="port shift: Redis on 6380 plus it (18000)")
    parser.add_argument("--feeds", type=int, default=10, help="feeds to spread the items over (10)")
    parser.add_argument("--per-feed", type=int, default=1_000, help="items per feed, also the retention (1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "redis-memory.md")
    args = parser.parse_args(argv)
    server = shutil.which("redis-server")
    if server is None:
        parser.error("redis-server is not installed")
    version = subprocess.run([server, "--version"], capture_output=True, text=True, check=True).stdout.split()[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops Redis
    data = Path(tempfile.mkdtemp(prefix="livefeed-redis-memory-"))
    port = 6380 + args.shift
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        rows = asyncio.run(measure(port, args.feeds, args.per_feed))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.redis_memory", *given])
    text = _markdown(rows, version.removeprefix("v="), command)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
