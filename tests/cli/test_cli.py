"""The ``livefeed`` command against the real stack, run as a user runs it: a separate process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.stack import Stack
from tests.conftest import TEST_TOKEN

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "clients.cli.main"]


def cli_env(base_url: str, token: str | None = TEST_TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    env.update({"LIVEFEED_URL": base_url, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"})
    if token is not None:
        env["LIVEFEED_TOKEN"] = token
    return env


def run(base_url: str, *args: str, token: str | None = TEST_TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=cli_env(base_url, token), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def run_json(base_url: str, *args: str) -> dict[str, Any]:
    done = run(base_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_post_edit_retract_and_history(base_url: str, feed: str) -> None:
    posted = run_json(base_url, "post", "--feed", feed, "--breaking", "Bridge closed after crash",
                      "--body", "Police ask drivers to avoid the area.", "--tag", "traffic", "--tag", "police",
                      "--pin", "--key-event", "--byline", "City desk", "--link", "https://police.example/x")
    item = posted["item"]
    assert (item["headline"], item["urgency"], item["tags"]) == ("Bridge closed after crash", "breaking",
                                                                 ["traffic", "police"])
    assert item["pinned"] and item["key_event"] and item["version"] == 1 and posted["cursor"]
    assert (item["byline"], item["url"]) == ("City desk", "https://police.example/x")

    edited = run_json(base_url, "edit", "--feed", feed, item["id"], "--headline", "Bridge reopened",
                      "--normal", "--unpin", "--if-match", "1", "--correction", "The bridge reopened at noon.")
    assert edited["item"]["headline"] == "Bridge reopened" and edited["item"]["version"] == 2
    assert edited["item"]["correction"]["note"] == "The bridge reopened at noon."
    assert edited["item"]["urgency"] == "normal" and edited["item"]["pinned"] is False
    assert edited["item"]["body"] == "Police ask drivers to avoid the area."

    stale = run(base_url, "edit", "--feed", feed, item["id"], "--body", "late", "--if-match", "1")
    assert stale.returncode == 6, stale.stderr
    assert "version 2" in stale.stderr

    shown = run(base_url, "history", "--feed", feed)
    assert shown.returncode == 0, shown.stderr
    assert item["id"] in shown.stdout and "Bridge reopened" in shown.stdout and "#traffic" in shown.stdout
    assert "livefeed tail --feed" in shown.stderr and "--since" in shown.stderr

    human = run(base_url, "retract", "--feed", feed, item["id"])
    assert human.returncode == 0, human.stderr
    assert "retracted" in human.stdout and item["id"] in human.stdout
    page = run_json(base_url, "history", "--feed", feed)
    assert page["items"] == []
    again = run(base_url, "retract", "--feed", feed, item["id"])
    assert again.returncode == 5 and "retracted" in again.stderr


def test_history_pages_back_and_lists_key_events(base_url: str, feed: str) -> None:
    ids = [run_json(base_url, "post", "--feed", feed, f"Item {n}", *(["--key-event"] if n == 0 else []))["item"]["id"]
           for n in range(3)]
    first = run(base_url, "history", "--feed", feed, "--limit", "2")
    assert first.returncode == 0
    assert [line.split()[2] for line in first.stdout.splitlines() if not line.startswith(" ")] == ids[:0:-1]
    before = first.stderr.split("--before ")[1].split()[0]
    rest = run_json(base_url, "history", "--feed", feed, "--limit", "2", "--before", before)
    assert [i["id"] for i in rest["items"]] == [ids[0]]
    keys = run_json(base_url, "history", "--feed", feed, "--key-events")
    assert [i["id"] for i in keys["items"]] == [ids[0]]


def test_the_same_idempotency_key_publishes_once(base_url: str, feed: str) -> None:
    first = run_json(base_url, "post", "--feed", feed, "Once only", "--idempotency-key", f"k-{feed}")
    second = run_json(base_url, "post", "--feed", feed, "Once only", "--idempotency-key", f"k-{feed}")
    assert first == second
    assert len(run_json(base_url, "history", "--feed", feed)["items"]) == 1


@pytest.mark.parametrize(
    ("args", "token", "code", "says"),
    [
        (["post", "--feed", "world", "x"], None, 3, "LIVEFEED_TOKEN"),
        (["post", "--feed", "world", "x"], "wrong-token", 3, "refused"),
        (["history", "--feed", "world", "--url", "not a url"], TEST_TOKEN, 2, "http(s) URL"),
        (["post", "--feed", "world", "x", "--tag", "Not A Tag"], TEST_TOKEN, 2, "a tag is lowercase"),
        (["edit", "--feed", "world", "0" * 26, "--headline", "x"], TEST_TOKEN, 5, "No item"),
        (["edit", "--feed", "world", "0" * 26], TEST_TOKEN, 2, "nothing to change"),
        (["post", "--feed", "Not_A_Feed", "x"], TEST_TOKEN, 2, "lowercase"),
    ],
)
def test_errors_say_what_to_do_with_distinct_exit_codes(
    base_url: str, args: list[str], token: str | None, code: int, says: str
) -> None:
    done = run(base_url, *args, token=token)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert says in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_an_unreachable_gateway_is_exit_4(base_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    done = run(base_url, "history", "--feed", "world", "--url", f"http://127.0.0.1:{closed_port}", "--retries", "1")
    assert done.returncode == 4, done.stderr
    assert "cannot reach livefeed" in done.stderr and "LIVEFEED_URL" in done.stderr


# -- tail ------------------------------------------------------------------------------------------


class Tailing:
    """A running ``livefeed tail``: its output lines, each read with a bounded wait."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.notes: list[str] = []

    async def line(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"tail ended: {await self.stderr()}"
        message: dict[str, Any] = json.loads(raw)
        return message

    async def note(self, containing: str, timeout: float = 10.0) -> str:
        assert self.process.stderr is not None
        while True:
            raw = await asyncio.wait_for(self.process.stderr.readline(), timeout)
            assert raw, f"tail ended before saying {containing!r}; it said {self.notes}"
            self.notes.append(raw.decode())
            if containing in self.notes[-1]:
                return self.notes[-1]

    async def stderr(self) -> str:
        return "".join(self.notes)


@contextlib.asynccontextmanager
async def tailing(base_url: str, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[Tailing]:
    """``livefeed tail --json args`` (with ``env``, else the newsroom's), killed on the way out."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "tail", "--json", *args, env=env or cli_env(base_url), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Tailing(process)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


async def test_tail_prints_a_post_as_it_happens_and_stops_after_count(
    api: httpx.AsyncClient, base_url: str, feed: str
) -> None:
    async with tailing(base_url, "--feed", feed, "--count", "2") as tail:
        await tail.note("following")
        posted = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Seen by tail"})).json()
        event = await tail.line(timeout=5)
        assert event["type"] == "item.published" and event["item"] == posted["item"]
        assert event["cursor"] == posted["cursor"]
        await api.patch(f"/v1/feeds/{feed}/items/{posted['item']['id']}", json={"headline": "Edited"})
        edit = await tail.line(timeout=5)
        assert edit["type"] == "item.updated" and edit["item"]["version"] == 2
        assert await asyncio.wait_for(tail.process.wait(), 10) == 0


async def test_tail_resumes_after_a_fanout_restart_without_gap_or_duplicate(
    api: httpx.AsyncClient, base_url: str, feed: str, stack: Stack
) -> None:
    async with tailing(base_url, "--feed", feed, "--count", "4") as tail:
        await tail.note("following")
        first = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "before"})).json()
        assert (await tail.line())["item"]["id"] == first["item"]["id"]
        try:
            await asyncio.to_thread(stack.stop_process, "fanout")
            await tail.note("reconnecting")
            during = [(await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"during {n}"})).json()
                      for n in range(2)]
        finally:
            if "fanout" not in stack.procs:
                await asyncio.to_thread(stack.start_service, "fanout")
        got = [await tail.line(timeout=40) for _ in during]
        assert [g["item"]["id"] for g in got] == [d["item"]["id"] for d in during]
        after = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "after"})).json()
        assert (await tail.line())["item"]["id"] == after["item"]["id"]
        assert await asyncio.wait_for(tail.process.wait(), 10) == 0


async def test_tail_reloads_the_snapshot_when_its_cursor_cannot_continue(
    api: httpx.AsyncClient, base_url: str, feed: str
) -> None:
    old = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "already there"})).json()
    async with tailing(base_url, "--feed", feed, "--since", "deadbeef.0.5", "--count", "2") as tail:
        await tail.note("cannot continue")
        snapshot = await tail.line()
        assert snapshot["type"] == "snapshot" and snapshot["item"]["id"] == old["item"]["id"]
        await tail.note("following")
        new = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "after the reset"})).json()
        event = await tail.line()
        assert event["type"] == "item.published" and event["item"]["id"] == new["item"]["id"]
        assert await asyncio.wait_for(tail.process.wait(), 10) == 0
