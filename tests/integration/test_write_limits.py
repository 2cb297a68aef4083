"""Issue 14: a credential's write limit holds across ingest processes, counted in the real Redis.

Two ingest processes of the test's own (on the session's ingest ports plus an offset, against the
session's Kafka and Redis) share one credential of their own credentials file, with a burst of
:data:`BURST` and a rate so low that no token comes back during the test. Writes alternate
between them: together they let the burst through, not the burst each.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from deploy.stack import Stack
from shared import credentials as creds

pytestmark = pytest.mark.timeout(240)

BURST = 4
RATE_PER_S = 0.02
"""One write back every 50 s: none during the test."""
PORT_OFFSETS = (50, 60)
"""The test's ingests listen on the session's ingest (and metrics) ports plus these: clear of instances 2 to 5."""


@contextlib.contextmanager
def own_ingests(stack: Stack, run_dir: Path, credentials: Path) -> Iterator[list[str]]:
    """Two ingest processes with the low limit, each a one-process stack of its own; yields their base URLs."""
    started: list[Stack] = []
    try:
        for offset in PORT_OFFSETS:
            topology = replace(stack.topology, ingest=stack.topology.ingest + offset,
                               ingest_metrics=stack.topology.ingest_metrics + offset)
            own = Stack(topology=topology, run_dir=run_dir / f"ingest-{offset}", token=None,
                        credentials_file=credentials, quiet=True,
                        extra_env={**stack.extra_env, "LIVEFEED_INGEST_WORKERS": "1",
                                   "LIVEFEED_WRITE_RATE_PER_S": str(RATE_PER_S),
                                   "LIVEFEED_WRITE_BURST": str(BURST)})
            started.append(own)
            own.start_service("ingest")
        yield [f"http://{s.topology.host}:{s.topology.ingest}" for s in started]
    finally:
        for own in started:
            own.stop()


async def test_two_ingest_processes_together_allow_one_burst_per_credential(
    stack: Stack, tmp_path: Path, feed: str,
) -> None:
    name = f"limits-{uuid.uuid4().hex[:12]}"
    token = creds.new_token()
    credentials = tmp_path / "credentials.json"
    creds.save(credentials, [creds.make(name, "admin", ["*"], token)])
    with own_ingests(stack, tmp_path, credentials) as urls:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
            answers = []
            for i in range(2 * BURST):
                url = urls[i % 2]
                answers.append(await client.post(f"{url}/v1/feeds/{feed}/items", json={"headline": f"Write {i}"}))
            statuses = [a.status_code for a in answers]
            assert statuses.count(201) == BURST, statuses
            assert statuses == [201] * BURST + [429] * BURST, statuses
            for refused in answers[BURST:]:
                body = refused.json()
                assert body["error"] == "rate_limited" and "retry in" in body["message"], body
                retry_after = int(refused.headers["Retry-After"])
                assert 1 <= retry_after <= round(1 / RATE_PER_S), refused.headers


async def test_while_redis_is_paused_each_process_counts_its_own_burst_and_writes_go_on(
    stack: Stack, tmp_path: Path, feed: str,
) -> None:
    """Publishing does not need Redis, so neither does its limit: each process falls back to its own bucket."""
    token = creds.new_token()
    credentials = tmp_path / "credentials.json"
    creds.save(credentials, [creds.make(f"limits-{uuid.uuid4().hex[:12]}", "admin", ["*"], token)])
    with own_ingests(stack, tmp_path, credentials) as urls:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
            with stack.paused("redis"):
                answers = [await client.post(f"{urls[i % 2]}/v1/feeds/{feed}/items", json={"headline": f"W{i}"})
                           for i in range(2 * BURST + 2)]
            statuses = [a.status_code for a in answers]
            assert statuses == [201] * (2 * BURST) + [429, 429], [(a.status_code, a.text[:120]) for a in answers]
