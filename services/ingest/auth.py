"""Who may write, and how fast: newsroom bearer tokens and a per-token rate limit."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from pydantic import SecretStr

__all__ = ["RateLimiter", "TokenCheck"]


class TokenCheck:
    """Matches an ``Authorization: Bearer …`` header against the configured tokens.

    Tokens are compared in constant time and only a short hash of one ever leaves this class
    (as the caller's identity for rate limits and idempotency scopes), never the token.
    """

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def identify(self, authorization: str | None) -> str | None:
        """The caller's identity (a hash of its token), or None if the header is not a valid token.

        The scheme name is case-insensitive (RFC 7235): ``bearer`` works as ``Bearer`` does.
        """
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        offered = credentials.strip().encode()
        match = False
        for token in self._tokens:
            match |= hmac.compare_digest(offered, token)
        return hashlib.sha256(offered).hexdigest()[:16] if match else None


class RateLimiter:
    """A token bucket per caller: ``rate`` writes a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str, now: float | None = None) -> float:
        """0 if the write may go now, else the seconds to wait before trying again."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self.rate
