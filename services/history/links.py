"""Every absolute URL history serves, built from the configured public URL (``LIVEFEED_PUBLIC_URL``).

Never from the request: a ``Host`` (or ``X-Forwarded-*``) header is whatever the client chose,
and a page built from it would carry a stranger's origin into its JSON-LD, its links and its CSP,
and through the gateway's micro-cache to every reader. The app keeps one :class:`PublicUrls` in
``app.state.public_urls`` (``app.py``); routes reach it with :func:`public_urls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request

__all__ = ["PublicUrls", "public_urls"]


@dataclass(frozen=True, slots=True)
class PublicUrls:
    """The deployment's public base (as :class:`~shared.settings.HistorySettings` validated it: an
    http(s) origin, perhaps a path prefix, no trailing slash) and the URLs made from it."""

    base: str

    def url(self, path: str) -> str:
        """``path`` (starting with ``/``) made absolute under the public base."""
        return f"{self.base}{path}"

    def feed_page(self, feed: str) -> str:
        """The feed's reader page: its canonical URL, and the stem of its exports' and items' links."""
        return self.url(f"/feeds/{quote(feed)}")

    @property
    def stream_origin(self) -> str:
        """The origin readers' pages open their streams to: ``ws``, or ``wss`` for an https base."""
        parts = urlsplit(self.base)
        return f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"


def public_urls(request: Request) -> PublicUrls:
    """The app's public URLs (``app.state.public_urls``): the request itself is never consulted."""
    urls: PublicUrls = request.app.state.public_urls
    return urls
