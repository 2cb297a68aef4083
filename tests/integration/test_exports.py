"""Issue 12's exports through the gateway, on the real servers: Atom 1.0 and JSON Feed 1.1 beside the
reader page, and IPTC ninjs 3.1 on the item routes, each checked by the format's own rules.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from pydantic import SecretStr

from shared.reader_tokens import ReaderTokens
from tests.conftest import READER_TOKEN_KEY
from tests.utils.exports import check_json_feed, check_ninjs

TOKENS = ReaderTokens(SecretStr(READER_TOKEN_KEY))
IMAGE = {"url": "https://img.example/kyiv.jpg", "alt": "Smoke over a Kyiv street", "caption": "Kyiv, 08:10",
         "credit": "Photo: Example", "width": 1200, "height": 800}
SETTLE_S = 15.0
"""The bound on waiting for history to show a write: the machine is shared."""


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def post(api: httpx.AsyncClient, feed: str, headline: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, **fields})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()["item"]
    return item


async def settled(api: httpx.AsyncClient, feed: str, expected: dict[str, int], **params: str) -> None:
    """Wait until the feed's list holds exactly ``expected`` (id → version)."""
    deadline = time.monotonic() + SETTLE_S
    listed: dict[str, int] = {}
    while time.monotonic() < deadline:
        page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 200, **params})
        if page.status_code == 200:
            listed = {i["id"]: i["version"] for i in page.json()["items"]}
            if listed == expected:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"history shows {listed}, not {expected}, after {SETTLE_S}s")


@pytest.fixture
async def published(api: httpx.AsyncClient, feed: str) -> list[dict[str, Any]]:
    """Four items, the third retracted: what every export of the feed must show, newest first."""
    items = [
        await post(api, feed, "First: <b>markup</b> & text", body="Plain body.", tags=["kyiv"]),
        await post(api, feed, "Second", byline="Ana Desk", urgency="breaking"),
        await post(api, feed, "Third, to retract"),
        await post(api, feed, "Fourth", url="https://example.org/source", images=[IMAGE]),
    ]
    assert (await api.delete(f"/v1/feeds/{feed}/items/{items[2]['id']}")).status_code == 200
    shown = [items[3], items[1], items[0]]
    await settled(api, feed, {i["id"]: 1 for i in shown})
    return shown


async def test_atom_lists_the_current_items_newest_first_with_stable_ids_and_gateway_links(
    api: httpx.AsyncClient, base_url: str, feed: str, published: list[dict[str, Any]]
) -> None:
    response = await api.get(f"/feeds/{feed}.atom")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert [e.id for e in parsed.entries] == [f"urn:livefeed:{feed}:{i['id']}" for i in published]
    assert [e.title for e in parsed.entries] == ["Fourth", "Second", "First: <b>markup</b> & text"]
    assert [e.updated for e in parsed.entries] == [i["updated_at"] for i in published]
    assert {link.rel: link.href for link in parsed.feed.links} == {
        "self": f"{base_url}/feeds/{feed}.atom", "alternate": f"{base_url}/feeds/{feed}"}
    assert parsed.entries[0].link == f"{base_url}/feeds/{feed}#item-{published[0]['id']}"
    assert parsed.entries[1].author == "Ana Desk"
    assert [link.href for link in parsed.entries[0].links if link.rel == "enclosure"] == [IMAGE["url"]]
    assert [t.term for t in parsed.entries[2].tags] == ["kyiv"]
    assert "Third" not in response.text


