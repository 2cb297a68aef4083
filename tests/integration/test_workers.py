"""Issue 13: each service as several worker processes sharing its port, on the session stack.

Each test restarts one service with 2 workers (``LIVEFEED_<SERVICE>_WORKERS`` through
``stack.extra_env``) and, in ``finally``, with the session's 1 again, so the tests after it find
the stack as it was. A reader's worker is the ``Livefeed-Worker`` header of its handshake; a
worker's own figures come from its metrics port (the service's plus its index).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from deploy.stack import Stack
from tests.utils.faults import ResumingReader, crash, offset, restore, settle, until
from tests.utils.streams import next_event, open_stream

pytestmark = pytest.mark.timeout(240)

WORKERS = 2
PORTS = {"fanout": "fanout", "ingest": "ingest", "history": "history"}


def children(pid: int) -> dict[int, int]:
    """The live worker processes of parent ``pid``: worker index -> pid (from /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
            index = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"LIVEFEED_WORKER_INDEX="))
            found[int(index)] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def ready_workers(url: str, tries: int = 40) -> set[int]:
    """The worker indexes that answered ``url`` 200, over ``tries`` new connections (the kernel spreads them)."""
    seen: set[int] = set()
    for _ in range(tries):
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(url, timeout=2, headers={"Connection": "close"})
            if answer.status_code == 200:
                seen.add(int(answer.json()["worker"]))
    return seen


def wait_all_workers(stack: Stack, name: str, path: str, timeout: float = 90) -> None:
    """Until every worker of ``name`` has answered ``path`` 200 on the service's port."""
    port = getattr(stack.topology, PORTS[name])
    deadline = time.monotonic() + timeout
    while ready_workers(f"http://{stack.topology.host}:{port}{path}") != set(range(WORKERS)):
        assert time.monotonic() < deadline, f"not every {name} worker answered {path} 200 within {timeout:g}s"
        time.sleep(0.3)


@contextlib.asynccontextmanager
async def with_workers(stack: Stack, name: str, ready_path: str = "/readyz") -> AsyncIterator[int]:
    """Run ``name`` with :data:`WORKERS` workers for the body (yields the parent's pid); 1 again afterwards."""
    env = f"LIVEFEED_{name.upper()}_WORKERS"
    before = stack.extra_env.get(env)
    stack.extra_env[env] = str(WORKERS)
    try:
        await asyncio.to_thread(stack.restart_service, name)
        await asyncio.to_thread(wait_all_workers, stack, name, ready_path)
        yield stack.procs[name].pid
    finally:
        if before is None:
            stack.extra_env.pop(env, None)
        else:
            stack.extra_env[env] = before
        stack.stop_process(name)
        await restore(stack, name)


async def post(api: httpx.AsyncClient, feed: str, headline: str, **headers: str) -> dict[str, Any]:
    answer = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline}, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def open_on(ws_url: str, feed: str, origin: str, worker: int | None, *, since: str | None = None,
                  tries: int = 40) -> ClientConnection:
    """A stream of ``feed`` served by ``worker`` (any worker when None): new connections until one lands there."""
    for _ in range(tries):
        ws = await open_stream(ws_url, feed, origin, since=since)
        if worker is None or worker_of(ws) == worker:
            return ws
        await ws.close()
    raise AssertionError(f"no stream landed on worker {worker} in {tries} tries")


def worker_of(ws: ClientConnection) -> int:
    assert ws.response is not None
    return int(ws.response.headers["Livefeed-Worker"])


