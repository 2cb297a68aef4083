"""Who may write: the deployment's named credentials, and the token bucket both limits count with.

:class:`Credentials` holds the credentials file (shared/credentials.py), re-read when it changes
so ``livefeed credentials add`` needs no restart, and answers who a bearer token is. A token is
found by its prefix and checked with argon2 off the event loop, a few at a time; a token that
was checked in the last minute is answered from memory, so a steady writer costs no argon2, and
a wrong one is remembered briefly, so repeating it costs nothing either. Tokens are never
logged nor kept: the caches key on their SHA-256. The write limit per credential is ``limits.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from shared import credentials as creds
from shared.credentials import Credential, CredentialsError
from shared.errors import ApiError

from .permissions import Principal

__all__ = ["Credentials", "RateLimiter"]

log = logging.getLogger("livefeed.ingest.auth")

Verifier = Callable[[Credential, str], bool]
_V = TypeVar("_V")


class Credentials:
    """The credentials of one file, and the answer to "whose token is this?".

    Build it with :meth:`open` at start (it raises :class:`CredentialsError` for a missing or
    broken file: refuse to start). Afterwards a broken file is logged and the last good set kept.
    """

    RELOAD_EVERY_S = 1.0
    OK_TTL_S = 60.0
    """A checked token is trusted this long after its last use without argon2; a reload drops the
    entries of changed credentials at once, so a writer in use never waits behind anyone's checks."""
    BAD_TTL_S = 10.0
    CACHE_SIZE = 4096
    CONCURRENCY = 2
    """argon2 checks at once (each about 0.1 s of a core and 64 MiB): the rest of ingest keeps a core."""
    MAX_WAITING = 64
    """Checks that may queue for a slot; more get a 503 at once rather than a growing queue."""
    CHECKS_PER_S = 1.0
    CHECK_BURST = 10
    """argon2 checks one client address may cause: a flood of made-up tokens from one address gets
    429s instead of the slots every newsroom tool needs when its token is first seen. Counted per
    process, unlike the write limit: it guards this process's CPU, and a check here spares no other."""

    def __init__(self, path: Path, credentials: Iterable[Credential], signature: tuple[int, int, int], *,
                 clock: Callable[[], float] = time.monotonic, verifier: Verifier = creds.verify) -> None:
        self.path = path
        self._clock = clock
        self._verifier = verifier
        self._signature = signature
        self._checked_at = clock()
        self._by_prefix: dict[str, list[Credential]] = {}
        self._known: frozenset[Credential] = frozenset()
        self._ok: OrderedDict[bytes, tuple[Credential, float]] = OrderedDict()
        self._bad: OrderedDict[bytes, float] = OrderedDict()
        self._slots = asyncio.Semaphore(self.CONCURRENCY)
        self._waiting = 0
        self._checking: dict[bytes, asyncio.Future[Credential | None]] = {}
        self._check_budget = RateLimiter(self.CHECKS_PER_S, self.CHECK_BURST)
        self._use(list(credentials))

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.monotonic,
             verifier: Verifier = creds.verify) -> Credentials:
        """The credentials in ``path``; :class:`CredentialsError` (saying why) if it cannot be used."""
        signature = _signature(path)
        return cls(path, creds.load(path), signature, clock=clock, verifier=verifier)

    @property
    def names(self) -> list[str]:
        return sorted(c.name for c in self._known)

    def refresh(self) -> None:
        """Re-read the file if it changed (looked at no more than once a second)."""
        now = self._clock()
        if now - self._checked_at < self.RELOAD_EVERY_S:
            return
        self._checked_at = now
        try:
            signature = _signature(self.path)
        except CredentialsError as exc:
            if self._signature != (0, 0, 0):
                log.error("credentials file unusable; keeping the last good credentials",
                          extra={"path": str(self.path), "reason": str(exc)})
            self._signature = (0, 0, 0)
            return
        if signature == self._signature:
            return
        self._signature = signature
        try:
            loaded = creds.load(self.path)
        except CredentialsError as exc:
            log.error("credentials file unusable; keeping the last good credentials",
                      extra={"path": str(self.path), "reason": str(exc)})
            return
        self._use(loaded)
        log.info("credentials reloaded", extra={"path": str(self.path), "credentials": len(loaded)})

    async def identify(self, authorization: str | None, client: str = "") -> Principal | None:
        """Who the ``Authorization: Bearer …`` header is, or None for a missing or unknown token.

        Raises a 429 :class:`ApiError` when ``client`` (its address) has caused too many argon2
        checks lately, and a 503 when too many are already waiting.
        """
        token = _bearer(authorization)
        if token is None:
            return None
        self.refresh()
        key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        hit = self._ok.get(key)
        if hit is not None and hit[1] > now:
            self._ok[key] = (hit[0], now + self.OK_TTL_S)
            return _principal(hit[0])
        if self._bad.get(key, 0.0) > now:
            return None
        candidates = self._by_prefix.get(token[: creds.PREFIX_CHARS], [])
        if not candidates or len(token) < creds.MIN_TOKEN_CHARS:
            return None
        if key not in self._checking:
            wait = self._check_budget.allow(client, now)
            if wait > 0:
                raise ApiError(429, "auth_rate_limited",
                               f"Too many token checks from this address; retry in {wait:.0f}s.",
                               fields=[{"field": "Authorization", "message": "not checked: too many checks"}],
                               headers={"Retry-After": str(math.ceil(wait))})
        matched = await self._verify_once(key, candidates, token)
        now = self._clock()
        if matched is None or matched not in self._known:
            _remember(self._bad, key, now + self.BAD_TTL_S, self.CACHE_SIZE)
            return None
        _remember(self._ok, key, (matched, now + self.OK_TTL_S), self.CACHE_SIZE)
        return _principal(matched)

    async def _verify_once(self, key: bytes, candidates: list[Credential], token: str) -> Credential | None:
        """One argon2 check per token at a time: a tool's burst of first writes waits for the same one."""
        pending = self._checking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.get_running_loop().create_future()
        self._checking[key] = pending
        try:
            matched = await self._verify(candidates, token)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()
            raise
        else:
            pending.set_result(matched)
            return matched
        finally:
            del self._checking[key]

    async def _verify(self, candidates: list[Credential], token: str) -> Credential | None:
        if self._waiting >= self.MAX_WAITING:
            raise ApiError(503, "auth_busy", "Too many token checks at once; retry shortly.",
                           fields=[{"field": "Authorization", "message": "not checked: busy"}],
                           headers={"Retry-After": "1"})
        self._waiting += 1
        try:
            async with self._slots:
                for candidate in candidates:
                    if await asyncio.to_thread(self._verifier, candidate, token):
                        return candidate
                return None
        finally:
            self._waiting -= 1

    def _use(self, loaded: list[Credential]) -> None:
        by_prefix: dict[str, list[Credential]] = {}
        for credential in loaded:
            by_prefix.setdefault(credential.prefix, []).append(credential)
        self._by_prefix = by_prefix
        self._known = frozenset(loaded)
        self._bad.clear()
        for key in [k for k, (c, _) in self._ok.items() if c not in self._known]:
            del self._ok[key]


