"""HTML for the reader page, the feed index and the newsroom console: pure functions, no I/O.

Newsroom text only reaches markup through :func:`html.escape` or :func:`script_json`, so a
headline such as ``<script>`` always shows as text. ``pages.py`` reads the store and calls these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from shared.models import Image, Item, Urgency

__all__ = [
    "feed_title",
    "iso",
    "item_template",
    "layout",
    "live_blog_json_ld",
    "masthead",
    "reader_order",
    "render_console",
    "render_index",
    "render_item",
    "render_reader",
    "revisions_path",
    "script_json",
]

_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` become ``\\u003c`` etc.

    Those characters can only occur inside JSON strings, where the escapes mean the same text,
    so ``</script>`` or ``<!--`` in newsroom content cannot end or alter the element.
    """
    text = orjson.dumps(value).decode()
    return _SCRIPT_UNSAFE_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group()], text)


def feed_title(feed: str) -> str:
    """A feed slug as a title: ``middle-east`` → ``Middle East``."""
    return " ".join(word[:1].upper() + word[1:] for word in feed.split("-") if word)


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) address a reader may follow, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def iso(moment: datetime) -> str:
    """An instant in ISO 8601 UTC, written as the API writes it (``…Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _clock(moment: datetime, now: datetime) -> str:
    """``14:05 UTC`` today, ``3 Mar, 14:05 UTC`` on an earlier day, with the year when it is another year."""
    moment, today = moment.astimezone(UTC), now.astimezone(UTC)
    if moment.date() == today.date():
        return f"{moment:%H:%M} UTC"
    year = "" if moment.year == today.year else f" {moment.year}"
    return f"{moment.day} {moment:%b}{year}, {moment:%H:%M} UTC"


def _time_tag(instant: str, clock: str) -> str:
    return f'<time datetime="{escape(instant)}">{escape(clock)}</time>'


def _time(moment: datetime, now: datetime) -> str:
    return _time_tag(iso(moment), _clock(moment, now))


@dataclass(frozen=True)
class _ImageParts:
    """One picture as text; None leaves the size (a 3:2 box is reserved), the caption or the credit out."""

    url: str
    alt: str
    width: int | str | None
    height: int | str | None
    caption: str | None
    credit: str | None


@dataclass(frozen=True)
class _ItemParts:
    """What one update shows, already as text; None (or no tags) leaves that part out.

    Real items and the template's skeleton both go through :func:`_item_markup`, so the item's
    markup is written only there. Times are ``(datetime attribute, shown text)``; ``source`` is
    ``(href, host)``.
    """

    id: str
    version: str
    breaking: bool
    pinned: bool
    key_event: bool
    published: tuple[str, str]
    headline: str
    body: str | None
    byline: str | None
    source: tuple[str, str] | None
    tags: Sequence[str]
    updated: tuple[str, str] | None
    images: Sequence[_ImageParts] = ()
    correction: tuple[tuple[str, str], str] | None = None
    """``((datetime attribute, shown text), note)`` of the latest correction."""
    revisions: str | None = None
    """The address of the item's earlier versions, once it has some."""


_SKELETON = _ItemParts(
    id="", version="", breaking=True, pinned=True, key_event=True, published=("", ""), headline="",
    body="", byline="", source=("", ""), tags=("",), updated=("", ""),
    images=(_ImageParts(url="", alt="", width="", height="", caption="", credit=""),),
    correction=(("", ""), ""), revisions="",
)
"""Every optional part present and every text empty: what ``web/render.js`` clones and fills."""


