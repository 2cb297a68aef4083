"""Issue 9: faults injected into the real stack, and what readers and writers end up with.

A paused Kafka broker (SIGSTOP: its sockets stay open, nothing answers) must turn a post into a
prompt 503 the newsroom can retry, and the retry must make one item, not two, even when the
first attempt was stored after all. Each service killed (SIGKILL) or stopped (SIGTERM) in the
middle of traffic, then started again, must leave every acknowledged item in history once and
every resuming reader with exactly Kafka's items, each version once, in order.

The test stack is not supervised: each test starts again what it stopped, in ``finally``, so
the tests after it find the whole stack healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from deploy.stack import Stack
from tests.utils.faults import (
    KeyedWriter,
    ResumingReader,
    crash,
    exited,
    history_committed,
    last_words,
    offset,
    read_back,
    restore,
    settle,
    until,
    wait_ready,
)
from tests.utils.kafka import Record

PAUSED_503_S = 10.0
"""A post to a paused Kafka must be answered within this (LIVEFEED_KAFKA_TIMEOUT_S is 5 s; it was 15 s)."""
LONG_PAUSE_S = 15.0
"""Longer than a consumer group's session (aiokafka's default: 10 s), so the broker drops history from
its group: a broker's or history's own long stall. Posts made meanwhile are there to be committed
as soon as both run again, which is when history finds out it must rejoin."""
HOLD_S = 2.0
"""How long ingest's posts wait on a paused Kafka before ingest is killed: time for them to reach its producer."""
WRITER_STATUSES = {201, 409, 502, 503}
"""What a keyed post may meet while a service is down: acknowledged, key busy (its first attempt
was cut off with ingest), the gateway without ingest, a dependency away. Never a 500."""


async def restore_exited(stack: Stack) -> None:
    """Start again every process that is gone, so the tests after this one find the whole stack."""
    for name in exited(stack):
        print(f"restarting {name}, which exited: {last_words(stack, name)}")
        await restore(stack, name)


async def check_running(stack: Stack, cursor: str, after: str) -> None:
    """Every process still runs and history's consumer has applied (committed) up to ``cursor``."""
    committed = await history_committed(stack, cursor, 30)
    dead = exited(stack)
    assert not dead, f"{dead} exited {after}: " + " | ".join(last_words(stack, name) for name in dead)
    assert committed is not None, f"history's consumer did not commit past {cursor} within 30s {after}"
    print(f"{after}: history committed the last post {committed:.2f}s after it was acknowledged")