async def test_json_feed_follows_the_1_1_rules_and_lists_the_current_items(
    api: httpx.AsyncClient, base_url: str, feed: str, published: list[dict[str, Any]]
) -> None:
    response = await api.get(f"/feeds/{feed}.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/feed+json; charset=utf-8"
    doc = orjson.loads(response.content)
    check_json_feed(doc)
    assert doc["feed_url"] == f"{base_url}/feeds/{feed}.json" and doc["home_page_url"] == f"{base_url}/feeds/{feed}"
    assert [i["id"] for i in doc["items"]] == [f"urn:livefeed:{feed}:{i['id']}" for i in published]
    assert [i["content_text"] for i in doc["items"]] == ["Fourth", "Second", "Plain body."]
    assert doc["items"][1]["authors"] == [{"name": "Ana Desk"}]
    assert doc["items"][0]["external_url"] == "https://example.org/source"
    assert doc["items"][0]["image"] == IMAGE["url"]
    assert "Third" not in response.text


@pytest.mark.parametrize("suffix", ["atom", "json"])
async def test_a_poller_gets_304_until_a_correction_moves_updated_and_the_etag(
    api: httpx.AsyncClient, feed: str, published: list[dict[str, Any]], suffix: str
) -> None:
    path = f"/feeds/{feed}.{suffix}"
    first = await api.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = await api.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag

    target = published[1]
    edit = await api.patch(f"/v1/feeds/{feed}/items/{target['id']}", json={"headline": "Second, corrected",
                                                                                 "correction": "Misspelt a name."})
    assert edit.status_code == 200, edit.text
    await settled(api, feed, {i["id"]: 2 if i is target else 1 for i in published})

    changed = await api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    if suffix == "atom":
        before, after = (feedparser.parse(r.content).entries[1] for r in (first, changed))
        assert (before.id, after.title) == (after.id, "Second, corrected")
        assert instant(after.updated) > instant(before.updated)
        assert after.content[0].value == "Second, corrected\n\nCorrection: Misspelt a name."
    else:
        before, after = (orjson.loads(r.content)["items"][1] for r in (first, changed))
        assert (before["id"], after["title"]) == (after["id"], "Second, corrected")
        assert instant(after["date_modified"]) > instant(before["date_modified"])
        assert after["content_text"] == "Second, corrected\n\nCorrection: Misspelt a name."
        assert after["date_published"] == before["date_published"]


async def test_the_limit_is_bounded(api: httpx.AsyncClient, feed: str, published: list[dict[str, Any]]) -> None:
    two = feedparser.parse((await api.get(f"/feeds/{feed}.atom", params={"limit": 2})).content)
    assert [e.title for e in two.entries] == ["Fourth", "Second"]
    for limit in ("0", "101", "x"):
        refused = await api.get(f"/feeds/{feed}.json", params={"limit": limit})
        assert refused.status_code == 422 and refused.json()["error"] == "validation_error", limit


async def test_the_reader_page_links_both_feeds(
    api: httpx.AsyncClient, base_url: str, feed: str, published: list[dict[str, Any]]
) -> None:
    page = (await api.get(f"/feeds/{feed}")).text
    head = page.split("</head>")[0]
    assert f'<link rel="alternate" type="application/atom+xml" href="{base_url}/feeds/{feed}.atom"' in head
    assert f'<link rel="alternate" type="application/feed+json" href="{base_url}/feeds/{feed}.json"' in head


async def test_a_private_feed_exports_only_with_its_reader_token_and_never_cached(
    api: httpx.AsyncClient, base_url: str
) -> None:
    feed = f"private-{uuid.uuid4().hex[:12]}"
    item = await post(api, feed, "Wire: embargoed")
    token = TOKENS.mint(feed, 600, now=time.time())[0]
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as reader:
        await settled(reader, feed, {item["id"]: 1}, token=token)
        for suffix in ("atom", "json"):
            refused = await reader.get(f"/feeds/{feed}.{suffix}")
            assert refused.status_code == 401 and refused.json()["error"] == "reader_token_required"
            assert "embargoed" not in refused.text
            for ok in (await reader.get(f"/feeds/{feed}.{suffix}", params={"token": token}),
                       await reader.get(f"/feeds/{feed}.{suffix}", headers={"Authorization": f"Bearer {token}"})):
                assert ok.status_code == 200 and "embargoed" in ok.text
                assert ok.headers["cache-control"] == "private, no-store"
                assert token not in ok.text


# -- ninjs ------------------------------------------------------------------------------------------


async def test_ninjs_list_has_the_same_paging_and_valid_items(
    api: httpx.AsyncClient, feed: str, published: list[dict[str, Any]]
) -> None:
    for params in ({}, {"limit": "2"}):
        plain = (await api.get(f"/v1/feeds/{feed}/items", params=params)).json()
        response = await api.get(f"/v1/feeds/{feed}/items", params={**params, "format": "ninjs"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        ninjs = response.json()
        assert {k: ninjs[k] for k in ("feed", "next_before")} == {k: plain[k] for k in ("feed", "next_before")}
        # The cursor is how far history has read the feed's partition, which other feeds' writes
        # still being applied may move between the two reads: the same partition, never behind.
        (epoch, partition, at), (plain_epoch, plain_partition, plain_at) = (
            c.split(".") for c in (ninjs["cursor"], plain["cursor"]))
        assert (epoch, partition) == (plain_epoch, plain_partition) and int(at) >= int(plain_at)
        assert [o["uri"] for o in ninjs["items"]] == [f"urn:livefeed:{feed}:{i['id']}" for i in plain["items"]]
        for obj in ninjs["items"]:
            check_ninjs(obj)
    older = await api.get(f"/v1/feeds/{feed}/items", params={"format": "ninjs", "before": ninjs["next_before"]})
    assert [o["headlines"][0]["value"] for o in older.json()["items"]] == ["First: <b>markup</b> & text"]
    first, second, third = (await api.get(f"/v1/feeds/{feed}/items", params={"format": "ninjs"})).json()["items"]
    assert (second["urgency"], first["urgency"]) == (2, 5)
    assert second["by"] == "Ana Desk" and third["subjects"] == [{"name": "kyiv", "literal": "kyiv"}]
    assert third["bodies"][0] == {"contentType": "text/plain", "charCount": 11, "value": "Plain body."}
    association, = first["associations"]
    assert (first["type"], association["type"], association["uri"]) == ("composite", "picture", IMAGE["url"])
    assert association["renditions"] == [{"name": "original", "href": IMAGE["url"], "width": 1200, "height": 800}]


async def test_ninjs_item_is_valid_and_a_retracted_one_is_canceled(
    api: httpx.AsyncClient, feed: str, published: list[dict[str, Any]]
) -> None:
    item = published[1]
    obj = (await api.get(f"/v1/feeds/{feed}/items/{item['id']}", params={"format": "ninjs"})).json()
    check_ninjs(obj)
    assert (obj["uri"], obj["version"], obj["pubStatus"]) == (f"urn:livefeed:{feed}:{item['id']}", "1", "usable")
    assert obj["headlines"] == [{"contentType": "text/plain", "value": "Second"}]

    retracted = (await api.get(f"/v1/feeds/{feed}/items")).json()  # the fixture retracted the third post
    assert all(i["headline"] != "Third, to retract" for i in retracted["items"])
    gone = await post(api, feed, "Fifth, retracted at once")
    assert (await api.delete(f"/v1/feeds/{feed}/items/{gone['id']}")).status_code == 200
    await settled(api, feed, {i["id"]: 1 for i in published})
    assert (await api.get(f"/v1/feeds/{feed}/items/{gone['id']}")).status_code == 410
    canceled = await api.get(f"/v1/feeds/{feed}/items/{gone['id']}", params={"format": "ninjs"})
    assert canceled.status_code == 200, canceled.text
    check_ninjs(canceled.json())
    assert canceled.json()["pubStatus"] == "canceled" and "retracted at once" not in canceled.text

    unknown = await api.get(f"/v1/feeds/{feed}/items/{'0' * 26}", params={"format": "ninjs"})
    assert unknown.status_code == 404
    bad = await api.get(f"/v1/feeds/{feed}/items", params={"format": "newsml"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "format"


async def test_the_openapi_document_names_the_format_and_both_answers(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/api/history/openapi.json")).json()
    for path in ("/v1/feeds/{feed}/items", "/v1/feeds/{feed}/items/{item_id}"):
        route = doc["paths"][path]["get"]
        formats = [p for p in route["parameters"] if p["name"] == "format"]
        assert len(formats) == 1 and formats[0]["in"] == "query"
        schema = route["responses"]["200"]["content"]["application/json"]["schema"]
        assert {ref["$ref"].rsplit("/", 1)[1] for ref in schema["anyOf"]} & {"NinjsPage", "NinjsItem"}
