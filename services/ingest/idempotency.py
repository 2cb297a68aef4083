"""Idempotency-Key support: a retried write returns the first answer and publishes nothing new.

A key's record lives in Redis (``idem:{scope}:{key}``, see :mod:`shared.keys`) for the configured TTL. The first
request holds a lease while it publishes; a concurrent retry waits for its answer; a retry
after a failed attempt takes over and reuses the item id the first attempt chose, so even an
ambiguous Kafka failure cannot make two different items of one post.

While Redis cannot be reached, a write goes ahead without a record: its answer is kept in this
process (:class:`LocalAnswers`) until Redis is back, and its event carries
:func:`op_id`, so a retry that reaches another process still makes no second item downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from shared import keys
from shared.breaker import Breaker, StoreUnavailable

__all__ = ["Claim", "Idempotency", "IdempotencyStore", "LocalAnswers", "Outcome", "op_id"]

_BEGIN = """
local k = KEYS[1]
local fp, owner, item_id = ARGV[1], ARGV[2], ARGV[3]
local now, lease_ms, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cur = redis.call('HMGET', k, 'fp', 'state', 'status', 'body', 'item_id', 'lease')
if not cur[1] then
  redis.call('HSET', k, 'fp', fp, 'state', 'pending', 'owner', owner, 'item_id', item_id,
             'lease', now + lease_ms)
  redis.call('EXPIRE', k, ttl)
  return {'new', item_id}
end
if cur[1] ~= fp then return {'mismatch', cur[5]} end
if cur[2] == 'done' then return {'done', cur[3], cur[4]} end
if cur[2] == 'failed' or tonumber(cur[6]) < now then
  redis.call('HSET', k, 'state', 'pending', 'owner', owner, 'lease', now + lease_ms)
  return {'new', cur[5]}
end
return {'busy'}
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if ARGV[2] == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[3], 'body', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'failed')
end
return 1
"""


_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'done', 'owner', '', 'item_id', ARGV[2],
           'lease', 0, 'status', ARGV[3], 'body', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def op_id(scope: str, key: str) -> str:
    """The event's ``op`` for a publish with this caller and key (see :attr:`shared.wire.Event.op`)."""
    return hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`IdempotencyStore.begin` decided for one request.

    ``unrecorded``: Redis could not be asked; the write goes ahead and its answer is kept locally.
    ``item_id`` is the item the key stands for (``new``, ``unrecorded``, ``mismatch`` and a local ``done``).
    """

    kind: Literal["new", "done", "mismatch", "busy", "unrecorded"]
    owner: str = ""
    item_id: str = ""
    status: int = 0
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`Idempotency.once` did: ``ran`` the work, ``replayed`` an earlier answer, or neither.

    ``mismatch``: the key stands for another request (``item_id`` is its item); ``busy``: it is still running.
    """

    kind: Literal["ran", "replayed", "mismatch", "busy"]
    status: int = 0
    body: bytes = b""
    item_id: str = ""


class IdempotencyStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int, lease_s: float = 15.0) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.lease_ms = int(lease_s * 1000)
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)
        self._record = redis.register_script(_RECORD)

    @staticmethod
    def redis_key(scope: str, key: str) -> str:
        return keys.key("idem", scope=scope, key=key)

    async def begin(self, scope: str, key: str, fingerprint: str, item_id: str, *, wait_s: float = 10.0) -> Claim:
        """Claim ``key`` for this request, or return the stored answer of an earlier one.

        A ``new`` claim must end with :meth:`finish` (``done`` on success, else failed).
        While another request holds the key this waits up to ``wait_s``, then says ``busy``.
        """
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            result = await self._begin(
                keys=[self.redis_key(scope, key)],
                args=[fingerprint, owner, item_id, int(time.time() * 1000), self.lease_ms, self.ttl_s],
            )
            kind = result[0].decode()
            if kind == "new":
                return Claim("new", owner=owner, item_id=result[1].decode())
            if kind == "done":
                return Claim("done", status=int(result[1]), body=bytes(result[2]))
            if kind == "mismatch":
                return Claim("mismatch", item_id=result[1].decode())
            if time.monotonic() > deadline:
                return Claim("busy")
            await asyncio.sleep(0.02)

    async def finish(self, scope: str, key: str, claim: Claim, *, status: int | None, body: bytes = b"") -> None:
        """Record the answer (``status`` given) or mark the attempt failed (``status=None``)."""
        await self._finish(
            keys=[self.redis_key(scope, key)],
            args=[claim.owner, "done" if status is not None else "failed", status or 0, body],
        )

    async def record(self, answers: LocalAnswers) -> None:
        """Write the answers kept while Redis was away, oldest first; each leaves ``answers`` once stored."""
        for (scope, key), answer in list(answers.items()):
            await self._record(
                keys=[self.redis_key(scope, key)],
                args=[answer.fingerprint, answer.item_id, answer.status, answer.body, self.ttl_s],
            )
            answers.forget(scope, key)


