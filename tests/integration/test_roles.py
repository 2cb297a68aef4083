"""Issue 11, who did what: named credentials and their roles against the real stack.

The test stack has an admin (``TEST_TOKEN``, named "demo"), an editor for every feed and a
reporter limited to ``t-*`` feeds (tests/conftest.py). Each action is tried by each role that
may and may not do it; every write's item (in the answer, in history and on the stream) names
the credentials that created and last changed it, and a refused write leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from deploy.stack import Stack
from shared.reader_tokens import ReaderTokens
from tests.conftest import ADMIN_NAME, EDITOR, READER_TOKEN_KEY, REPORTER, TEST_TOKEN, bearer
from tests.utils.streams import next_event, next_message, open_stream

ROOT = Path(__file__).resolve().parents[2]
RELOAD_WAIT_S = 15.0
"""Ingest looks at the credentials file at most once a second; this bounds the wait for it to notice."""


@pytest.fixture
async def reporter(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(REPORTER.token), timeout=15) as client:
        yield client


@pytest.fixture
async def editor(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(EDITOR.token), timeout=15) as client:
        yield client


@pytest.fixture
async def anonymous(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        yield client


@pytest.fixture
def outside() -> str:
    """A feed outside the reporter's ``t-*`` feeds."""
    return f"o-{uuid.uuid4().hex[:12]}"


async def post(client: httpx.AsyncClient, feed: str, **fields: object) -> dict[str, Any]:
    response = await client.post(f"/v1/feeds/{feed}/items", json={"headline": "h", **fields})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()["item"]
    return item


async def stored(api: httpx.AsyncClient, feed: str, item_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/feeds/{feed}/items/{item_id}")
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


def assert_forbidden(response: httpx.Response, permission: str, field: str = "Authorization") -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden"
    assert body["permission"] == permission
    assert [f["field"] for f in body["fields"]] == [field]
    if field == "Authorization":
        assert body["fields"][0]["message"] == f"needs {permission}"
    assert "www-authenticate" not in response.headers


def who(item: dict[str, Any]) -> tuple[object, object]:
    return item.get("created_by"), item.get("updated_by")


# Reporter


async def test_a_reporter_publishes_and_edits_its_own_items(
    reporter: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(reporter, feed, headline="From the scene")
    assert who(item) == (REPORTER.name, REPORTER.name)
    assert who(await stored(api, feed, item["id"])) == (REPORTER.name, REPORTER.name)
    edited = await reporter.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"body": "More detail"})
    assert edited.status_code == 200, edited.text
    assert who(edited.json()["item"]) == (REPORTER.name, REPORTER.name)
    assert (await stored(api, feed, item["id"]))["body"] == "More detail"


async def test_a_reporter_may_not_edit_anothers_item(
    reporter: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(api, feed, headline="The desk's item")
    refused = await reporter.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"headline": "Hijacked"},
                                   headers={"Idempotency-Key": uuid.uuid4().hex})
    assert_forbidden(refused, "items:edit")
    after = await stored(api, feed, item["id"])
    assert (after["headline"], after["version"]) == ("The desk's item", 1)


