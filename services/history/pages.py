"""The people's side of history: the feed index, the reader page and the newsroom console.

The reader page is rendered (``render.py``) from the Redis store, so its first response already
holds the newest items and a schema.org ``LiveBlogPosting`` block for readers without JavaScript
and for search engines; ``web/reader.js`` then continues live from the snapshot cursor embedded
in the page. Every page is sent with a strict Content-Security-Policy. Its absolute URLs (JSON-LD,
canonical and alternate links, the CSP's stream origin) come from ``links.py``, never from the
request's Host, so every reader gets the same page. A private feed's page
needs a reader token (``?token=``, which ``reader.js`` passes on to its reads and its stream)
and is never cached or listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from shared.cursor import MAX_CURSOR_LENGTH, Cursor, CursorError
from shared.errors import ApiError
from shared.models import Item, Status, valid_feed
from shared.store import StoredItem

from .deps import PRIVATE_CACHE_CONTROL, ReaderToken, check_read, complete_store, read_access
from .links import PublicUrls, public_urls
from .render import layout, masthead, render_console, render_index, render_reader

__all__ = ["WEB_DIR", "router", "security_headers", "static_files"]

WEB_DIR = Path(__file__).resolve().parent / "web"
PAGE_SIZE = 20
KEY_EVENTS_LIMIT = 200
PINNED_LIMIT = 50
INDEX_HEADLINES = 12

router = APIRouter(include_in_schema=False)


class _Assets(StaticFiles):
    """The pages' files, revalidated by ETag on every load so a deploy reaches readers at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    """The pages' scripts and stylesheet, to mount at ``/static``."""
    return _Assets(directory=WEB_DIR)


def security_headers(urls: PublicUrls) -> dict[str, str]:
    """A strict CSP: scripts and styles from this origin only, streams to the public origin, no framing.

    Images may come from any https origin: items carry their pictures by reference (issue 12).
    """
    connect = ["'self'", urls.stream_origin]
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


# -- routes ------------------------------------------------------------------------------------


def _html(text: str, request: Request, status: int = 200, *, private: bool = False) -> HTMLResponse:
    """A page with the security headers; a private one is never cached nor indexed."""
    headers = security_headers(public_urls(request))
    if private:
        headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
        headers["X-Robots-Tag"] = "noindex"
    return HTMLResponse(text, status_code=status, headers=headers)


def _items(stored: Iterable[StoredItem]) -> list[Item]:
    return [Item.model_validate_json(s.item_json) for s in stored if s.status == Status.published.value]


def _with_pinned(page: list[Item], pinned: Iterable[Item]) -> list[Item]:
    """The page plus pinned updates from further back: the reader shows those on top."""
    shown = {item.id for item in page}
    return [*page, *(item for item in pinned if item.id not in shown)]


def _not_found(request: Request, message: str) -> HTMLResponse:
    body = f"""{masthead()}<main class="index" id="main"><h1>Not found</h1>
<p>{escape(message)}</p><p><a href="/">See every live feed</a></p></main>"""
    return _html(layout("Not found · livefeed", body, script=None), request, 404)


_REFUSED_TEXT = {
    "reader_token_required": "This feed is private: open it with the link your newsroom gave you.",
    "reader_token_expired": "Your link to this private feed has expired: ask your newsroom for a new one.",
    "reader_token_wrong_feed": "Your link opens another private feed, not this one.",
}
_INVALID_TEXT = "Your link to this private feed is not valid: ask your newsroom for a new one."


def _refused(request: Request, refusal: ApiError) -> HTMLResponse:
    """The reader page's answer to a read the token does not allow: the API's status, in words for people."""
    text = _REFUSED_TEXT.get(refusal.code, _INVALID_TEXT)
    body = f"""{masthead()}<main class="index" id="main"><h1>Private feed</h1>
<p>{escape(text)}</p><p><a href="/">See every live feed</a></p></main>"""
    response = _html(layout("Private feed · livefeed", body, script=None), request, refusal.status, private=True)
    response.headers.update(refusal.headers or {})
    return response


@router.get("/")
async def index_page(request: Request) -> HTMLResponse:
    store = complete_store(request)
    private = read_access(request).private
    feeds = [(feed, ms) for feed, ms in await store.feeds() if feed not in private]
    pages = await asyncio.gather(*(store.page(feed, limit=1) for feed, _ in feeds[:INDEX_HEADLINES]))
    latest = {feed: items[0] for (feed, _), (_, stored) in zip(feeds, pages, strict=False) if (items := _items(stored))}
    return _html(render_index(feeds, latest, datetime.now(UTC)), request)


@router.get("/feeds/{feed}")
async def reader_page(
    request: Request,
    feed: str,
    before: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
    token: ReaderToken = None,
    authorization: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    if not valid_feed(feed):
        return _not_found(request, "A feed name is lowercase letters, digits and dashes.")
    try:
        read = check_read(request, feed, authorization, token)
    except ApiError as refusal:
        return _refused(request, refusal)
    store = complete_store(request)
    epoch: str = request.app.state.epoch
    before_offset: int | None = None
    if before is not None:
        try:
            parsed = Cursor.parse(before)
        except CursorError:
            parsed = None
        if parsed is None or parsed.epoch != epoch:
            return _not_found(request, "That page of older updates is no longer available.")
        before_offset = parsed.offset
    (head, stored), (_, stored_keys), (_, stored_pins) = await asyncio.gather(
        store.page(feed, limit=PAGE_SIZE + 1, before=before_offset),
        store.page(feed, limit=KEY_EVENTS_LIMIT, key_events=True),
        store.page(feed, limit=PINNED_LIMIT if before is None else 1, pinned=True),
    )
    page = stored[:PAGE_SIZE]
    next_before = None
    if page and len(stored) > PAGE_SIZE:
        last = page[-1]
        next_before = Cursor(epoch, last.cursor.partition, last.seq).serialize()
    keys = _items(stored_keys)
    items = _with_pinned(_items(page), _items(stored_pins) if before is None else [])
    page_url = public_urls(request).feed_page(feed)
    html = render_reader(
        feed,
        items,
        keys,
        cursor=head.serialize() if head is not None else None,
        next_before=next_before,
        page_url=page_url,
        now=datetime.now(UTC),
        older_page=before is not None,
    )
    return _html(html, request, private=read.private)


@router.get("/newsroom")
async def console_page(request: Request) -> HTMLResponse:
    return _html(render_console(), request)