class RateLimiter:
    """A token bucket per caller: ``rate`` writes a second on average, ``burst`` at once.

    At most ``max_callers`` buckets are kept: past that, the full ones (callers idle long enough
    to have refilled, so forgetting them changes nothing) are dropped, then all if none is full.
    """

    def __init__(self, rate: float, burst: int, max_callers: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str, now: float | None = None) -> float:
        """0 if the write may go now, else the seconds to wait before trying again."""
        now = time.monotonic() if now is None else now
        if caller not in self._buckets and len(self._buckets) >= self.max_callers:
            self._forget_full(now)
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        self._buckets = {c: (t, last) for c, (t, last) in self._buckets.items()
                         if t + (now - last) * self.rate < self.burst}
        if len(self._buckets) >= self.max_callers:
            self._buckets.clear()


def _bearer(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>``; the scheme name is case-insensitive (RFC 7235)."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


def _principal(credential: Credential) -> Principal:
    return Principal.of(credential.name, credential.role, credential.feeds)


def _remember(cache: OrderedDict[bytes, _V], key: bytes, value: _V, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _signature(path: Path) -> tuple[int, int, int]:
    """What tells a changed file: a rename gives a new inode, an edit in place a new mtime or size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read ({exc.strerror})") from None
    return st.st_mtime_ns, st.st_size, st.st_ino