def _item_markup(parts: _ItemParts) -> str:
    anchor = escape(f"item-{parts.id}")
    classes = ["item"]
    badges = []
    if parts.breaking:
        classes.append("is-breaking")
        badges.append('<span class="badge badge-breaking">Breaking</span>')
    if parts.pinned:
        classes.append("is-pinned")
        badges.append('<span class="badge badge-pinned">Pinned</span>')
    if parts.key_event:
        classes.append("is-key")
        badges.append('<span class="badge badge-key">Key event</span>')
    html = [
        f'<article class="{" ".join(classes)}" id="{anchor}" data-id="{escape(parts.id)}"'
        f' data-version="{escape(parts.version)}" data-pinned="{int(parts.pinned)}" tabindex="-1"'
        f' aria-labelledby="{anchor}-h">',
        '<div class="item-meta">',
        f'<a class="item-time" href="#{anchor}" title="Link to this update">{_time_tag(*parts.published)}</a>',
        *badges,
        "</div>",
        f'<h3 class="item-headline" id="{anchor}-h">{escape(parts.headline)}</h3>',
    ]
    html.extend(_image_markup(image) for image in parts.images)
    if parts.body is not None:
        html.append(f'<p class="item-body">{escape(parts.body)}</p>')
    if parts.correction is not None:
        moment, note = parts.correction
        html.append(f'<p class="item-correction">Corrected {_time_tag(*moment)}: '
                    f'<span class="item-correction-note">{escape(note)}</span></p>')
    foot = []
    if parts.byline is not None:
        foot.append(f'<span class="item-byline">{escape(parts.byline)}</span>')
    if parts.source is not None:
        href, host = parts.source
        foot.append(
            f'<a class="item-source" href="{escape(href)}" rel="nofollow noopener noreferrer ugc">'
            f"Source: {escape(host)}</a>"
        )
    if parts.tags:
        tags = "".join(f'<li class="tag">{escape(tag)}</li>' for tag in parts.tags)
        foot.append(f'<ul class="item-tags" aria-label="Tags">{tags}</ul>')
    if parts.updated is not None:
        foot.append(f'<span class="item-updated">Updated {_time_tag(*parts.updated)} · v{escape(parts.version)}</span>')
    if parts.revisions is not None:
        foot.append(f'<a class="item-revisions" href="{escape(parts.revisions)}" rel="nofollow">Earlier versions</a>')
    if foot:
        html.append(f'<div class="item-foot">{"".join(foot)}</div>')
    html.append("</article>")
    return "".join(html)


def _image_markup(image: _ImageParts) -> str:
    """A lazily loaded picture whose box is reserved before it loads (its size, else a 3:2 box)."""
    size = ""
    if image.width is not None and image.height is not None:
        size = f' width="{escape(str(image.width))}" height="{escape(str(image.height))}"'
    sized = "item-image" if size else "item-image is-unsized"
    text = []
    if image.caption is not None:
        text.append(f'<span class="item-image-caption">{escape(image.caption)}</span>')
    if image.credit is not None:
        text.append(f'<span class="item-image-credit">{escape(image.credit)}</span>')
    caption = f"<figcaption>{''.join(text)}</figcaption>" if text else ""
    return (f'<figure class="{sized}"><img src="{escape(image.url)}" alt="{escape(image.alt)}"{size}'
            f' loading="lazy" decoding="async" referrerpolicy="no-referrer">{caption}</figure>')


def _image_parts(image: Image) -> _ImageParts:
    sized = image.width is not None and image.height is not None
    return _ImageParts(url=image.url, alt=image.alt, width=image.width if sized else None,
                       height=image.height if sized else None, caption=image.caption or None,
                       credit=image.credit or None)


def revisions_path(item: Item) -> str:
    """Where the item's versions are read (history's revisions route)."""
    return f"/v1/feeds/{quote(item.feed)}/items/{quote(item.id)}/revisions"


def _shows_updated(item: Item) -> bool:
    """A plain edit shows "Updated"; a version that is the latest correction shows only "Corrected"."""
    return item.version > 1 and (item.correction is None or item.updated_at > item.correction.corrected_at)


def render_item(item: Item, now: datetime) -> str:
    """One update as the reader page shows it; ``web/render.js`` fills :func:`item_template` alike."""
    link = safe_link(item.url)
    return _item_markup(
        _ItemParts(
            id=item.id,
            version=str(item.version),
            breaking=item.urgency is Urgency.breaking,
            pinned=item.pinned,
            key_event=item.key_event,
            published=(iso(item.published_at), _clock(item.published_at, now)),
            headline=item.headline,
            body=item.body or None,
            byline=item.byline or None,
            source=(link, urlsplit(link).hostname or link) if link is not None else None,
            tags=item.tags,
            updated=(iso(item.updated_at), _clock(item.updated_at, now)) if _shows_updated(item) else None,
            images=[_image_parts(image) for image in item.images],
            correction=(
                ((iso(item.correction.corrected_at), _clock(item.correction.corrected_at, now)), item.correction.note)
                if item.correction is not None else None
            ),
            revisions=revisions_path(item) if item.version > 1 else None,
        )
    )


def item_template() -> str:
    """The ``<template id="item-template">`` that ``web/render.js`` builds live updates from.

    It is :func:`render_item`'s markup with every optional part present and no text, so a change
    to an update's markup is made once, here, and reaches server-rendered and live updates alike.
    """
    return f'<template id="item-template">{_item_markup(_SKELETON)}</template>'