async def test_a_reporter_may_not_pin_retract_or_mint(
    reporter: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(reporter, feed)
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    assert_forbidden(await reporter.put(f"{url}/pin"), "items:pin")
    assert_forbidden(await reporter.delete(f"{url}/pin"), "items:pin")
    assert_forbidden(await reporter.patch(url, json={"pinned": True}), "items:pin")
    assert_forbidden(await reporter.delete(url), "items:retract")
    assert_forbidden(await reporter.post(f"/v1/feeds/{feed}/reader-tokens", json={"ttl_s": 60}), "feeds:manage")
    after = await stored(api, feed, item["id"])
    assert (after["version"], after["pinned"], after["status"]) == (1, False, "published")


async def test_a_reporter_may_not_publish_pinned_and_nothing_is_left_behind(
    reporter: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    refused = await reporter.post(f"/v1/feeds/{feed}/items", json={"headline": "h", "pinned": True})
    assert_forbidden(refused, "items:pin")
    assert (await api.get(f"/v1/feeds/{feed}/items")).json()["items"] == []


async def test_a_feed_outside_the_credentials_feeds_is_refused_naming_the_feed(
    reporter: httpx.AsyncClient, api: httpx.AsyncClient, outside: str
) -> None:
    refused = await reporter.post(f"/v1/feeds/{outside}/items", json={"headline": "h"})
    assert_forbidden(refused, "items:publish", field="feed")
    item = await post(api, outside)
    assert_forbidden(await reporter.patch(f"/v1/feeds/{outside}/items/{item['id']}", json={"body": "x"}),
                     "items:edit-own", field="feed")
    feeds = (await api.get("/v1/feeds")).json()["feeds"]
    assert [f["feed"] for f in feeds].count(outside) == 1, "only the admin's post made the feed"


# Editor


async def test_an_editor_edits_any_item_and_pins_and_unpins(
    reporter: httpx.AsyncClient, editor: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(reporter, feed)
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    edited = await editor.patch(url, json={"headline": "Corrected by the desk"})
    assert edited.status_code == 200, edited.text
    assert who(edited.json()["item"]) == (REPORTER.name, EDITOR.name)
    pinned = await editor.put(f"{url}/pin")
    assert pinned.status_code == 200 and pinned.json()["item"]["pinned"] is True
    assert who(await stored(api, feed, item["id"])) == (REPORTER.name, EDITOR.name)
    reporter_again = await reporter.patch(url, json={"body": "the reporter's own item still"})
    assert reporter_again.status_code == 200, "created_by, not updated_by, makes the item the reporter's own"
    unpinned = await editor.delete(f"{url}/pin")
    assert unpinned.status_code == 200 and unpinned.json()["item"]["pinned"] is False
    final = await stored(api, feed, item["id"])
    assert (final["version"], who(final)) == (5, (REPORTER.name, EDITOR.name))


async def test_an_editor_may_publish_pinned_but_not_retract_or_mint(
    editor: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(editor, feed, pinned=True)
    assert item["pinned"] and who(item) == (EDITOR.name, EDITOR.name)
    assert_forbidden(await editor.delete(f"/v1/feeds/{feed}/items/{item['id']}"), "items:retract")
    assert_forbidden(await editor.post(f"/v1/feeds/{feed}/reader-tokens", json={"ttl_s": 60}), "feeds:manage")
    assert (await stored(api, feed, item["id"]))["status"] == "published"


# Admin


async def test_an_admin_retracts_and_every_event_names_who_made_it(
    reporter: httpx.AsyncClient, editor: httpx.AsyncClient, api: httpx.AsyncClient,
    ws_url: str, origin: str, feed: str,
) -> None:
    item = await post(reporter, feed)
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    ws = await open_stream(ws_url, feed, origin)
    try:
        await next_message(ws)
        assert (await editor.put(f"{url}/pin")).status_code == 200
        retracted = await api.delete(url)
        events = [await next_event(ws) for _ in range(2)]
    finally:
        await ws.close()
    assert retracted.status_code == 200
    assert retracted.json()["item"]["updated_by"] == ADMIN_NAME
    assert "headline" not in retracted.json()["item"]
    assert (await api.get(url)).status_code == 410
    assert [(e["type"], e["item"].get("updated_by")) for e in events] == [
        ("item.updated", EDITOR.name), ("item.retracted", ADMIN_NAME)]


async def test_an_admin_mints_a_reader_token_for_a_feed(
    api: httpx.AsyncClient, editor: httpx.AsyncClient
) -> None:
    feed = f"private-{uuid.uuid4().hex[:12]}"
    before = time.time()
    minted = await api.post(f"/v1/feeds/{feed}/reader-tokens", json={"ttl_s": 120})
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert set(body) == {"token", "feed", "expires_at"} and body["feed"] == feed
    expires = ReaderTokens(_key()).check(feed, body["token"])
    assert before + 119 <= expires <= time.time() + 121
    for ttl in (59, 86_401, "soon"):
        refused = await api.post(f"/v1/feeds/{feed}/reader-tokens", json={"ttl_s": ttl})
        assert refused.status_code == 422, refused.text
        assert refused.json()["fields"][0]["field"] == "ttl_s"


def _key() -> SecretStr:
    return SecretStr(READER_TOKEN_KEY)


# 401 and 403


async def test_a_missing_or_unknown_token_is_a_401_and_a_missing_permission_a_403(
    anonymous: httpx.AsyncClient, reporter: httpx.AsyncClient, feed: str
) -> None:
    for headers in ({}, bearer("lf_nobody-knows-this-token-at-all"), bearer(TEST_TOKEN + "x"),
                    bearer(REPORTER.token[:12])):
        response = await anonymous.post(f"/v1/feeds/{feed}/items", json={"headline": "h"}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {
            "error": "unauthorized",
            "message": "Writes need a newsroom token: send 'Authorization: Bearer <token>'.",
            "fields": [{"field": "Authorization", "message": "missing or unknown bearer token"}],
        }
    assert (await anonymous.post("/v1/tokens/check", headers=bearer(REPORTER.token))).status_code == 204
    item = await post(reporter, feed)
    refused = await reporter.delete(f"/v1/feeds/{feed}/items/{item['id']}")
    assert refused.json() == {
        "error": "forbidden",
        "message": f"The reporter credential '{REPORTER.name}' may not do this: it needs items:retract.",
        "fields": [{"field": "Authorization", "message": "needs items:retract"}],
        "permission": "items:retract",
    }


async def test_idempotency_keys_are_scoped_per_credential(
    reporter: httpx.AsyncClient, editor: httpx.AsyncClient, feed: str
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    mine = await reporter.post(f"/v1/feeds/{feed}/items", json={"headline": "same"}, headers=key)
    theirs = await editor.post(f"/v1/feeds/{feed}/items", json={"headline": "same"}, headers=key)
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["item"]["id"] != theirs.json()["item"]["id"]
    again = await reporter.post(f"/v1/feeds/{feed}/items", json={"headline": "same"}, headers=key)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == mine.json()


# The CLI: credentials without a restart, and who did what in history


def cli(base_url: str, *args: str, token: str | None = TEST_TOKEN, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    environ.update({"LIVEFEED_URL": base_url, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **env})
    if token is not None:
        environ["LIVEFEED_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "clients.cli.main", *args], env=environ, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def _until_status(client: httpx.AsyncClient, feed: str, token: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while True:
        response = await client.post(f"/v1/feeds/{feed}/items", json={"headline": "h"}, headers=bearer(token))
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_a_credential_added_by_the_cli_works_without_a_restart_and_stops_when_removed(
    stack: Stack, base_url: str, anonymous: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    ingest_pid = stack.procs["ingest"].pid
    name = f"cli-{uuid.uuid4().hex[:8]}"
    file = str(stack.credentials_path)
    added = cli(base_url, "credentials", "add", name, "--role", "reporter", "--feeds", "t-*", "--file", file)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("lf_") and len(token) == 46 and token not in added.stderr
    stored_text = stack.credentials_path.read_bytes().decode()
    assert token not in stored_text and token[:12] in stored_text

    published = await _until_status(anonymous, feed, token, 201)
    assert published.status_code == 201, published.text
    assert who(published.json()["item"]) == (name, name)

    listed = cli(base_url, "credentials", "list", token=None, LIVEFEED_CREDENTIALS_FILE=file)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert line.split()[:2] == [name, "reporter"] and "t-*" in line and token[:12] in line
    assert "argon2" not in listed.stdout

    removed = cli(base_url, "credentials", "remove", name, "--file", file)
    assert removed.returncode == 0, removed.stderr
    refused = await _until_status(anonymous, feed, token, 401)
    assert refused.status_code == 401, refused.text
    assert stack.procs["ingest"].pid == ingest_pid, "no restart"
    assert cli(base_url, "credentials", "remove", name, "--file", file).returncode == 5


async def test_history_and_the_cli_show_who_posted_and_who_changed(
    base_url: str, reporter: httpx.AsyncClient, editor: httpx.AsyncClient, feed: str
) -> None:
    item = await post(reporter, feed, headline="Shelling reported")
    assert (await editor.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"body": "Confirmed"})).status_code == 200
    shown = cli(base_url, "history", "--feed", feed)
    assert shown.returncode == 0, shown.stderr
    assert f"posted by {REPORTER.name}" in shown.stdout
    assert f"by {EDITOR.name})" in shown.stdout


def test_the_cli_mints_a_reader_token_and_reads_the_token_from_a_file(base_url: str, tmp_path: Path) -> None:
    feed = f"private-{uuid.uuid4().hex[:12]}"
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN + "\n")
    minted = cli(base_url, "reader-token", "--feed", feed, "--ttl", "300", token=None,
                 LIVEFEED_TOKEN_FILE=str(token_file))
    assert minted.returncode == 0, minted.stderr
    assert ReaderTokens(_key()).check(feed, minted.stdout.strip()) > time.time() + 250
    refused = cli(base_url, "reader-token", "--feed", feed, token=EDITOR.token)
    assert refused.returncode == 3 and "needs feeds:manage" in refused.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "LIVEFEED_CREDENTIALS_FILE is not set"),
        ("", "cannot read"),
        ('{"credentials": [{"name": "x", "role": "owner"}]}', "credentials.0.role"),
    ],
    ids=["unset", "missing", "broken"],
)
def test_ingest_refuses_to_start_without_a_usable_credentials_file(
    tmp_path: Path, content: str | None, says: str
) -> None:
    """Checked before Kafka is waited for: the refusal is immediate and says what to fix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    env.update({"PYTHONPATH": str(ROOT), "LIVEFEED_INGEST_PORT": "1", "LIVEFEED_INGEST_METRICS_PORT": "1",
                "LIVEFEED_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    if content is not None:
        path = tmp_path / "credentials.json"
        if content:
            path.write_text(content)
        env["LIVEFEED_CREDENTIALS_FILE"] = str(path)
    done = subprocess.run([sys.executable, "-m", "services.ingest.main"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert says in done.stdout + done.stderr
    assert "ingest cannot start" in done.stdout + done.stderr
