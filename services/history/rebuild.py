"""How several history instances (one Kafka consumer group) share one Redis store and rebuild it together.

Each instance applies the partitions the group gives it. Three records in Redis keep them from
undoing each other's work (keys in :mod:`shared.keys`):

- ``meta:generation``: which emptying of the store the data belongs to. A consumer applies with the
  generation it positioned under, and the store refuses the write (-1) once it changed or vanished:
  after Redis lost its data, no consumer positioned before that writes a watermark past what the
  new store holds, and it goes back to position itself again.
- ``meta:history-reset``: a lock, so that one instance alone empties what is left of a lost store.
  Every step of the emptying is fenced by the lock's token: an instance paused past the lock's
  life and resumed deletes nothing another has rebuilt since.
- ``meta:rebuild``: each partition still rebuilding, with the offset it must reach. Whoever owns
  the partition (after a rebalance, its new owner) clears it on reaching the offset. While it is
  not empty, no instance serves a list (the store's page script refuses it) nor says it is ready.

:class:`Ledger` is what one read of them says (pure, unit-tested); :class:`Rebuilds` reads and writes them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from shared import keys

__all__ = ["LOCK_TTL_S", "Ledger", "Rebuilds"]

LOCK_TTL_S = 60.0
"""How long the lock of the instance emptying the store lives: longer than the emptying takes (an
announcement of a few seconds, then deleting), short enough that a killed instance's lock does not
hold the others' rebuild back for long."""
WIPE_BATCH = 500
"""Keys deleted per fenced step of the emptying."""

_BEGIN = keys.LUA + """
if redis.call('GET', k_reset()) ~= ARGV[1] then return 0 end
redis.call('DEL', k_epoch(), k_generation(), k_rebuild())
for i = 2, #ARGV, 2 do redis.call('HSET', k_rebuild(), ARGV[i], ARGV[i + 1]) end
return 1
"""

_WIPE = keys.LUA + """
if redis.call('GET', k_reset()) ~= ARGV[1] then return 0 end
if #KEYS > 0 then redis.call('DEL', unpack(KEYS)) end
return 1
"""

_FINISH = keys.LUA + """
if redis.call('GET', k_reset()) ~= ARGV[1] then return 0 end
redis.call('SET', k_epoch(), ARGV[2])
redis.call('SET', k_generation(), ARGV[3])
redis.call('DEL', k_reset())
return 1
"""

_ADOPT = keys.LUA + """
if redis.call('GET', k_epoch()) ~= ARGV[1] or redis.call('EXISTS', k_generation()) == 1
   or redis.call('EXISTS', k_reset()) == 1 then return 0 end
redis.call('SET', k_generation(), ARGV[2])
return 1
"""

_MARK = keys.LUA + """
if redis.call('GET', k_generation()) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSETNX', k_rebuild(), ARGV[i], ARGV[i + 1]) end
return 1
"""

_CLEAR = keys.LUA + """
if redis.call('GET', k_generation()) ~= ARGV[1] then return 0 end
local target = redis.call('HGET', k_rebuild(), ARGV[2])
if target and tonumber(target) <= tonumber(ARGV[3]) then redis.call('HDEL', k_rebuild(), ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Ledger:
    """One read of the shared rebuild state: the store's epoch and generation, the partitions still rebuilding."""

    epoch: str | None
    generation: str | None
    rebuilding: dict[int, int] = field(default_factory=dict)
    """Partition -> the offset it must be applied up to (exclusive) before it is complete again."""

    def intact(self, epoch: str) -> bool:
        """True if the store holds this topic epoch's data: nobody needs to empty it."""
        return self.epoch == epoch and self.generation is not None

    @classmethod
    def parse(cls, epoch: Any, generation: Any, rebuilding: Mapping[Any, Any]) -> Ledger:
        """From Redis's answers (bytes or None)."""
        return cls(
            None if epoch is None else _text(epoch),
            None if generation is None else _text(generation),
            {int(p): int(t) for p, t in rebuilding.items()},
        )


class Rebuilds:
    """Reads and writes the shared rebuild state of one Redis; every method is one round trip
    (but :meth:`wipe`), and every write is fenced by the lock's token or the generation."""

    def __init__(self, redis: aioredis.Redis, lock_ttl_s: float = LOCK_TTL_S) -> None:
        self.redis = redis
        self.lock_ttl_s = lock_ttl_s
        self._begin = redis.register_script(_BEGIN)
        self._wipe = redis.register_script(_WIPE)
        self._finish = redis.register_script(_FINISH)
        self._adopt = redis.register_script(_ADOPT)
        self._mark = redis.register_script(_MARK)
        self._clear = redis.register_script(_CLEAR)

    async def read(self) -> Ledger:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.key("epoch"))
            pipe.get(keys.key("generation"))
            pipe.hgetall(keys.key("rebuild"))
            epoch, generation, rebuilding = await pipe.execute()
        return Ledger.parse(epoch, generation, rebuilding)

    async def adopt(self, epoch: str) -> None:
        """Give a store of ``epoch`` written before generations existed (an upgrade) a generation, rather than
        emptying it; nothing if it has one, holds another epoch, or is being emptied."""
        await self._adopt(args=[epoch, secrets.token_hex(8)])

    async def claim(self, held: str | None = None) -> str | None:
        """Take the lock to empty the store: its token, or None if another instance holds it. ``held``: a token
        this instance took before a Redis error interrupted it, still its own if the lock has not expired."""
        token = secrets.token_hex(8)
        if await self.redis.set(keys.key("reset"), token, nx=True, px=int(self.lock_ttl_s * 1000)):
            return token
        current: Any = await self.redis.get(keys.key("reset"))
        return held if held is not None and current is not None and _text(current) == held else None

    async def begin(self, token: str, targets: Mapping[int, int]) -> bool:
        """Mark the store lost (no epoch, no generation) and every partition of ``targets`` as rebuilding up to
        its offset; False if the lock is no longer ``token``'s. Call before emptying the store."""
        args: list[str | int] = [token]
        for partition, target in targets.items():
            args += [partition, target]
        return bool(await self._begin(args=args))

    async def wipe(self, token: str) -> bool:
        """Delete every key history rebuilds, in fenced batches; False (and stop) once the lock is lost."""
        rebuilt = tuple((keys.PREFIX + keys.PATTERNS[name].split("{")[0]).encode() for name in keys.REBUILT)
        batch: list[bytes] = []
        async for found in self.redis.scan_iter(match=f"{keys.PREFIX}*", count=1000):
            if found.startswith(rebuilt):
                batch.append(found)
            if len(batch) >= WIPE_BATCH:
                if not await self._wipe(keys=batch, args=[token]):
                    return False
                batch = []
        return bool(await self._wipe(keys=batch, args=[token]))

    async def finish(self, token: str, epoch: str) -> str | None:
        """Adopt ``epoch`` under a new generation and release the lock: the new generation, or None if
        the lock was lost meanwhile (another instance finishes instead)."""
        generation = secrets.token_hex(8)
        return generation if await self._finish(args=[token, epoch, generation]) else None

    async def mark(self, generation: str, targets: Mapping[int, int]) -> None:
        """Mark partitions rebuilding (those not marked yet), unless the store left ``generation``."""
        if targets:
            args: list[str | int] = [generation]
            for partition, target in targets.items():
                args += [partition, target]
            await self._mark(args=args)

    async def clear(self, generation: str, partition: int, reached: int) -> None:
        """``partition`` is applied up to ``reached`` (exclusive): it no longer rebuilds if that is its
        target, and the store is still ``generation``."""
        await self._clear(args=[generation, partition, reached])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