@dataclass(frozen=True, slots=True)
class _Answer:
    fingerprint: str
    item_id: str
    status: int
    body: bytes
    expires: float


class LocalAnswers:
    """Answers to keyed writes made while Redis was unreachable, until they are stored there.

    A retry that reaches this process gets the first answer from here, exactly as from Redis.
    Bounded: past ``limit`` keys the oldest is forgotten (its event still carries ``op``).
    """

    def __init__(self, *, ttl_s: float, limit: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._clock = clock
        self._answers: OrderedDict[tuple[str, str], _Answer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def keep(self, scope: str, key: str, fingerprint: str, item_id: str, status: int, body: bytes) -> None:
        self._answers[(scope, key)] = _Answer(fingerprint, item_id, status, body, self._clock() + self.ttl_s)
        while len(self._answers) > self.limit:
            self._answers.popitem(last=False)

    def claim(self, scope: str, key: str, fingerprint: str) -> Claim | None:
        """The kept answer as a claim (``done`` or ``mismatch``), or None if this process has none."""
        answer = self._answers.get((scope, key))
        if answer is None:
            return None
        if answer.expires < self._clock():
            del self._answers[(scope, key)]
            return None
        if answer.fingerprint != fingerprint:
            return Claim("mismatch", item_id=answer.item_id)
        return Claim("done", item_id=answer.item_id, status=answer.status, body=answer.body)

    def items(self) -> list[tuple[tuple[str, str], _Answer]]:
        return list(self._answers.items())

    def forget(self, scope: str, key: str) -> None:
        self._answers.pop((scope, key), None)


class Idempotency:
    """The Idempotency-Key policy of a write: Redis when it answers, this process's memory when not."""

    def __init__(self, store: IdempotencyStore, answers: LocalAnswers, breaker: Breaker) -> None:
        self.store = store
        self.answers = answers
        self.breaker = breaker

    async def claim(self, scope: str, key: str, digest: str, item_id: str) -> Claim:
        """Claim ``key``: from this process's kept answers, else from Redis, else ``unrecorded``.

        Answers kept while Redis was away are stored there first, so Redis never says ``new``
        for a key this process already answered. A ``new`` or ``unrecorded`` claim must end
        with :meth:`settle`.
        """
        kept = self.answers.claim(scope, key, digest)
        if kept is not None:
            return kept
        try:
            if len(self.answers):
                await self.breaker.call(lambda: self.store.record(self.answers))
            return await self.breaker.call(lambda: self.store.begin(scope, key, digest, item_id))
        except StoreUnavailable:
            return Claim("unrecorded", item_id=item_id)

    async def settle(self, scope: str, key: str, digest: str, claim: Claim, status: int | None,
                     body: bytes = b"") -> None:
        """Record the outcome (``status=None``: failed); an answer Redis cannot take now is kept here."""
        if claim.kind == "new":
            try:
                await self.breaker.call(lambda: self.store.finish(scope, key, claim, status=status, body=body))
                return
            except StoreUnavailable:
                pass
        if status is not None:
            self.answers.keep(scope, key, digest, claim.item_id, status, body)

    async def once(
        self, scope: str, key: str, digest: str, item_id: str,
        work: Callable[[str], Awaitable[tuple[int, bytes]]],
    ) -> Outcome:
        """Run ``work(item_id)`` once per key and request ``digest``; a repeat gets the first answer.

        ``item_id`` is used unless an earlier attempt with the key chose one already. A failed
        ``work`` leaves the key free for a retry, which reuses that item id.
        """
        claim = await self.claim(scope, key, digest, item_id)
        if claim.kind == "done":
            return Outcome("replayed", claim.status, claim.body, claim.item_id)
        if claim.kind in ("mismatch", "busy"):
            return Outcome("mismatch" if claim.kind == "mismatch" else "busy", item_id=claim.item_id)
        try:
            status, body = await work(claim.item_id)
        except BaseException:
            await self.settle(scope, key, digest, claim, None)
            raise
        await self.settle(scope, key, digest, claim, status, body)
        return Outcome("ran", status, body, claim.item_id)