def readers_on(stack: Stack, worker: int) -> float:
    """The readers fanout worker ``worker`` holds now, from its own metrics port."""
    port = stack.topology.fanout_metrics + worker
    text = httpx.get(f"http://{stack.topology.host}:{port}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("livefeed_fanout_readers"))


@pytest.fixture
def api(base_url: str, auth: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers=auth, timeout=15)


async def test_readers_spread_over_two_fanout_workers_each_get_every_event_in_order(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str,
) -> None:
    genesis = await post(api, feed, "genesis")
    async with with_workers(stack, "fanout"):
        streams = [await open_stream(ws_url, feed, origin, since=genesis["cursor"]) for _ in range(24)]
        try:
            by_worker = {w: sum(worker_of(ws) == w for ws in streams) for w in range(WORKERS)}
            assert all(by_worker.values()), f"the readers did not spread over both workers: {by_worker}"
            posted = [await post(api, feed, f"item {n}") for n in range(15)]
            want = [p["item"]["id"] for p in posted]
            for ws in streams:
                got = [await next_event(ws, 10) for _ in posted]
                assert [e["item"]["id"] for e in got] == want, f"worker {worker_of(ws)} reader"
                assert [e["cursor"] for e in got] == [p["cursor"] for p in posted]
        finally:
            for ws in streams:
                await ws.close()


async def test_a_cursor_taken_on_one_worker_resumes_on_the_other_without_gap_or_repeat(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str,
) -> None:
    await post(api, feed, "genesis")
    async with with_workers(stack, "fanout"):
        first = await open_on(ws_url, feed, origin, 0)
        try:
            early = [await post(api, feed, f"early {n}") for n in range(5)]
            seen = [await next_event(first, 10) for _ in early]
            assert [e["item"]["id"] for e in seen] == [p["item"]["id"] for p in early]
        finally:
            await first.close()
        late = [await post(api, feed, f"late {n}") for n in range(5)]
        second = await open_on(ws_url, feed, origin, 1, since=seen[-1]["cursor"])
        try:
            resumed = [await next_event(second, 10) for _ in late]
            assert [e["cursor"] for e in resumed] == [p["cursor"] for p in late]
            more = await post(api, feed, "live")
            assert (await next_event(second, 10))["cursor"] == more["cursor"]
        finally:
            await second.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
async def test_a_killed_or_hung_fanout_worker_is_restarted_and_its_readers_resume_elsewhere(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, base_url: str, origin: str, sig: signal.Signals,
) -> None:
    """SIGSTOP: the parent hears no heartbeat for SILENT_S, kills the worker and starts it again."""
    genesis = await post(api, feed, "genesis")
    async with with_workers(stack, "fanout") as parent:
        readers = [ResumingReader("ws" if n % 2 else "sse", feed, genesis["cursor"]) for n in range(16)]
        tasks = [asyncio.create_task(r.run(ws_url, base_url, origin)) for r in readers]
        try:
            await until(lambda: all(r.connections for r in readers), 20, "readers connected", tasks)
            await until(lambda: readers_on(stack, 1) > 0, 10, "readers on worker 1", tasks)
            victim = children(parent)[1]
            posted = [await post(api, feed, f"before {n}") for n in range(5)]
            os.kill(victim, sig)
            killed_at = time.monotonic()
            posted += [await post(api, feed, f"during {n}") for n in range(10)]
            await until(lambda: children(parent).get(1, victim) != victim, 45, "worker 1 started again", tasks)
            await asyncio.to_thread(wait_all_workers, stack, "fanout", "/readyz")
            print(f"fanout worker 1 {sig.name}: both workers ready again {time.monotonic() - killed_at:.2f}s later")
            posted += [await post(api, feed, f"after {n}") for n in range(5)]
            for reader in readers:
                reader.until(posted[-1]["cursor"])
            await settle(readers, tasks, 45)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert stack.procs["fanout"].poll() is None, "the parent exited with its worker"
    want = [p["item"]["id"] for p in posted]
    dropped = [r for r in readers if r.connections > 1]
    assert dropped, "no reader was on the killed worker"
    for reader in readers:
        got = [item_id for _, _, item_id, _ in reader.received]
        assert got == want, f"{reader.transport} reader ({reader.connections} connections) got {len(got)} events"
        offsets = [offset(cursor) for cursor, *_ in reader.received]
        assert offsets == sorted(set(offsets))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_the_parent_ending_leaves_no_worker(stack: Stack, sig: signal.Signals) -> None:
    async with with_workers(stack, "fanout") as parent:
        workers = children(parent)
        assert sorted(workers) == list(range(WORKERS))
        if sig is signal.SIGTERM:
            took = await crash(stack, "fanout", sig)
            print(f"fanout parent SIGTERM: parent and workers exited in {took:.2f}s")
            assert took < 20
        else:
            os.kill(parent, signal.SIGKILL)
            await asyncio.to_thread(stack.procs["fanout"].wait, 10)
        started, deadline = time.monotonic(), time.monotonic() + 15
        while any(alive(pid) for pid in workers.values()):
            assert time.monotonic() < deadline, f"workers outlived their parent's {sig.name}: {workers}"
            await asyncio.sleep(0.1)
        print(f"fanout parent {sig.name}: last worker gone {time.monotonic() - started:.2f}s after the parent")


async def test_one_idempotency_key_posted_at_once_to_two_ingest_workers_makes_one_item(
    stack: Stack, feed: str, auth: dict[str, str], base_url: str,
) -> None:
    t = stack.topology
    key = f"k-{uuid.uuid4().hex}"
    async with with_workers(stack, "ingest", "/healthz"):

        async def one() -> httpx.Response:
            async with httpx.AsyncClient(base_url=f"http://{t.host}:{t.ingest}", timeout=15) as client:
                return await client.post(f"/v1/feeds/{feed}/items", json={"headline": "once"},
                                         headers={**auth, "Idempotency-Key": key})

        def posts_on(worker: int) -> float:
            text = httpx.get(f"http://{t.host}:{t.ingest_metrics + worker}/metrics", timeout=5).text
            return sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("livefeed_http_requests_total") and 'method="POST"' in line)

        answers = await asyncio.gather(*(one() for _ in range(24)))
        assert all(posts_on(w) > 0 for w in range(WORKERS)), "the posts did not reach both workers"
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 201, 409}, statuses
    ids = {a.json()["item"]["id"] for a in answers if a.status_code in (200, 201)}
    assert len(ids) == 1, f"one key made {len(ids)} items"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        listed: list[Any] = []
        deadline = time.monotonic() + 10
        while not listed and time.monotonic() < deadline:
            listed = (await client.get(f"/v1/feeds/{feed}/items")).json()["items"]
            await asyncio.sleep(0.2)
    assert [i["id"] for i in listed] == list(ids)