def reader_order(items: Iterable[Item]) -> list[Item]:
    """Pinned updates first, then newest first: ids are ULIDs, so they sort in publish order."""
    return sorted(items, key=lambda i: (i.pinned, i.id), reverse=True)


def live_blog_json_ld(feed: str, page_url: str, items: Sequence[Item], key_events: Sequence[Item]) -> dict[str, Any]:
    """The schema.org ``LiveBlogPosting`` for a feed page; updates newest first by publish time."""
    newest_first = sorted(items, key=lambda i: i.id, reverse=True)
    known = [*items, *key_events]
    start = min((i.published_at for i in known), default=None)
    modified = max((i.updated_at for i in known), default=None)
    posting: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "@id": page_url,
        "url": page_url,
        "headline": f"{feed_title(feed)}: live updates",
        "description": f"Live updates from the {feed_title(feed)} feed, newest first.",
        "liveBlogUpdate": [
            {
                "@type": "BlogPosting",
                "@id": f"{page_url}#item-{item.id}",
                "url": f"{page_url}#item-{item.id}",
                "headline": item.headline,
                "articleBody": item.body,
                "datePublished": iso(item.published_at),
                "dateModified": iso(item.updated_at),
                **({"author": {"@type": "Person", "name": item.byline}} if item.byline else {}),
                **({"keywords": ", ".join(item.tags)} if item.tags else {}),
                **({"image": [_image_object(image) for image in item.images]} if item.images else {}),
                **({"correction": {
                    "@type": "CorrectionComment",
                    "text": item.correction.note,
                    "datePublished": iso(item.correction.corrected_at),
                }} if item.correction is not None else {}),
            }
            for item in newest_first
        ],
    }
    if start is not None:
        posting["coverageStartTime"] = iso(start)
        posting["datePublished"] = iso(start)
    if modified is not None:
        posting["dateModified"] = iso(modified)
    return posting


def _image_object(image: Image) -> dict[str, Any]:
    """A schema.org ``ImageObject`` for one of an item's pictures."""
    found: dict[str, Any] = {"@type": "ImageObject", "url": image.url, "contentUrl": image.url,
                             "description": image.alt}
    optional = {"caption": image.caption, "creditText": image.credit, "width": image.width, "height": image.height}
    return found | {name: value for name, value in optional.items() if value is not None}


def layout(title: str, body: str, *, script: str | None, head: str = "", body_class: str = "") -> str:
    module = f'<script type="module" src="/static/{script}"></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escape(title)}</title>\n"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n'
        '<link rel="stylesheet" href="/static/style.css">\n'
        f"{module}{head}</head>\n"
        f'<body class="{escape(body_class)}">\n{body}\n</body>\n</html>\n'
    )


def masthead(extra: str = "") -> str:
    return (
        '<header class="masthead"><div class="masthead-inner">'
        '<a class="brand" href="/">live<span>feed</span></a>'
        f"{extra}</div></header>"
    )


