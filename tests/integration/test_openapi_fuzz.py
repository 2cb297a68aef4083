"""schemathesis against both OpenAPI documents, through the gateway, as a newsroom tool would call them.

No 5xx; every status documented; every body, content type and documented header as the document
says (so every 4xx is our error shape); and no operation whose valid inputs the server mostly
refuses (the document would admit what the server does not). Each service is reached under its
gateway prefix (``/api/ingest/``, ``/api/history/``), where every route of its document lives.

Four runs: ingest as the admin and as a reporter (its 403s), history on a public feed and, with a
reader token, on a private one. Each is bounded (a fixed number of cases per operation,
derandomized, a timeout on the process) and uses one feed of the test's own for every ``{feed}``,
so fuzzing cannot use up the stack's feed cap (``LIVEFEED_MAX_FEEDS``) or touch another test's
feeds. Half the ``{item_id}`` values are items it published first, so edits, pins, retractions
and reads of real items are fuzzed too. Each run's size is printed (``-s``); its reports (JUnit,
HAR) stay in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.stack import ROOT, Stack
from tests.conftest import REPORTER, TEST_TOKEN, bearer

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])
MAX_EXAMPLES = 10
"""Cases per operation in the fuzzing phase (the coverage phase sends its own set): about 750 cases
in all, under a minute on a loaded 2-core machine."""
RUN_TIMEOUT_S = 120
WORKERS = 1
"""One thread: on Python 3.11 two threads parsing source at once can raise a spurious SystemError
("AST constructor recursion depth mismatch", CPython gh-106905), which hypothesis does when it
describes a filter; schemathesis would report it as a runtime error of the run."""
SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"
STRICT = ["validation_mismatch", "missing_auth", "unsupported_regex", "rate_limited", "method_not_allowed"]
"""Warnings that fail a run: the document admits input the server refuses, every answer was a 401/403,
a pattern schemathesis cannot generate from, a 429 (the limits are raised for the test stack)."""
HOOKS = Path(__file__).resolve().parent / "fuzz_hooks.py"


def _config(feed: str, item_ids: list[str], fail_on: list[str]) -> str:
    """The run's config. The retract route picks from its own items (the last two seeded): had it
    retracted the ones the other routes use, their every later case would be a 410, which
    schemathesis counts as a schema that admits what the server refuses."""
    values = ", ".join(f'"{i}"' for i in item_ids[:-2])
    doomed = ", ".join(f'"{i}"' for i in item_ids[-2:])
    warnings = ", ".join(f'"{w}"' for w in fail_on)
    return f"""
hooks = "{HOOKS}"

[generation]
deterministic = true
database = "none"

[warnings]
fail-on = [{warnings}]

[parameters]
"path.feed" = "{feed}"
"path.item_id" = {{ dictionary = "items", probability = 0.5 }}

[dictionaries.items]
values = [{values}]

[dictionaries.doomed]
values = [{doomed}]

[[operations]]
include-path = "/v1/feeds/{{feed}}/items/{{item_id}}"
include-method = "DELETE"
parameters = {{ "path.feed" = "{feed}", "path.item_id" = {{ dictionary = "doomed", probability = 0.5 }} }}
"""


async def _seed(client: httpx.AsyncClient, feed: str, reader: dict[str, str]) -> list[str]:
    """Four items in ``feed`` (one a pinned key event; the last two for the retract route),
    visible in history before a run starts."""
    ids = []
    for extra in ({}, {"pinned": True, "key_event": True}, {}, {}):
        answer = await client.post(f"/v1/feeds/{feed}/items", json={"headline": "fuzz seed", **extra})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["item"]["id"])
    for _ in range(100):
        listed = await client.get(f"/v1/feeds/{feed}/items", headers=reader)
        if listed.status_code == 200 and len(listed.json()["items"]) == len(ids):
            return ids
        await asyncio.sleep(0.1)
    raise AssertionError(f"history did not show the seeded items: {listed.text}")


async def _feeds(base_url: str) -> set[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        fresh = {"Cache-Control": "no-cache"}  # past the gateway's micro-cache: the list as it is now
        return {f["feed"] for f in (await client.get("/v1/feeds", headers=fresh)).json()["feeds"]}


@dataclass(frozen=True)
class Run:
    """One schemathesis run: a service's document, the one feed its cases use, the token they send."""

    name: str
    service: str
    feed: str
    token: str
    items: list[str]
    fail_on: list[str] = field(default_factory=lambda: list(STRICT))
    phases: str = "examples,coverage,fuzzing"