async def stop_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them (bounded), so every client they hold is closed."""
    for task in tasks:
        task.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def history_ids(api: httpx.AsyncClient, feed: str) -> list[str]:
    """Every item id history lists for ``feed``, newest first, all pages."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": 200}
    while True:
        page = await api.get(f"/v1/feeds/{feed}/items", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [item["id"] for item in body["items"]]
        if not body["items"] or not body.get("next_before"):
            return ids
        params["before"] = body["next_before"]


async def history_settles_on(api: httpx.AsyncClient, feed: str, expected: set[str], timeout: float) -> list[str]:
    """History's ids once they are ``expected`` (or whatever it lists after ``timeout``, for the assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        ids = await history_ids(api, feed)
        if set(ids) == expected or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.2)


def final_states(records: list[Record]) -> dict[str, tuple[int, str]]:
    """Each item's last (version, event type), from records in Kafka order."""
    final: dict[str, tuple[int, str]] = {}
    for _, kind, item_id, version in records:
        if item_id not in final or version > final[item_id][0]:
            final[item_id] = (version, kind)
    return final


def first_records(records: list[Record]) -> list[str]:
    """Item ids in the order of their first record: what a reader of publishes must see."""
    return list(dict.fromkeys(item_id for _, _, item_id, _ in records))


def check_reader(reader: ResumingReader, in_kafka: list[Record]) -> None:
    """The reader saw Kafka's records only, each (id, version) once, in order, ending at each item's final state."""
    who = f"{reader.transport} reader ({reader.connections} connections, drops {dict(reader.drops)})"
    got = reader.received
    assert set(got) <= set(in_kafka), f"{who} got events Kafka does not hold: {set(got) - set(in_kafka)}"
    offsets = [offset(record[0]) for record in got]
    assert offsets == sorted(set(offsets)), f"{who}: cursors not strictly increasing: {offsets}"
    versions = Counter((item_id, version) for _, _, item_id, version in got)
    repeated = {pair: n for pair, n in versions.items() if n > 1}
    assert not repeated, f"{who} got an item version more than once: {repeated}"
    assert final_states(got) == final_states(in_kafka), f"{who} does not end at Kafka's state"


async def test_a_paused_kafka_is_a_prompt_503_and_a_retried_key_makes_one_item(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, base_url: str, origin: str
) -> None:
    reader = ResumingReader("ws", feed, None)
    reader_task = asyncio.create_task(reader.run(ws_url, base_url, origin), name="ws reader")
    writer = KeyedWriter(api, feed, give_up_s=60)
    refused: list[tuple[str, dict[str, Any], httpx.Response, float]] = []

    async def refused_post(n: int) -> None:
        key, body = uuid.uuid4().hex, {"headline": f"during {n}"}
        started = time.monotonic()
        answer = await api.post(f"/v1/feeds/{feed}/items", json=body, headers={"Idempotency-Key": key}, timeout=60)
        refused.append((key, body, answer, time.monotonic() - started))

    try:
        await until(lambda: reader.connections > 0, 15, "hello on the stream", [reader_task])
        before = await writer.post({"headline": "before"})
        with stack.paused("kafka"):
            await asyncio.gather(*(refused_post(n) for n in range(3)))
        resumed = time.monotonic()
        for _, _, answer, took in refused:
            print(f"paused kafka: POST answered {answer.status_code} in {took:.2f}s: {answer.text[:100]}")
        for _, _, answer, took in refused:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"].isdigit()
            error = answer.json()
            assert error["error"] in ("kafka_unavailable", "kafka_unacknowledged"), error
            assert error["message"]
            assert took < PAUSED_503_S, f"a post to a paused Kafka took {took:.1f}s to be refused"

        await writer.post({"headline": "first after"})
        print(f"paused kafka: a post succeeded {time.monotonic() - resumed:.2f}s after SIGCONT")
        retried = [await writer.post(body, key) for key, body, _, _ in refused]
        again = [await writer.post(body, key) for key, body, _, _ in refused]
        assert [a["item"]["id"] for a in again] == [r["item"]["id"] for r in retried], "a replay named another item"
        after = await writer.post({"headline": "after"})
        reader.until(after["cursor"])
        await settle([reader], [reader_task], 30)
        await check_running(stack, after["cursor"], "after a short Kafka pause")
    finally:
        await stop_all([reader_task])
        await restore_exited(stack)

    acked = {a["item"]["id"] for a in writer.acked}
    assert len(acked) == 3 + len(retried), "each retried key must name one item"
    in_kafka = await read_back(stack, feed, before["cursor"].split(".")[0])
    per_id = Counter(item_id for _, _, item_id, _ in in_kafka)
    print(f"paused kafka: records per retried item in Kafka: {[per_id[r['item']['id']] for r in retried]}")
    assert set(per_id) == acked, "Kafka holds an item no answer named"
    listed = await history_settles_on(api, feed, acked, 20)
    assert sorted(listed) == sorted(acked), f"history lists {Counter(listed)}, acknowledged {acked}"
    check_reader(reader, in_kafka)
    seen = [item_id for _, _, item_id, _ in reader.received]
    assert seen == first_records(in_kafka), "the reader did not get each item once, in Kafka's order"
    assert seen[0] == before["item"]["id"] and seen[-1] == after["item"]["id"], seen


async def test_a_kafka_pause_longer_than_a_group_session_leaves_every_service_running(
    stack: Stack, api: httpx.AsyncClient, feed: str, base_url: str
) -> None:
    writer = KeyedWriter(api, feed, give_up_s=60)
    key, body = uuid.uuid4().hex, {"headline": "during"}
    try:
        await writer.post({"headline": "before"})
        with stack.paused("kafka"):
            paused_at = time.monotonic()
            refused = await api.post(f"/v1/feeds/{feed}/items", json=body, headers={"Idempotency-Key": key}, timeout=60)
            assert refused.status_code == 503, refused.text
            await asyncio.sleep(LONG_PAUSE_S - (time.monotonic() - paused_at))
        resumed = time.monotonic()
        retried = await writer.post(body, key)
        print(f"long kafka pause: the retried post succeeded {time.monotonic() - resumed:.2f}s after SIGCONT")
        await check_running(stack, retried["cursor"], f"after Kafka was paused {LONG_PAUSE_S:g}s")
        print(f"long kafka pause: readyz 200 after {await wait_ready(base_url, 30):.2f}s more")
    finally:
        await restore_exited(stack)


async def test_history_paused_longer_than_its_group_session_carries_on(
    stack: Stack, api: httpx.AsyncClient, feed: str, base_url: str
) -> None:
    writer = KeyedWriter(api, feed, give_up_s=60)
    try:
        await writer.post({"headline": "before"})
        with stack.paused("history"):
            paused_at = time.monotonic()
            while time.monotonic() - paused_at < LONG_PAUSE_S:
                await writer.post({"headline": "during"})
                await asyncio.sleep(0.5)
        last = await writer.post({"headline": "after"})
        await check_running(stack, last["cursor"], f"after history was paused {LONG_PAUSE_S:g}s")
        print(f"history paused: readyz 200 after {await wait_ready(base_url, 30):.2f}s more")
    finally:
        await restore_exited(stack)


async def ride_through(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, base_url: str, origin: str,
    name: str, sig: signal.Signals, posts_each_side: int, *, hold_kafka: bool = False,
) -> None:
    """Kill or stop ``name`` under traffic, start it again, and check what readers, history and Kafka hold.

    ``hold_kafka`` pauses Kafka around the fault, so the posts in flight are with Kafka when
    ``name`` ends: Kafka stores them after it resumes, but no one was answered.
    """
    writer = KeyedWriter(api, feed, give_up_s=60)
    genesis = await writer.post({"headline": "genesis"})
    readers = [ResumingReader("ws" if n % 2 else "sse", feed, genesis["cursor"]) for n in range(8)]
    reader_tasks = [asyncio.create_task(r.run(ws_url, base_url, origin), name=f"{r.transport} reader {n}")
                    for n, r in enumerate(readers)]
    stop = asyncio.Event()
    writer_tasks = [asyncio.create_task(writer.run(stop, f"w{n}", 0.05), name=f"writer {n}") for n in range(2)]
    everything = [*reader_tasks, *writer_tasks]
    try:
        await until(lambda: len(writer.acked) >= posts_each_side and writer.in_flight > 0, 30,
                    "posts before the fault", everything)
        if hold_kafka:
            with stack.paused("kafka"):
                await until(lambda: writer.in_flight == len(writer_tasks), 5, "posts waiting for Kafka", everything)
                await asyncio.sleep(HOLD_S)
                down_s = await crash(stack, name, sig)
        else:
            down_s = await crash(stack, name, sig)
        acked_at_fault = len(writer.acked)
        started = time.monotonic()
        await asyncio.to_thread(stack.start_service, name)
        back_s = time.monotonic() - started
        print(f"{name} {sig.name}: exited in {down_s:.2f}s, answered /healthz {back_s:.2f}s after restart")
        if name == "history":
            ready_s = await wait_ready(base_url, 90)
            print(f"history {sig.name}: /api/history/readyz 200 {back_s + ready_s:.2f}s after restart")
        await until(lambda: len(writer.acked) >= acked_at_fault + posts_each_side, 90, "posts after the restart",
                    everything)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writer_tasks), 70)
        last = await writer.post({"headline": "last"})
        for reader in readers:
            reader.until(last["cursor"])
        await settle(readers, reader_tasks, 45)
        await check_running(stack, last["cursor"], f"after {sig.name} of {name}")
    finally:
        stop.set()
        await stop_all(everything)
        await restore(stack, name)
        await restore_exited(stack)

    print(f"{name} {sig.name}: writer answers {dict(writer.answers)}, no answer {dict(writer.no_answer)}, "
          f"slowest {writer.slowest_s:.2f}s; {len(writer.acked)} acknowledged; reader drops "
          f"{[dict(r.drops) for r in readers]}")
    assert set(writer.answers) <= WRITER_STATUSES, f"unexpected answers to posts: {dict(writer.answers)}"
    refused_opens = [d for r in readers for d in r.drops if d.endswith(" 500")]
    assert not refused_opens, f"a stream open was answered 500: {refused_opens}"
    acked = [a["item"]["id"] for a in writer.acked]
    assert len(acked) == len(set(acked)), "two keyed posts were answered with one item"
    in_kafka = await read_back(stack, feed, genesis["cursor"].split(".")[0])
    assert {item_id for _, _, item_id, _ in in_kafka} == set(acked), "Kafka holds an item no answer named"
    repeats = len(in_kafka) - len(acked)
    print(f"{name} {sig.name}: {repeats} keyed publish(es) reached Kafka twice")
    assert repeats > 0 or not hold_kafka, "no write was cut off between Kafka and its answer: nothing was tested"
    listed = await history_settles_on(api, feed, set(acked), 20)
    assert len(listed) == len(set(listed)), f"history lists an item twice: {Counter(listed).most_common(3)}"
    assert set(listed) == set(acked), (
        f"history misses {set(acked) - set(listed)} and has extra {set(listed) - set(acked)}")
    after_genesis = [r for r in in_kafka if offset(r[0]) > offset(genesis["cursor"])]
    for reader in readers:
        assert reader.connections > 1 or name != "fanout", "a reader was never cut off by the fanout's end"
        check_reader(reader, after_genesis)
        assert [r[2] for r in reader.received] == first_records(after_genesis)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", ["ingest", "history", "fanout"])
async def test_kill_9_of_a_service_mid_traffic_loses_and_repeats_nothing(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, base_url: str, origin: str, name: str
) -> None:
    await ride_through(stack, api, feed, ws_url, base_url, origin, name, signal.SIGKILL, 10,
                       hold_kafka=name == "ingest")


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", ["ingest", "history", "fanout"])
async def test_sigterm_of_a_service_mid_traffic_loses_and_repeats_nothing(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, base_url: str, origin: str, name: str
) -> None:
    await ride_through(stack, api, feed, ws_url, base_url, origin, name, signal.SIGTERM, 5)