def render_reader(
    feed: str,
    items: Sequence[Item],
    key_events: Sequence[Item],
    *,
    cursor: str | None,
    next_before: str | None,
    page_url: str,
    now: datetime,
    older_page: bool = False,
) -> str:
    """The reader page of ``feed``: the snapshot's items, its key events, its cursor, its JSON-LD."""
    title = feed_title(feed)
    newest = max(items, key=lambda i: i.id, default=None)
    ordered = reader_order(items)
    keys = sorted(key_events, key=lambda i: i.id, reverse=True)
    key_list = "".join(
        f'<li data-id="{escape(i.id)}" data-version="{i.version}">'
        f'<a href="#item-{escape(i.id)}">{_time(i.published_at, now)}'
        f'<span class="key-headline">{escape(i.headline)}</span></a></li>'
        for i in keys
    )
    older = ""
    if next_before is not None:
        href = f"/feeds/{quote(feed)}?before={quote(next_before)}"
        older = f'<a class="load-older" id="load-older" href="{escape(href)}">Load older updates</a>'
    latest = (
        f'<p class="dek">Last update {_time(newest.published_at, now)}</p>' if newest is not None else ""
    )
    newer_link = (
        f'<p class="notice"><a href="/feeds/{escape(quote(feed))}">Back to the latest updates</a></p>'
        if older_page
        else ""
    )
    data = f'data-feed="{escape(feed)}" data-cursor="{escape(cursor or "")}"'
    data += f' data-next-before="{escape(next_before or "")}"'
    if older_page:
        data += ' data-static="1"'
    body = f"""{masthead('<a class="masthead-link" href="/">All feeds</a>')}
<a class="skip-link" href="#feed">Skip to the latest updates</a>
<main class="reader" id="main" {data}>
<div class="title-block">
<p class="kicker"><span class="live-dot" aria-hidden="true"></span>\
<span class="conn" id="conn" role="status" data-state="static">Live</span></p>
<h1>{escape(title)}: live updates</h1>
{latest}
</div>
<details class="key-events" id="key-events-box" open>
<summary><h2 id="key-events-title">Key events</h2></summary>
<ol class="key-list" id="key-events" aria-labelledby="key-events-title">{key_list}</ol>
<p class="key-empty" id="key-events-empty"{"" if not keys else " hidden"}>No key events yet.</p>
</details>
<section class="stream" aria-labelledby="updates-title">
<h2 class="visually-hidden" id="updates-title">Latest updates</h2>
{newer_link}
<p class="notice" id="notice" role="status" hidden></p>
<button class="new-updates" id="new-updates" type="button" hidden>New updates</button>
<div class="feed" id="feed" role="feed" aria-labelledby="updates-title" aria-busy="false">
{"".join(render_item(i, now) for i in ordered)}
</div>
<p class="feed-empty" id="feed-empty"{"" if not items else " hidden"}>No updates yet. \
New updates appear here as the newsroom posts them.</p>
{older}
</section>
</main>
<div class="visually-hidden" id="announcer" aria-live="polite" aria-atomic="true"></div>
<footer class="site-footer"><p>Times are shown in your time zone (UTC without JavaScript). \
Keyboard: <kbd>j</kbd> next update, <kbd>k</kbd> previous update.</p>\
<p><a href="/newsroom">Newsroom console</a></p></footer>
{item_template()}"""
    json_ld = script_json(live_blog_json_ld(feed, page_url, items, key_events))
    head = f'<script type="application/ld+json">{json_ld}</script>\n'
    head += f'<link rel="canonical" href="{escape(page_url)}">\n'
    for media_type, suffix, name in (
        ("application/atom+xml", "atom", "Atom"), ("application/feed+json", "json", "JSON Feed"),
    ):
        head += (f'<link rel="alternate" type="{media_type}" href="{escape(page_url)}.{suffix}"'
                 f' title="{escape(title)} ({name})">\n')
    head += f'<meta name="description" content="{escape(title)}: live updates, newest first.">\n'
    return layout(f"{title}: live updates · livefeed", body, script="reader.js", head=head, body_class="page-reader")


def render_index(feeds: Sequence[tuple[str, int]], latest: dict[str, Item], now: datetime) -> str:
    """Every feed with its last change and, for the busiest, its newest headline."""
    rows = []
    for feed, updated_ms in feeds:
        changed = datetime.fromtimestamp(updated_ms / 1000, UTC)
        item = latest.get(feed)
        headline = f'<p class="feed-card-latest">{escape(item.headline)}</p>' if item is not None else ""
        rows.append(
            f'<li class="feed-card"><a href="/feeds/{escape(quote(feed))}">'
            f'<span class="feed-card-title">{escape(feed_title(feed))}</span>'
            f'<span class="feed-card-time">Updated {_time(changed, now)}</span>{headline}</a></li>'
        )
    listing = (
        f'<ul class="feed-cards">{"".join(rows)}</ul>'
        if rows
        else '<p class="feed-empty">No feeds yet. A feed appears here with its first update.</p>'
    )
    body = f"""{masthead('<a class="masthead-link" href="/newsroom">Newsroom</a>')}
<main class="index" id="main">
<h1>Live feeds</h1>
{listing}
</main>"""
    return layout("Live feeds · livefeed", body, script="index.js", body_class="page-index")


def render_console() -> str:
    """The newsroom console's shell; ``web/console.js`` brings it to life once the editor signs in."""
    head = '<meta name="robots" content="noindex">\n'
    signout = '<button class="masthead-button" id="signout" type="button" hidden>Sign out</button>'
    body = masthead('<span class="masthead-label">Newsroom</span>' + signout) + _CONSOLE + item_template()
    return layout("Newsroom console · livefeed", body, script="console.js", head=head, body_class="page-console")


