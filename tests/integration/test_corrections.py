"""Issue 12: corrections readers can trust: any item can change however far back, every version is kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from deploy.stack import Stack
from shared import keys
from shared.settings import CommonSettings
from tests.conftest import ADMIN_NAME, EDITOR, bearer
from tests.integration.test_private_feeds import token_for

RETENTION = CommonSettings.model_fields["retention_items"].default
"""The test stack's per-feed list retention (it does not set LIVEFEED_RETENTION_ITEMS)."""


async def _post(api: httpx.AsyncClient, feed: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "h", **fields})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()["item"]
    return item


async def _eventually(check: Any, timeout: float = 10) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        await asyncio.sleep(0.05)


async def test_an_item_past_the_list_retention_can_be_edited_and_retracted(api: httpx.AsyncClient, feed: str) -> None:
    gate = asyncio.Semaphore(16)

    async def post(n: int) -> dict[str, Any]:
        async with gate:
            return await _post(api, feed, headline=f"item {n}")

    oldest, second = [await post(n) for n in range(2)]
    items = [oldest, second, *await asyncio.gather(*(post(n) for n in range(2, RETENTION + 10)))]
    url = f"/v1/feeds/{feed}/items/{oldest['id']}"
    edited = await api.patch(url, json={"headline": "edited long after"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["item"]["version"] == 2

    async def history_has_the_edit() -> bool:
        got = await api.get(url)
        return got.status_code == 200 and got.json()["headline"] == "edited long after"

    await _eventually(history_has_the_edit)
    retracted = await api.delete(f"/v1/feeds/{feed}/items/{second['id']}")
    assert retracted.status_code == 200, retracted.text
    assert (await api.get(f"/v1/feeds/{feed}/items/{second['id']}")).status_code == 410
    newest = (await api.get(f"/v1/feeds/{feed}/items", params={"limit": 1})).json()["items"]
    assert newest[0]["id"] == max(i["id"] for i in items), "an old edit must not jump to the top of the list"


async def test_revisions_list_every_version_with_who_made_it_and_when(api: httpx.AsyncClient, feed: str) -> None:
    item = await _post(api, feed, headline="Quake of magnitude 7.1")
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    corrected = await api.patch(url, headers=bearer(EDITOR.token),
                                json={"headline": "Quake of magnitude 6.1", "correction": "The magnitude was 6.1."})
    assert corrected.status_code == 200, corrected.text
    note = corrected.json()["item"]["correction"]
    assert note == {"note": "The magnitude was 6.1.", "corrected_at": corrected.json()["item"]["updated_at"]}
    plain = await api.patch(url, json={"body": "More soon."})
    assert plain.status_code == 200, plain.text
    assert plain.json()["item"]["correction"] == note, "a plain edit keeps the latest correction"
    assert (await api.get(url)).json()["correction"] == note

    revisions = await api.get(f"{url}/revisions")
    assert revisions.status_code == 200, revisions.text
    assert revisions.headers["cache-control"] == "no-cache"
    answer = revisions.json()
    assert (answer["feed"], answer["id"]) == (feed, item["id"])
    versions = answer["revisions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["headline"] for v in versions] == ["Quake of magnitude 7.1", *["Quake of magnitude 6.1"] * 2]
    assert [v["updated_by"] for v in versions] == [ADMIN_NAME, EDITOR.name, ADMIN_NAME]
    assert [v["updated_at"] for v in versions] == [item["updated_at"], note["corrected_at"],
                                                    plain.json()["item"]["updated_at"]]
    assert versions[-1] == (await api.get(url)).json()


async def test_a_retracted_items_revisions_are_gone(
    api: httpx.AsyncClient, feed: str, redis: aioredis.Redis
) -> None:
    item = await _post(api, feed, headline="Words to retract")
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    assert (await api.patch(url, json={"body": "more words", "correction": "fixed"})).status_code == 200
    assert (await api.delete(url)).status_code == 200
    gone = await api.get(f"{url}/revisions")
    assert gone.status_code == 410 and gone.json()["error"] == "retracted"
    assert await redis.exists(keys.key("rev", feed=feed, id=item["id"])) == 0
    unknown = await api.get(f"/v1/feeds/{feed}/items/{'0' * 26}/revisions")
    assert unknown.status_code == 404 and unknown.json()["fields"] == [{"field": "id", "message": "unknown item"}]


async def test_a_private_feeds_revisions_need_its_reader_token(api: httpx.AsyncClient, base_url: str) -> None:
    feed = f"private-{uuid.uuid4().hex[:12]}"
    item = await _post(api, feed)
    path = f"/v1/feeds/{feed}/items/{item['id']}/revisions"
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as reader:
        refused = await reader.get(path)
        assert refused.status_code == 401 and refused.json()["error"] == "reader_token_required"
        allowed = await reader.get(path, params={"token": token_for(feed)})
        assert allowed.status_code == 200 and allowed.headers["cache-control"] == "private, no-store"
        assert [v["version"] for v in allowed.json()["revisions"]] == [1]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:image/png;base64,AAAA", "http://img.example/a.jpg"])
async def test_an_image_that_is_not_https_is_refused_naming_the_field(
    api: httpx.AsyncClient, feed: str, url: str
) -> None:
    images = [{"url": "https://img.example/ok.jpg", "alt": "ok"}, {"url": url, "alt": "bad"}]
    refused = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "h", "images": images})
    assert refused.status_code == 422, refused.text
    assert [f["field"] for f in refused.json()["fields"]] == ["images.1.url"]
    assert (await api.get(f"/v1/feeds/{feed}/items")).json()["items"] == [], "a refused write leaves nothing"
    item = await _post(api, feed, images=images[:1])
    edit = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"images": images})
    assert edit.status_code == 422 and [f["field"] for f in edit.json()["fields"]] == ["images.1.url"]


