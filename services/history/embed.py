"""A feed on publishers' pages: the widget script (``/embed/v1.js``) and the no-JavaScript fragment.

``GET /feeds/{feed}/embed?limit=5`` is a complete HTML page of a public feed's newest items, the
reader page's own item markup (``render.py``), usable directly or in an iframe: its CSP
``frame-ancestors`` names the publisher origins of ``LIVEFEED_EMBED_ORIGINS`` (``'none'`` without
any), it runs no inline script, and it reads the same with JavaScript off (times then in UTC).
``/embed/v1.js`` is ``web/embed/v1.js``, cached a day: the custom element ``<livefeed-feed>``.
Private feeds are never embedded: a reader token must not be framed into another site.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from html import escape
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response

from shared.models import Item, Status, valid_feed

from .deps import complete_store, read_access
from .links import PublicUrls, public_urls
from .pages import WEB_DIR, security_headers
from .render import feed_title, render_item

__all__ = ["EMBED_LIMIT_MAX", "WIDGET_CACHE_CONTROL", "embed_headers", "render_fragment", "router"]

EMBED_LIMIT_MAX = 20
"""A column beside an article shows a handful of items; a bigger page is the reader page's job."""
WIDGET_PATH = WEB_DIR / "embed" / "v1.js"
WIDGET_CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"
"""A day: publishers' pages load the script on every article, and a fix still reaches them by tomorrow."""

router = APIRouter(include_in_schema=False)


def embed_headers(origins: Sequence[str], urls: PublicUrls) -> dict[str, str]:
    """The pages' strict CSP, framable by ``origins`` only (none: ``'none'`` and ``X-Frame-Options: DENY``)."""
    headers = security_headers(urls)
    ancestors = " ".join(origins) if origins else "'none'"
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
    )
    if origins:
        del headers["X-Frame-Options"]
    return headers


def render_fragment(feed: str, items: Sequence[Item], now: datetime) -> str:
    """The fragment page: a titled list of ``items`` (newest first) and a link to the whole feed.

    Links open in a new tab (``<base target="_blank">``), so a click inside a publisher's iframe
    never replaces the frame with another site.
    """
    title = escape(feed_title(feed))
    reader = escape(f"/feeds/{quote(feed)}")
    listing = "".join(render_item(item, now) for item in items)
    empty = "" if items else '<p class="feed-empty">No updates yet.</p>'
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n<meta name="robots" content="noindex">\n'
        f"<title>{title}: latest updates · livefeed</title>\n"
        '<base target="_blank">\n'
        '<link rel="stylesheet" href="/static/embed/fragment.css">\n'
        '<script type="module" src="/static/embed/fragment.js"></script>\n'
        "</head>\n"
        '<body class="lf-embed">\n'
        f'<section class="lf-feed" aria-labelledby="lf-title"><h2 class="lf-title" id="lf-title">'
        f'<a href="{reader}">{title}</a></h2>\n'
        f'<div class="feed" role="feed" aria-labelledby="lf-title">{listing}</div>{empty}\n'
        f'<a class="lf-more" href="{reader}" rel="noopener">More news</a></section>\n'
        "</body>\n</html>\n"
    )


def _page(request: Request, text: str, status: int = 200) -> HTMLResponse:
    origins: Sequence[str] = request.app.state.embed_origins if status == 200 else ()
    return HTMLResponse(text, status_code=status, headers=embed_headers(origins, public_urls(request)))


def _notice(title: str, text: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{escape(title)}</title>\n<link rel="stylesheet" href="/static/embed/fragment.css">\n</head>\n'
        f'<body class="lf-embed"><p class="feed-empty">{escape(text)}</p></body>\n</html>\n'
    )


@router.get("/feeds/{feed}/embed")
async def fragment(
    request: Request, feed: str, limit: Annotated[int, Query(ge=1, le=EMBED_LIMIT_MAX)] = 5
) -> HTMLResponse:
    """A public feed's newest ``limit`` items as an embeddable page; a private feed's is refused."""
    if not valid_feed(feed):
        return _page(request, _notice("Not found", "A feed name is lowercase letters, digits and dashes."), 404)
    if feed in read_access(request).private:
        return _page(request, _notice("Private feed", "This feed is private and cannot be embedded."), 403)
    _, stored = await complete_store(request).page(feed, limit=limit)
    items = [Item.model_validate_json(s.item_json) for s in stored if s.status == Status.published.value]
    return _page(request, render_fragment(feed, items, datetime.now(UTC)))


@cache
def _widget() -> tuple[bytes, str]:
    body = WIDGET_PATH.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@router.get("/embed/v1.js")
async def widget(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The ``<livefeed-feed>`` element, one dependency-free module; CORS comes from ``cors.py``."""
    body, etag = _widget()
    headers = {"Cache-Control": WIDGET_CACHE_CONTROL, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