def _fuzz(base_url: str, run: Run, folder: Path) -> tuple[int, str]:
    folder.mkdir()
    config = folder / "schemathesis.toml"
    config.write_text(_config(run.feed, run.items, run.fail_on))
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run",
        f"{base_url}/api/{run.service}/openapi.json", "--url", f"{base_url}/api/{run.service}",
        "--header", f"Authorization: Bearer {run.token}",
        "--checks", CHECKS, "--phases", run.phases,
        "--max-examples", str(MAX_EXAMPLES), "--seed", "11", "--generation-deterministic",
        "--workers", str(WORKERS), "--request-timeout", "10", "--output-sanitize", "true",
        "--report", "junit,har", "--report-dir", str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=folder)
    output = result.stdout + result.stderr
    (folder / "output.txt").write_text(output)
    return result.returncode, output


@pytest.mark.timeout(4 * RUN_TIMEOUT_S)
async def test_both_documents_hold_under_fuzzing(stack: Stack, tmp_path: Path) -> None:
    base_url = stack.topology.base_url
    writes, reads, private = (f"{kind}-{uuid.uuid4().hex[:12]}" for kind in ("t-fzw", "t-fzr", "private-fz"))
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(TEST_TOKEN), timeout=15) as client:
        minted = await client.post(f"/v1/feeds/{private}/reader-tokens", json={"ttl_s": 3600})
        assert minted.status_code == 201, minted.text
        reader = minted.json()["token"]
        written = await _seed(client, writes, {})
        read = await _seed(client, reads, {})
        private_items = await _seed(client, private, bearer(reader))
    feeds_before = await _feeds(base_url)
    runs = [
        Run("ingest as admin", "ingest", writes, TEST_TOKEN, written),
        Run("ingest as a reporter (403s)", "ingest", writes, REPORTER.token, written, fail_on=["unsupported_regex"],
            phases="fuzzing"),
        Run("history, public feed", "history", reads, TEST_TOKEN, read),
        Run("history, private feed", "history", private, reader, private_items, phases="fuzzing"),
    ]
    summaries = []
    for number, run in enumerate(runs):
        started = time.monotonic()
        code, output = _fuzz(base_url, run, tmp_path / str(number))
        took = time.monotonic() - started
        operations, cases = re.search(r"Tested: (\d+)", output), re.search(r"(\d+) generated", output)
        size = f"{operations and operations[1]} operations, {cases and cases[1]} cases"
        summaries.append(f"{run.name}: {size}, {took:.0f} s")
        assert code == 0, f"{run.name}:\n{output[-12000:]}"
    print("\n".join([*summaries, f"reports: {tmp_path}"]))
    assert await _feeds(base_url) - feeds_before == set(), "fuzzing wrote to a feed other than its own"


@pytest.mark.parametrize("service", ["ingest", "history"])
async def test_docs_load_through_the_gateway_with_no_cdn(stack: Stack, service: str) -> None:
    """The Swagger page and every file it loads come from the gateway, under the service's prefix."""
    async with httpx.AsyncClient(base_url=f"{stack.topology.base_url}/api/{service}/", timeout=15) as client:
        page = await client.get("docs")
        assert page.status_code == 200
        assert not re.search(r"https?://", page.text)
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sorted(assets) == ["docs/favicon.png", "docs/swagger-ui-bundle.js", "docs/swagger-ui.css"]
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
        document = (await client.get("openapi.json")).json()
        assert "bearerAuth" in document["components"]["securitySchemes"]
