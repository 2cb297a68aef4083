"""Cross-origin reads for publishers' pages (``LIVEFEED_EMBED_ORIGINS``): CORS on public GET routes only.

A plain ASGI middleware. An allowed Origin gets ``Access-Control-Allow-Origin`` (echoed, never
``*``) on the public reads of :data:`CORS_PATHS`, and a preflight for GET or HEAD with at most the
:data:`ALLOWED_HEADERS` is answered 204. Every other Origin, every write, and every answer about a
private feed gets none of it: a preflight they send falls through to the route, which answers 405.
Private feeds stay private because a foreign page must not read what a reader token opened (a
token in ``?token=`` would otherwise let any page of a listed origin read the feed's items).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ALLOWED_HEADERS", "CORS_PATHS", "PREFLIGHT_MAX_AGE_S", "CorsMiddleware"]

CORS_PATHS = (
    re.compile(r"/v1/feeds"),
    re.compile(r"/v1/feeds/(?P<feed>[^/]+)/(?:items(?:/[^/]+(?:/revisions)?)?|key-events|pinned)"),
    re.compile(r"/feeds/(?P<feed>[^/]+)\.(?:atom|json)"),
    re.compile(r"/embed/v1\.js"),
)
"""The public GET routes a publisher's page may read: lists, items, revisions, the feeds' formats, the widget."""
ALLOWED_HEADERS = ("accept", "accept-language", "content-language", "if-none-match")
"""What a cross-origin read may send; ``Authorization`` is not among them (reader tokens stay first-party)."""
READ_METHODS = frozenset({"GET", "HEAD"})
PREFLIGHT_MAX_AGE_S = 600
"""How long a browser may keep a preflight's answer: a changed origin list reaches pages within 10 minutes."""

IsPrivate = Callable[[Scope, str], bool]
"""Whether a request's feed is private (history reads ``app.state.access``)."""


def _private_by_access(scope: Scope, feed: str) -> bool:
    return feed in scope["app"].state.access.private


class CorsMiddleware:
    """Adds CORS to the public reads for the configured publisher origins; answers their preflights."""

    def __init__(self, app: ASGIApp, origins: Iterable[str], is_private: IsPrivate = _private_by_access) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.is_private = is_private

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._cors_route(scope):
            await self.app(scope, receive, send)
            return
        origin = _one_header(scope, b"origin")
        allowed = origin if origin in self.origins else None
        method = scope["method"]
        if method == "OPTIONS":
            if allowed is not None and _preflight_ok(scope):
                await _send_preflight(send, allowed)
                return
            await self.app(scope, receive, send)
            return
        if method not in READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                vary = [v for k, v in message.get("headers", []) if k.lower() == b"vary"]
                headers.append((b"vary", b", ".join([*vary, b"Origin"])))
                if allowed is not None:
                    headers.append((b"access-control-allow-origin", allowed.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _cors_route(self, scope: Scope) -> bool:
        """A public read route, about a public feed (or no feed at all)."""
        path: str = scope["path"]
        for pattern in CORS_PATHS:
            match = pattern.fullmatch(path)
            if match is not None:
                feed = match.groupdict().get("feed")
                return feed is None or not self.is_private(scope, feed)
        return False


def _one_header(scope: Scope, name: bytes) -> str | None:
    """The header's value if the request sent it exactly once (two Origins are no Origin)."""
    values = [v for k, v in scope["headers"] if k == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


def _preflight_ok(scope: Scope) -> bool:
    """A preflight for a read that sends nothing beyond :data:`ALLOWED_HEADERS`."""
    method = _one_header(scope, b"access-control-request-method")
    if method not in READ_METHODS:
        return False
    requested = _one_header(scope, b"access-control-request-headers") or ""
    names = {part.strip().lower() for part in requested.split(",") if part.strip()}
    return names <= set(ALLOWED_HEADERS)


async def _send_preflight(send: Send, origin: str) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", b"GET, HEAD"),
        (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
        (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
        (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