async def test_images_reach_history_and_the_reader_page_lazily(api: httpx.AsyncClient, feed: str) -> None:
    image = {"url": "https://img.example/quake.jpg", "alt": "A cracked road", "caption": "Route 1",
             "credit": "A. Photographer", "width": 1200, "height": 800}
    item = await _post(api, feed, images=[image])
    assert (await api.get(f"/v1/feeds/{feed}/items/{item['id']}")).json()["images"] == [image]
    page = await api.get(f"/feeds/{feed}")
    assert '<img src="https://img.example/quake.jpg" alt="A cracked road" width="1200" height="800"' \
        ' loading="lazy"' in page.text
    assert "https:" in page.headers["content-security-policy"].split("img-src")[1].split(";")[0]


async def test_revisions_are_rebuilt_from_kafka(
    api: httpx.AsyncClient, feed: str, redis: aioredis.Redis
) -> None:
    item = await _post(api, feed, headline="v1")
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    last = await api.patch(url, json={"headline": "v2", "correction": "Renamed."})
    kept = await _eventually(lambda: _revisions_at(api, url, 2))
    await _wait_head(api, feed, last.json()["cursor"])
    await redis.flushdb()

    async def rebuilt() -> Any:
        ready = await api.get("/api/history/readyz")
        return ready.status_code == 200 and await _revisions_at(api, url, 2)

    assert await _eventually(rebuilt, timeout=60) == kept


async def _revisions_at(api: httpx.AsyncClient, url: str, count: int) -> list[dict[str, Any]] | None:
    got = await api.get(f"{url}/revisions")
    if got.status_code != 200:
        return None
    versions: list[dict[str, Any]] = got.json()["revisions"]
    return versions if len(versions) == count else None


async def _wait_head(api: httpx.AsyncClient, feed: str, cursor: str) -> None:
    """Wait until history has applied the event at ``cursor`` (its list cursor has reached it)."""
    offset = int(cursor.rsplit(".", 1)[1])

    async def reached() -> bool:
        head = (await api.get(f"/v1/feeds/{feed}/items", params={"limit": 1})).json()["cursor"]
        return head is not None and int(head.rsplit(".", 1)[1]) >= offset

    await _eventually(reached)


@pytest.fixture
async def redis(stack: Stack) -> Any:
    client = aioredis.Redis(host=stack.topology.host, port=stack.topology.redis)
    yield client
    await client.aclose()