async def test_history_with_two_workers_consumes_once_and_every_worker_tells_its_readiness(
    stack: Stack, api: httpx.AsyncClient, feed: str,
) -> None:
    t = stack.topology
    direct = f"http://{t.host}:{t.history}"
    async with with_workers(stack, "history", "/healthz") as parent:
        deadline = time.monotonic() + 60
        while True:
            answers = [await asyncio.to_thread(httpx.get, f"{direct}/readyz", timeout=2,
                                               headers={"Connection": "close"}) for _ in range(20)]
            if all(a.status_code == 200 for a in answers):
                break
            assert time.monotonic() < deadline, [a.text for a in answers if a.status_code != 200][:1]
            await asyncio.sleep(0.3)
        posted = [await post(api, feed, f"item {n}") for n in range(20)]
        want = [p["item"]["id"] for p in reversed(posted)]

        async def listing() -> list[str]:
            async with httpx.AsyncClient(base_url=direct, timeout=5) as client:
                return [i["id"] for i in (await client.get(f"/v1/feeds/{feed}/items?limit=50")).json()["items"]]

        deadline = time.monotonic() + 20
        while await listing() != want:
            assert time.monotonic() < deadline, "history did not list the posts once each, in order"
            await asyncio.sleep(0.2)
        listings = [await listing() for _ in range(20)]
        assert all(ids == want for ids in listings), "a worker lists the feed otherwise"
        workers = children(parent)
        os.kill(workers[0], signal.SIGSTOP)
        try:
            stale_by = time.monotonic() + 10
            not_ready: set[int] = set()
            while not not_ready and time.monotonic() < stale_by:
                with contextlib.suppress(httpx.HTTPError):
                    answer = await asyncio.to_thread(httpx.get, f"{direct}/readyz", timeout=1,
                                                     headers={"Connection": "close"})
                    if answer.status_code == 503:
                        not_ready.add(1)
                await asyncio.sleep(0.2)
            assert not_ready, "worker 1 still said ready with the consuming worker stopped"
        finally:
            with contextlib.suppress(ProcessLookupError):  # the parent kills a worker silent for SILENT_S
                os.kill(workers[0], signal.SIGCONT)



@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=stack.topology.host, port=stack.topology.redis)
    yield client
    await client.aclose()


async def test_no_history_worker_serves_a_partial_list_while_worker_0_rebuilds(
    stack: Stack, api: httpx.AsyncClient, redis: aioredis.Redis, feed: str,
) -> None:
    """Redis emptied: worker 0 rebuilds from Kafka, and every worker answers 503 or the whole list, never part."""
    t = stack.topology
    direct = f"http://{t.host}:{t.history}"
    async with with_workers(stack, "history", "/healthz"):
        posted: list[dict[str, Any]] = []
        for batch in range(10):  # enough that the rebuild refills the feed over many batches
            posted += await asyncio.gather(*(post(api, feed, f"item {batch}.{n}") for n in range(40)))
        want = [p["item"]["id"] for p in sorted(posted, key=lambda p: offset(p["cursor"]), reverse=True)][:200]

        async def listing() -> tuple[int, list[str]]:
            async with httpx.AsyncClient(base_url=direct, timeout=5, headers={"Connection": "close"}) as client:
                answer = await client.get(f"/v1/feeds/{feed}/items", params={"limit": 200})
            return answer.status_code, [i["id"] for i in answer.json()["items"]] if answer.status_code == 200 else []

        deadline = time.monotonic() + 60
        while await listing() != (200, want):
            assert time.monotonic() < deadline, "history did not list the posts"
            await asyncio.sleep(0.2)
        await redis.flushdb()
        seen: list[tuple[int, int]] = []
        deadline = time.monotonic() + 60
        while not seen or seen[-1] != (200, len(want)) or len(seen) < 20:
            assert time.monotonic() < deadline, f"history was not whole again within 60 s: {seen[-5:]}"
            status, ids = await listing()
            seen.append((status, len(ids)))
            assert status == 503 or ids == want, f"a partial list ({len(ids)} of {len(want)} items) was served"
        assert any(status == 503 for status, _ in seen), "the rebuild was never seen"
