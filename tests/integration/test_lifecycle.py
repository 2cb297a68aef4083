"""Issue 4: an item's lifecycle through ingest, as history and the stream see it."""

from __future__ import annotations

import asyncio

import httpx

from tests.utils.streams import next_event, next_message, open_stream


async def post(api: httpx.AsyncClient, feed: str, **fields: object) -> dict[str, object]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "h", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_edit_bumps_the_version_and_history_shows_the_edit(api: httpx.AsyncClient, feed: str) -> None:
    posted = await post(api, feed, headline="Original", tags=["a"])
    item = posted["item"]
    assert isinstance(item, dict)
    response = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"headline": "Corrected"})
    assert response.status_code == 200, response.text
    edited = response.json()["item"]
    assert edited["version"] == 2
    assert edited["headline"] == "Corrected"
    assert edited["tags"] == ["a"], "fields not sent must stay"
    assert edited["published_at"] == item["published_at"]
    assert edited["updated_at"] > item["updated_at"]
    got = (await api.get(f"/v1/feeds/{feed}/items/{item['id']}")).json()
    assert got == edited
    listed = (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]
    assert listed == [edited]


async def test_if_match_guards_against_lost_updates(api: httpx.AsyncClient, feed: str) -> None:
    item = (await post(api, feed))["item"]
    assert isinstance(item, dict)
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    ok = await api.patch(url, json={"body": "first editor"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    stale = await api.patch(url, json={"body": "second editor"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["version"] == 2
    assert (await api.get(url)).json()["body"] == "first editor"


async def test_concurrent_edits_each_get_their_own_version(api: httpx.AsyncClient, feed: str) -> None:
    item = (await post(api, feed))["item"]
    assert isinstance(item, dict)
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    responses = await asyncio.gather(*(api.patch(url, json={"body": f"edit {n}"}) for n in range(8)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    versions = sorted(r.json()["item"]["version"] for r in responses)
    assert versions == list(range(2, 10))
    final = (await api.get(url)).json()
    winner = next(r.json()["item"] for r in responses if r.json()["item"]["version"] == 9)
    assert final == winner


async def test_retraction_removes_the_item_and_leaves_a_410(
    api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    keep = (await post(api, feed, headline="keep"))["item"]
    posted = await post(api, feed, headline="gone", tags=["t"], key_event=True)
    gone = posted["item"]
    assert isinstance(gone, dict) and isinstance(keep, dict) and isinstance(posted["cursor"], str)
    ws = await open_stream(ws_url, feed, origin, since=posted["cursor"])
    try:
        await next_message(ws)
        response = await api.delete(f"/v1/feeds/{feed}/items/{gone['id']}")
        assert response.status_code == 200
        assert response.json()["item"]["status"] == "retracted"
        event = await next_event(ws)
        assert event["type"] == "item.retracted"
        assert event["item"]["id"] == gone["id"]
        assert event["item"]["version"] == 2
    finally:
        await ws.close()
    assert (await api.get(f"/v1/feeds/{feed}/items/{gone['id']}")).status_code == 410
    assert [i["id"] for i in (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]] == [keep["id"]]
    assert (await api.get(f"/v1/feeds/{feed}/items?tag=t")).json()["items"] == []
    assert (await api.get(f"/v1/feeds/{feed}/key-events")).json()["items"] == []
    again = await api.delete(f"/v1/feeds/{feed}/items/{gone['id']}")
    assert again.status_code == 410
    edit = await api.patch(f"/v1/feeds/{feed}/items/{gone['id']}", json={"headline": "zombie"})
    assert edit.status_code == 410


async def test_unknown_items_are_404(api: httpx.AsyncClient, feed: str) -> None:
    missing = "0" * 26
    assert (await api.get(f"/v1/feeds/{feed}/items/{missing}")).status_code == 404
    assert (await api.patch(f"/v1/feeds/{feed}/items/{missing}", json={"body": "x"})).status_code == 404
    assert (await api.delete(f"/v1/feeds/{feed}/items/{missing}")).status_code == 404
    empty_edit = await api.patch(f"/v1/feeds/{feed}/items/{missing}", json={})
    assert empty_edit.status_code == 422


async def test_pin_and_unpin(api: httpx.AsyncClient, feed: str) -> None:
    item = (await post(api, feed))["item"]
    other = (await post(api, feed, pinned=True))["item"]
    assert isinstance(item, dict) and isinstance(other, dict)
    pinned = await api.put(f"/v1/feeds/{feed}/items/{item['id']}/pin")
    assert pinned.status_code == 200 and pinned.json()["item"]["pinned"] is True
    listed = (await api.get(f"/v1/feeds/{feed}/pinned")).json()["items"]
    assert [i["id"] for i in listed] == [other["id"], item["id"]]
    unpinned = await api.delete(f"/v1/feeds/{feed}/items/{item['id']}/pin")
    assert unpinned.json()["item"]["pinned"] is False
    assert unpinned.json()["item"]["version"] == 3
    await api.delete(f"/v1/feeds/{feed}/items/{other['id']}")
    assert (await api.get(f"/v1/feeds/{feed}/pinned")).json()["items"] == []


async def test_pagination_tags_key_events_and_feeds(api: httpx.AsyncClient, feed: str) -> None:
    ids = []
    for n in range(7):
        body = await post(api, feed, headline=f"n{n}", tags=["even"] if n % 2 == 0 else ["odd"], key_event=n == 1)
        item = body["item"]
        assert isinstance(item, dict)
        ids.append(item["id"])
    pages: list[str] = []
    before = None
    for _ in range(5):
        query = "limit=3" + (f"&before={before}" if before else "")
        page = (await api.get(f"/v1/feeds/{feed}/items?{query}")).json()
        pages += [i["id"] for i in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert pages == ids[::-1]
    assert [i["headline"] for i in (await api.get(f"/v1/feeds/{feed}/items?tag=odd")).json()["items"]] == [
        "n5", "n3", "n1"]
    assert [i["id"] for i in (await api.get(f"/v1/feeds/{feed}/key-events")).json()["items"]] == [ids[1]]
    feeds = [f["feed"] for f in (await api.get("/v1/feeds")).json()["feeds"]]
    assert feed in feeds
    bad = await api.get(f"/v1/feeds/{feed}/items?before=nonsense")
    assert bad.status_code == 400 and bad.json()["fields"][0]["field"] == "before"
    too_many = await api.get(f"/v1/feeds/{feed}/items?limit=100000")
    assert too_many.status_code == 422 and too_many.json()["fields"][0]["field"] == "limit"
