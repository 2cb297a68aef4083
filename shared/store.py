"""The Redis item store: each feed's current items, written by history (and ingest), read by both.

Every write goes through one Lua script, so applying an event is atomic and idempotent: an
event whose version is not newer than the stored one changes nothing, and history's
per-partition watermark makes a replayed Kafka record a no-op. Kafka stays the source of
truth; everything here can be rebuilt from the topic (``services/history/consumer.py``).

The key layout is in :mod:`shared.keys`.

A list answer's cursor is the feed's partition watermark, not the feed's last event: history has
applied everything in the partition up to it, so nothing of the feed lies between the items and
that position. A quiet feed's cursor thus stays as recent as its busy neighbours', and the
stream can continue from it however long the feed has been quiet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from . import keys
from .cursor import Cursor
from .settings import CommonSettings
from .wire import Event, EventType

__all__ = ["MAX_REVISIONS", "ItemStore", "StoreEmptied", "StoredItem", "make_redis"]

MAX_KEY_EVENTS = 1_000
MAX_REVISIONS = 100
"""Versions kept per item (the newest): a correction trail long enough for any real item, bounded per key."""


def make_redis(settings: CommonSettings) -> aioredis.Redis:
    """A Redis client for the configured URL; responses stay bytes (JSON goes out unparsed).

    Every call gives up after ``redis_timeout_s`` and is not retried on a timeout (the library's
    default retries ten times with backoff, which turns a paused Redis into a long hang). A
    broken pooled connection, as after a Redis restart, is retried once on a new one.
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


_APPLY = keys.LUA + """
local feed, id = ARGV[1], ARGV[2]
local version = tonumber(ARGV[3])
local status = ARGV[4]
local item_json = ARGV[5]
local offset = tonumber(ARGV[6])
local cursor = ARGV[7]
local key_event = ARGV[8] == '1'
local max_items = tonumber(ARGV[9])
local ttl = tonumber(ARGV[10])
local wm_key = ARGV[11] ~= '' and k_wm(ARGV[11]) or ''
local now_ms = tonumber(ARGV[12])
local tags_json = ARGV[13]
local max_keys = tonumber(ARGV[14])
local pinned = ARGV[15] == '1'
local op = ARGV[16]
local op_ttl = tonumber(ARGV[17])
local max_revs = tonumber(ARGV[18])
local generation = ARGV[19]

if wm_key ~= '' then
  if redis.call('EXISTS', k_epoch()) == 0 then return -1 end
  if generation ~= '' and redis.call('GET', k_generation()) ~= generation then return -1 end
  local wm = redis.call('GET', wm_key)
  if wm and tonumber(wm) >= offset then return 0 end
end
if op ~= '' then
  local first = redis.call('GET', k_op(op))
  if first and first ~= id then
    if wm_key ~= '' then redis.call('SET', wm_key, offset) end
    return 0
  end
  redis.call('SET', k_op(op), id, 'EX', op_ttl)
end
local ikey = k_item(feed, id)
local list = k_list(feed)
local keyev = k_keyev(feed)
local pins = k_pinned(feed)
local old = redis.call('HMGET', ikey, 'version', 'tags', 'seq', 'status')
local rkey = k_rev(feed, id)
if status == 'retracted' then
  redis.call('DEL', rkey)
elseif old[4] ~= 'retracted' and redis.call('ZCOUNT', rkey, version, version) == 0 then
  redis.call('ZADD', rkey, version, item_json)
  redis.call('EXPIRE', rkey, ttl)
  local r = redis.call('ZCARD', rkey)
  if r > max_revs then redis.call('ZREMRANGEBYRANK', rkey, 0, r - max_revs - 1) end
end
local applied = 0
if (not old[1]) or tonumber(old[1]) < version then
  applied = 1
  local seq = offset
  if old[3] then seq = tonumber(old[3]) end
  redis.call('HSET', ikey, 'item', item_json, 'version', version, 'status', status,
             'seq', seq, 'cursor', cursor, 'tags', tags_json, 'key', key_event and '1' or '0',
             'pin', pinned and '1' or '0')
  redis.call('EXPIRE', ikey, ttl)
  if old[2] then
    for _, t in ipairs(cjson.decode(old[2])) do
      redis.call('ZREM', k_tag(feed, t), id)
    end
  end
  if status == 'retracted' then
    redis.call('ZREM', list, id)
    redis.call('ZREM', keyev, id)
    redis.call('ZREM', pins, id)
  else
    redis.call('ZADD', list, seq, id)
    redis.call('EXPIRE', list, ttl)
    for _, t in ipairs(cjson.decode(tags_json)) do
      local tkey = k_tag(feed, t)
      redis.call('ZADD', tkey, seq, id)
      redis.call('EXPIRE', tkey, ttl)
    end
    if key_event then
      redis.call('ZADD', keyev, seq, id)
      redis.call('EXPIRE', keyev, ttl)
      local k = redis.call('ZCARD', keyev)
      if k > max_keys then redis.call('ZREMRANGEBYRANK', keyev, 0, k - max_keys - 1) end
    else
      redis.call('ZREM', keyev, id)
    end
    if pinned then
      redis.call('ZADD', pins, seq, id)
      redis.call('EXPIRE', pins, ttl)
      local k = redis.call('ZCARD', pins)
      if k > max_keys then redis.call('ZREMRANGEBYRANK', pins, 0, k - max_keys - 1) end
    else
      redis.call('ZREM', pins, id)
    end
  end
  local n = redis.call('ZCARD', list)
  if n > max_items then
    for _, v in ipairs(redis.call('ZRANGE', list, 0, n - max_items - 1)) do
      local vkey = k_item(feed, v)
      redis.call('ZREM', list, v)
      local vt = redis.call('HGET', vkey, 'tags')
      if vt then
        for _, t in ipairs(cjson.decode(vt)) do
          redis.call('ZREM', k_tag(feed, t), v)
        end
      end
    end
  end
  redis.call('ZADD', k_feeds(), now_ms, feed)
  redis.call('ZREMRANGEBYSCORE', k_feeds(), '-inf', now_ms - ttl * 1000)
end
if wm_key ~= '' then
  redis.call('SET', wm_key, offset)
  redis.call('SET', k_head(feed), cursor, 'EX', ttl)
end
return applied
"""


