"""Fixtures shared by the suite.

``stack`` starts the real servers (Kafka, Redis, nginx) and the three services once per test
session, on the default ports plus 10000 (``LIVEFEED_TEST_PORT_SHIFT``) so a developer's running
stack is not disturbed, and stops every process it started at the end. Tests in the folders of
``STACK_FOLDERS`` are marked ``stack``; ``tests/unit`` needs no server. Tests isolate
themselves by feed: each takes a fresh ``feed`` slug.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import DEMO_NAME, NamedToken, Stack, Topology

TEST_TOKEN = "test-newsroom-token"
"""The stack's admin credential, named "demo" (as deploy/stack.py names its token's credential)."""
ADMIN_NAME = DEMO_NAME
REPORTER = NamedToken("test-reporter", "reporter", "test-reporter-token-5f1c2a9d", ("t-*",))
"""A reporter limited to the feeds of the ``feed`` fixture (``t-…``): ``o-…`` feeds are outside its list."""
EDITOR = NamedToken("test-editor", "editor", "test-editor-token-8b3e7c01")
TEST_CREDENTIALS = (REPORTER, EDITOR)
PRIVATE_FEEDS = "private-*"
"""Feeds the test stack treats as private: a test takes ``private-<uuid>`` to get one."""
READER_TOKEN_KEY = "test-reader-token-key-0123456789abcdef"
EMBED_HOST_PORT_OFFSET = 7
"""The embed tests' host page listens on the gateway's port plus this: a fixed port, so it can be configured."""
TESTS = Path(__file__).resolve().parent
STACK_FOLDERS = frozenset({"integration", "browser", "cli", "deploy"})
"""Test folders that run against real servers: every test in them is marked ``stack``."""


LAST_FOLDERS = frozenset({"compose"})
"""Run after everything else: tests/compose waits for the images deploy/test.sh builds meanwhile."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark stack tests by their folder, keep tests/unit free of servers, and put LAST_FOLDERS last."""
    items.sort(key=lambda item: item.path.relative_to(TESTS).parts[0] in LAST_FOLDERS)
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in STACK_FOLDERS:
            item.add_marker(pytest.mark.stack)
        elif folder == "unit" and "stack" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} uses the stack: move it out of tests/unit")


def embed_host_origin(topology: Topology) -> str:
    """The publisher origin of the embed tests (tests/browser/test_embed.py serves a host page there)."""
    return f"http://{topology.host}:{topology.gateway + EMBED_HOST_PORT_OFFSET}"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="livefeed-test-"))
    topology = Topology.shifted(int(os.environ.get("LIVEFEED_TEST_PORT_SHIFT", "10000")))
    stack = Stack(
        topology=topology,
        run_dir=run_dir,
        token=TEST_TOKEN,
        credentials=TEST_CREDENTIALS,
        quiet=True,
        extra_env={
            "LIVEFEED_HEARTBEAT_S": "5",
            # One process per service, as each test expects (tests/integration/test_workers.py sets more).
            "LIVEFEED_FANOUT_WORKERS": "1",
            "LIVEFEED_INGEST_WORKERS": "1",
            "LIVEFEED_HISTORY_WORKERS": "1",
            "LIVEFEED_FANOUT_BUFFER": "300",
            "LIVEFEED_FANOUT_QUEUE_LIMIT": "262144",
            "LIVEFEED_WRITE_RATE_PER_S": "5000",
            "LIVEFEED_WRITE_BURST": "5000",
            "LIVEFEED_GATEWAY_WRITE_RATE_PER_S": "5000",
            "LIVEFEED_GATEWAY_WRITE_BURST": "5000",
            "LIVEFEED_PRIVATE_FEEDS": PRIVATE_FEEDS,
            "LIVEFEED_READER_TOKEN_KEY": READER_TOKEN_KEY,
            "LIVEFEED_EMBED_ORIGINS": embed_host_origin(topology),
        },
    )
    try:
        stack.start()
        yield stack
    except BaseException:
        _dump_logs(run_dir)
        raise
    finally:
        stack.stop()
        if os.environ.get("LIVEFEED_KEEP_TEST_RUN") is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def _dump_logs(run_dir: Path) -> None:
    for log in sorted((run_dir / "logs").glob("*.log")):
        print(f"==== {log.name} (last 40 lines)")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return stack.topology.base_url


@pytest.fixture(scope="session")
def ws_url(stack: Stack) -> str:
    return f"ws://{stack.topology.host}:{stack.topology.gateway}"


@pytest.fixture(scope="session")
def origin(stack: Stack) -> str:
    return stack.topology.base_url


@pytest.fixture
def feed() -> str:
    """A feed no other test writes to."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def reporter_auth() -> dict[str, str]:
    return bearer(REPORTER.token)


@pytest.fixture
def editor_auth() -> dict[str, str]:
    return bearer(EDITOR.token)


@pytest.fixture
async def api(base_url: str, auth: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the gateway that sends the newsroom token."""
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=15) as client:
        yield client
