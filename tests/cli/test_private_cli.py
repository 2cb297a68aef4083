"""``livefeed history`` and ``livefeed tail`` on a private feed, run as separate processes against the
real stack: the reader token from ``--reader-token``, ``LIVEFEED_READER_TOKEN`` or
``LIVEFEED_READER_TOKEN_FILE``, and what ``tail`` does when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from shared.reader_tokens import ReaderTokens
from tests.cli.test_cli import CLI, ROOT, Tailing, cli_env
from tests.cli.test_cli import tailing as newsroom_tailing
from tests.conftest import READER_TOKEN_KEY

pytestmark = pytest.mark.stack

TOKENS = ReaderTokens(SecretStr(READER_TOKEN_KEY))


@pytest.fixture
def private_feed() -> str:
    return f"private-{uuid.uuid4().hex[:12]}"


def reader_env(base_url: str, **extra: str) -> dict[str, str]:
    env = cli_env(base_url, token=None)
    env.update(extra)
    return env


def history(base_url: str, feed: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "history", "--feed", feed, *args], env=reader_env(base_url, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_history_of_a_private_feed_needs_its_reader_token(
    api: httpx.AsyncClient, base_url: str, private_feed: str, tmp_path: Path
) -> None:
    posted = await api.post(f"/v1/feeds/{private_feed}/items", json={"headline": "Wire copy for history"})
    assert posted.status_code == 201, posted.text
    refused = history(base_url, private_feed)
    assert refused.returncode == 3, refused.stderr
    assert "reader_token" not in refused.stdout and "LIVEFEED_READER_TOKEN" in refused.stderr
    wrong = history(base_url, private_feed, LIVEFEED_READER_TOKEN=TOKENS.mint("private-other", 60)[0])
    assert wrong.returncode == 3 and "does not grant" in wrong.stderr, wrong.stderr

    token = TOKENS.mint(private_feed, 600)[0]
    token_file = tmp_path / "reader-token"
    token_file.write_text(token + "\n")
    for done in (history(base_url, private_feed, "--reader-token", token),
                 history(base_url, private_feed, LIVEFEED_READER_TOKEN=token),
                 history(base_url, private_feed, LIVEFEED_READER_TOKEN_FILE=str(token_file))):
        assert done.returncode == 0, done.stderr
        assert "Wire copy for history" in done.stdout


def tailing(base_url: str, *args: str, **env: str) -> contextlib.AbstractAsyncContextManager[Tailing]:
    """``livefeed tail`` as a reader: no newsroom token, ``env`` added (the reader token's variables)."""
    return newsroom_tailing(base_url, *args, env=reader_env(base_url, **env))


async def test_tail_resumes_with_a_renewed_token_file_and_stops_on_an_expired_token(
    api: httpx.AsyncClient, base_url: str, private_feed: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "reader-token"
    # Each token must outlive the CLI's start (seconds on a loaded machine) and then expire.
    token_file.write_text(TOKENS.mint(private_feed, 15, now=time.time())[0])
    async with tailing(base_url, "--feed", private_feed, "--count", "2",
                       LIVEFEED_READER_TOKEN_FILE=str(token_file)) as tail:
        await tail.note("following")
        first = (await api.post(f"/v1/feeds/{private_feed}/items", json={"headline": "Before expiry"})).json()
        assert (await tail.line())["item"]["id"] == first["item"]["id"]
        token_file.write_text(TOKENS.mint(private_feed, 600)[0])
        await tail.note("renewed", timeout=30)
        second = (await api.post(f"/v1/feeds/{private_feed}/items", json={"headline": "After renewal"})).json()
        assert (await tail.line())["item"]["id"] == second["item"]["id"]
        assert await asyncio.wait_for(tail.process.wait(), 10) == 0

    async with tailing(base_url, "--feed", private_feed,
                       LIVEFEED_READER_TOKEN=TOKENS.mint(private_feed, 15, now=time.time())[0]) as tail:
        await tail.note("following")
        assert await asyncio.wait_for(tail.process.wait(), 30) == 3
        assert tail.process.stderr is not None
        said = (await tail.stderr()) + (await tail.process.stderr.read()).decode()
        assert "reader token expired" in said and "--since" in said
