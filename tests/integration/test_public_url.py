"""A foreign ``Host`` through the gateway changes nothing another reader gets (issue 13).

Every absolute URL history serves comes from ``LIVEFEED_PUBLIC_URL`` (the stack sets it to the
gateway's address). Each probe is asked first with a stranger's Host or forwarding headers, on a
URL of its own (an ignored ``probe`` parameter), so it reaches history even behind the gateway's
micro-cache; then the same URL is asked plainly, as the next reader would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.test_exports import post, settled

FOREIGN = [
    {"Host": "evil.example"},
    {"Host": "evil.example:8443", "X-Forwarded-Proto": "https"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example;proto=https"},
]
"""Hosts and forwarding headers any client may send; nginx takes each as it is."""
COMPARED = ("content-type", "content-security-policy", "etag")


@pytest.fixture
async def reader(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A reader's client on the gateway: no credentials, so every answer is a public one."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        yield client


CURSOR = re.compile(r'data-cursor="[^"]*"')
"""A page's cursor is how far history has read the feed's partition, which other feeds' events still
being applied may move on between two renders: it is compared apart, never by its host."""


async def answer(client: httpx.AsyncClient, path: str, probe: str, headers: dict[str, str] | None = None
                 ) -> tuple[int, dict[str, str | None], str]:
    response = await client.get(path, params={"probe": probe}, headers=headers)
    text = CURSOR.sub('data-cursor=""', response.text)
    return response.status_code, {name: response.headers.get(name) for name in COMPARED}, text


@pytest.mark.parametrize("kind", ["page", "embed", "atom", "json"])
async def test_a_foreign_host_changes_nothing_another_reader_gets(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, base_url: str, feed: str, kind: str
) -> None:
    items = [await post(api, feed, f"Update {n}", key_event=n == 0) for n in range(2)]
    await settled(api, feed, {i["id"]: 1 for i in items})
    path = {"page": f"/feeds/{feed}", "embed": f"/feeds/{feed}/embed", "atom": f"/feeds/{feed}.atom",
            "json": f"/feeds/{feed}.json"}[kind]
    plain = await answer(reader, path, "plain")
    assert plain[0] == 200, plain
    for n, headers in enumerate(FOREIGN):
        assert await answer(reader, path, f"foreign-{n}", headers) == plain, headers
        assert await answer(reader, path, f"foreign-{n}") == plain, headers
    assert "evil.example" not in plain[2] and "evil.example" not in str(plain[1])
    if kind in ("page", "embed"):
        stream = re.sub(r"^http", "ws", base_url)
        assert re.search(rf"connect-src 'self' {re.escape(stream)};", plain[1]["content-security-policy"] or "")


async def test_the_reader_page_links_to_the_configured_public_url(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, base_url: str, feed: str
) -> None:
    item = await post(api, feed, "Linked update")
    await settled(api, feed, {item["id"]: 1})
    _, _, page = await answer(reader, f"/feeds/{feed}", "links", {"Host": "evil.example"})
    assert f'<link rel="canonical" href="{base_url}/feeds/{feed}">' in page
    assert f'href="{base_url}/feeds/{feed}.atom"' in page and f'href="{base_url}/feeds/{feed}.json"' in page
    assert f'"url":"{base_url}/feeds/{feed}#item-{item["id"]}"' in page
    feed_doc = (await reader.get(f"/feeds/{feed}.json", headers={"Host": "evil.example"})).json()
    assert (feed_doc["home_page_url"], feed_doc["feed_url"]) == (f"{base_url}/feeds/{feed}",
                                                                 f"{base_url}/feeds/{feed}.json")