_CONSOLE = """
<main class="console" id="main">
<section class="signin" id="signin-panel" aria-labelledby="signin-title">
<h1 id="signin-title">Newsroom sign-in</h1>
<form class="form" id="signin-form">
<input type="text" name="username" value="newsroom" autocomplete="username" hidden>
<label for="token">Newsroom token</label>
<input id="token" name="token" type="password" autocomplete="current-password" spellcheck="false" required>
<p class="hint">Kept in this browser tab only and sent only to this site.</p>
<p class="form-error" id="signin-error" role="alert" hidden></p>
<button class="primary" type="submit">Sign in</button>
</form>
</section>
<div class="desk" id="desk" hidden>
<section class="composer" aria-labelledby="composer-title">
<form class="feed-picker" id="feed-form">
<label for="feed-input">Feed</label>
<input id="feed-input" name="feed" list="feed-options" pattern="[a-z0-9][a-z0-9\\-]{0,62}" required
 autocomplete="off" spellcheck="false">
<datalist id="feed-options"></datalist>
<button type="submit">Open</button>
<a id="reader-link" href="/" target="_blank" rel="noopener">Reader page</a>
</form>
<h1 id="composer-title">New update</h1>
<form class="form" id="item-form" novalidate>
<p class="editing" id="editing" hidden></p>
<label for="f-headline">Headline</label>
<input id="f-headline" name="headline" maxlength="300" required aria-describedby="e-headline">
<p class="field-error" id="e-headline" hidden></p>
<label for="f-body">Body</label>
<textarea id="f-body" name="body" rows="4" maxlength="10000" aria-describedby="e-body"></textarea>
<p class="field-error" id="e-body" hidden></p>
<div class="row">
<div>
<label for="f-tags">Tags</label>
<input id="f-tags" name="tags" placeholder="politics, budget" autocomplete="off" spellcheck="false"
 aria-describedby="h-tags e-tags">
<p class="hint" id="h-tags">Comma-separated: lowercase letters, digits and dashes.</p>
<p class="field-error" id="e-tags" hidden></p>
</div>
<div>
<label for="f-byline">Byline</label>
<input id="f-byline" name="byline" maxlength="200" aria-describedby="e-byline">
<p class="field-error" id="e-byline" hidden></p>
</div>
</div>
<label for="f-url">Source link</label>
<input id="f-url" name="url" type="url" placeholder="https://" aria-describedby="e-url">
<p class="field-error" id="e-url" hidden></p>
<div class="row">
<div>
<label for="f-image-url">Image address</label>
<input id="f-image-url" name="image_url" type="url" placeholder="https://" aria-describedby="h-image e-images">
<p class="hint" id="h-image">A picture hosted elsewhere, by its https:// address.</p>
<p class="field-error" id="e-images" hidden></p>
</div>
<div>
<label for="f-image-alt">Image description</label>
<input id="f-image-alt" name="image_alt" maxlength="500" aria-describedby="h-image-alt e-image_alt">
<p class="hint" id="h-image-alt">What the picture shows, for readers who cannot see it (required with an image).</p>
<p class="field-error" id="e-image_alt" hidden></p>
</div>
</div>
<div id="correction-box" hidden>
<label for="f-correction">Correction note</label>
<input id="f-correction" name="correction" maxlength="500" aria-describedby="h-correction e-correction">
<p class="hint" id="h-correction">Optional. Readers see “Corrected HH:MM: your note” on the update.</p>
<p class="field-error" id="e-correction" hidden></p>
</div>
<fieldset class="flags">
<legend>Mark as</legend>
<label><input type="checkbox" id="f-breaking" name="breaking"> Breaking</label>
<label><input type="checkbox" id="f-pinned" name="pinned"> Pinned on top</label>
<label><input type="checkbox" id="f-key" name="key_event"> Key event</label>
</fieldset>
<p class="form-error" id="form-error" role="alert" hidden></p>
<div class="actions">
<button class="primary" id="submit" type="submit">Publish</button>
<button id="cancel-edit" type="button" hidden>Cancel edit</button>
<span class="hint">Ctrl+Enter publishes.</span>
</div>
<p class="form-status" id="form-status" role="status"></p>
</form>
<section class="preview" aria-labelledby="preview-title">
<h2 id="preview-title">Preview <span class="hint">as readers will see it</span></h2>
<div class="feed" id="preview"></div>
</section>
</section>
<section class="console-feed" aria-labelledby="live-title">
<div class="console-feed-head">
<h2 id="live-title">Live feed</h2>
<p class="conn" id="conn" data-state="connecting">Connecting…</p>
</div>
<div class="feed" id="feed" aria-busy="false"></div>
<p class="feed-empty" id="feed-empty">No updates in this feed yet.</p>
<button class="load-older" id="load-older" type="button" hidden>Load older updates</button>
</section>
</div>
</main>
"""