_HEAD = keys.LUA + """
local function head(feed)
  if redis.call('EXISTS', k_epoch()) == 0 or redis.call('EXISTS', k_rebuild()) == 1 then return -1 end
  local h = redis.call('GET', k_head(feed))
  if not h then return false end
  local epoch, partition = string.match(h, '^([^.]+)%.(%d+)%.')
  local wm = redis.call('GET', k_wm(partition))
  if not wm then return h end
  return epoch .. '.' .. partition .. '.' .. wm
end
"""

_PAGE = _HEAD + """
local feed, index, top, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {head(feed)}
if out[1] == -1 then return out end
local ids = redis.call('ZRANGE', index, top, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local row = redis.call('HMGET', k_item(feed, id), 'item', 'version', 'status', 'seq', 'cursor')
  if not row[1] then
    redis.call('ZREM', index, id)
  elseif row[3] == 'published' then
    table.insert(out, row[1])
    table.insert(out, row[2])
    table.insert(out, row[4])
    table.insert(out, row[5])
  end
end
return out
"""


class StoreEmptied(Exception):
    """Redis has lost livefeed's data (restarted empty, flushed): history is about to rebuild it, or is."""


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as Redis holds it: its JSON, unparsed, and where it stands in the feed."""

    item_json: bytes
    version: int
    status: str
    seq: int
    cursor: Cursor

    def item(self) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(self.item_json))


class ItemStore:
    """Reads and writes one Redis database's feeds; every method is one round trip or a pipeline."""

    def __init__(self, redis: aioredis.Redis, *, max_items: int, max_age_s: int, op_ttl_s: int = 86_400) -> None:
        self.redis = redis
        self.max_items = max_items
        self.max_age_s = max_age_s
        self.op_ttl_s = op_ttl_s
        self._apply = redis.register_script(_APPLY)
        self._page = redis.register_script(_PAGE)

    async def apply(self, event: Event, cursor: Cursor, *, watermark: bool = False, generation: str = "") -> int:
        """Store ``event`` at ``cursor`` unless a newer version is there.

        Returns 1 if applied, 0 if it changed nothing, -1 if Redis lost livefeed's data
        (history must then rebuild). With ``watermark`` (history only), records the partition
        offset and the feed's head cursor in the same step; with ``generation`` too, -1 also when
        the store was emptied since (``services/history/rebuild.py``), so a consumer positioned
        before that never writes a watermark past what the new store holds.
        """
        item = event.item
        result = await self._apply(
            args=[
                event.feed,
                event.item_id,
                event.version,
                "retracted" if event.type is EventType.retracted else "published",
                orjson.dumps(item),
                cursor.offset,
                cursor.serialize(),
                "1" if item.get("key_event") else "0",
                self.max_items,
                self.max_age_s,
                str(cursor.partition) if watermark else "",
                int(time.time() * 1000),
                orjson.dumps(item.get("tags", [])),
                MAX_KEY_EVENTS,
                "1" if item.get("pinned") else "0",
                event.op or "",
                self.op_ttl_s,
                MAX_REVISIONS,
                generation,
            ]
        )
        return int(result)

    async def get(self, feed: str, item_id: str) -> StoredItem | None:
        """The item's latest state, however far back in its feed (kept for the age limit), or None."""
        values: list[Any] = await self.redis.hmget(
            keys.key("item", feed=feed, id=item_id), ["item", "version", "status", "seq", "cursor"]
        )
        return _stored(values)

    async def revisions(self, feed: str, item_id: str) -> tuple[str | None, list[bytes]]:
        """The item's status (None if unknown) and its kept versions' JSON, oldest first, in one round trip.

        A retracted item has no versions left (the retraction deleted them); the newest
        :data:`MAX_REVISIONS` of a long-lived item are kept.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.key("item", feed=feed, id=item_id), "status")
            pipe.zrange(keys.key("rev", feed=feed, id=item_id), 0, -1)
            status, versions = await pipe.execute()
        return (None if status is None else status.decode()), list(versions)

    async def page(
        self, feed: str, *, limit: int, before: int | None = None, tag: str | None = None,
        key_events: bool = False, pinned: bool = False,
    ) -> tuple[Cursor | None, list[StoredItem]]:
        """The feed's head and its current items, newest first, published before offset ``before``,
        in one atomic round trip: every event up to the head is reflected in the items.

        The head is the feed's partition watermark (see the module doc); it is None for a feed
        history has never seen. ``tag`` narrows to one tag; ``key_events`` and ``pinned`` read
        those items alone, however far back they are (they outlive the per-feed item limit, not
        the age limit). Raises :class:`StoreEmptied` if Redis has lost the data or a partition is
        still being rebuilt (``meta:rebuild``), so no empty or partial answer passes as a feed.
        """
        top = "+inf" if before is None else f"({before}"
        rows: list[Any] = await self._page(
            args=[feed, self._index(feed, tag=tag, key_events=key_events, pinned=pinned), top, limit]
        )
        if rows[0] == -1:
            raise StoreEmptied
        head = None if not rows[0] else Cursor.parse(rows[0].decode())
        items = [
            StoredItem(rows[i], int(rows[i + 1]), "published", int(rows[i + 2]), Cursor.parse(rows[i + 3].decode()))
            for i in range(1, len(rows), 4)
        ]
        return head, items

    @staticmethod
    def _index(feed: str, *, tag: str | None, key_events: bool, pinned: bool) -> str:
        if key_events:
            return keys.key("keyev", feed=feed)
        if pinned:
            return keys.key("pinned", feed=feed)
        if tag is not None:
            return keys.key("tag", feed=feed, tag=tag)
        return keys.key("list", feed=feed)

    async def feeds(self) -> list[tuple[str, int]]:
        """Every live feed with the time of its last change (ms since the epoch), newest first."""
        rows: list[Any] = await self.redis.zrange(keys.key("feeds"), 0, -1, desc=True, withscores=True)
        return [(feed.decode(), int(score)) for feed, score in rows]

    async def feed_count(self) -> int:
        return int(await self.redis.zcard(keys.key("feeds")))

    async def has_feed(self, feed: str) -> bool:
        return await self.redis.zscore(keys.key("feeds"), feed) is not None

    async def watermark(self, partition: int) -> int | None:
        value: Any = await self.redis.get(keys.key("wm", partition=partition))
        return None if value is None else int(value)

    async def epoch(self) -> str | None:
        value: Any = await self.redis.get(keys.key("epoch"))
        return None if value is None else value.decode()

    async def reset(self, epoch: str) -> None:
        """Forget every feed (their data belongs to another topic epoch) and adopt ``epoch``."""
        rebuilt = tuple((keys.PREFIX + keys.PATTERNS[name].split("{")[0]).encode() for name in keys.REBUILT)
        async for found in self.redis.scan_iter(match=f"{keys.PREFIX}*", count=1000):
            if found.startswith(rebuilt):
                await self.redis.delete(found)
        await self.redis.set(keys.key("epoch"), epoch)


def _stored(values: list[Any]) -> StoredItem | None:
    item_json, version, status, seq, cursor = values
    if item_json is None or version is None or status is None or seq is None or cursor is None:
        return None
    return StoredItem(item_json, int(version), status.decode(), int(seq), Cursor.parse(cursor.decode()))
