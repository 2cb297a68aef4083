"""Who may read a private feed: signed reader tokens (JWT, HS256) with an expiry and a feed claim.

Pure, no I/O: ingest mints tokens (:meth:`ReaderTokens.mint`), history checks one on every read
of a private feed and fanout on every stream it opens (:meth:`ReadAccess.check`), and fanout
closes a stream when the token it opened with expires. Every refusal is an
:class:`~shared.errors.ApiError` naming the ``token`` field; the token itself is never in one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from pydantic import SecretStr

from .errors import ApiError
from .models import FeedSet
from .settings import CommonSettings

__all__ = [
    "ALGORITHM",
    "MAX_TOKEN_LENGTH",
    "MIN_KEY_BYTES",
    "TOKEN_FIELD",
    "ReadAccess",
    "ReaderTokens",
    "bearer_token",
]

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
"""RFC 7518 section 3.2: an HS256 key must be at least as long as the hash, 256 bits."""
MAX_TOKEN_LENGTH = 2048
"""A minted token is under 400 characters (with a 63-character feed and a 100-character subject);
a longer one is refused before it is decoded, so no read parses a header of many kilobytes."""
TOKEN_FIELD = "token"
"""The query parameter a browser sends a reader token in (EventSource and WebSocket cannot send headers)."""


class ReaderTokens:
    """Mints and checks reader tokens with one shared key."""

    def __init__(self, key: SecretStr) -> None:
        secret = key.get_secret_value().encode()
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"LIVEFEED_READER_TOKEN_KEY must be at least {MIN_KEY_BYTES} bytes")
        self._key = secret

    def mint(self, feed: str, ttl_s: int, *, now: float | None = None, subject: str | None = None) -> tuple[str, int]:
        """A token for ``feed`` that expires ``ttl_s`` seconds from now, and that expiry (Unix seconds)."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, object] = {"feed": feed, "iat": issued, "exp": issued + ttl_s}
        if subject:
            claims["sub"] = subject
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), issued + ttl_s

    def check(self, feed: str, token: str, *, now: float | None = None) -> float:
        """The token's expiry (Unix seconds) if it grants ``feed`` now; else the refusal to answer with."""
        at = time.time() if now is None else now
        if len(token) > MAX_TOKEN_LENGTH:
            raise _refusal(401, "reader_token_invalid", "The reader token is not valid; get a new one.")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM],
                # Expiry is checked below against ``now``, so tests and callers share one clock.
                options={"require": ["exp", "feed"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise _refusal(401, "reader_token_invalid", "The reader token is not valid; get a new one.") from None
        exp = claims["exp"]
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _refusal(401, "reader_token_invalid", "The reader token is not valid; get a new one.")
        if exp <= at:
            raise _refusal(401, "reader_token_expired", "The reader token has expired; get a new one and reconnect.")
        if claims["feed"] != feed:
            raise _refusal(403, "reader_token_wrong_feed", f"The reader token does not grant feed {feed}.")
        return float(exp)


@dataclass(frozen=True)
class ReadAccess:
    """Which feeds are private, and the tokens that open them: the one read check of history and fanout."""

    private: FeedSet
    tokens: ReaderTokens | None

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ReadAccess:
        """Fails at start, not on the first read, when private feeds are configured without a key."""
        try:
            private = FeedSet(settings.private_feeds)
        except ValueError as exc:
            raise ValueError(f"LIVEFEED_PRIVATE_FEEDS: {exc}") from None
        if private and settings.reader_token_key is None:
            raise ValueError("LIVEFEED_PRIVATE_FEEDS needs LIVEFEED_READER_TOKEN_KEY (or _FILE) to check tokens")
        tokens = ReaderTokens(settings.reader_token_key) if settings.reader_token_key is not None else None
        return cls(private, tokens)

    def check(self, feed: str, token: str | None, *, now: float | None = None) -> float | None:
        """None for a public feed; for a private one, the token's expiry, or raise the refusal."""
        if feed not in self.private:
            return None
        if not token:
            raise _refusal(401, "reader_token_required",
                           f"Feed {feed} is private: send a reader token (Authorization: Bearer, or ?token=).")
        assert self.tokens is not None, "from_settings refuses private feeds without a key"
        return self.tokens.check(feed, token, now=now)


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The reader token of a request: the ``Authorization: Bearer`` header, else the ``token`` query parameter."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return query_token or None


def _refusal(status: int, code: str, message: str) -> ApiError:
    """RFC 6750 section 3: a missing token gets a bare challenge, a bad one ``error="invalid_token"``."""
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer" if code == "reader_token_required"
                   else f'Bearer error="invalid_token", error_description="{code}"'}
    return ApiError(status, code, message, fields=[{"field": TOKEN_FIELD, "message": code}], headers=headers)
