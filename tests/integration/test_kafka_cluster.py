"""Issue 14: a 3-broker Kafka cluster loses a broker while newsroom tools post and readers listen.

The module starts a stack of its own, ``deploy/stack.py up --kafka-brokers 3`` as a fixture (the
topic and the internal ones at replication factor 3, ``min.insync.replicas`` 2), on the session's
ports plus :data:`OWN_SHIFT`, so the session stack keeps its single broker. It kill -9s the
broker that leads the feed's partition and coordinates history's consumer group while several
writers post with Idempotency-Keys (retrying 503s and timeouts with the same key) and readers
listen over WebSocket and SSE; then every acknowledged item must be in Kafka, in history and at
every reader exactly once, in Kafka's order. A feed whose partition's leader survives must never
be refused meanwhile. The broker is then started again and must rejoin every partition's ISR.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from deploy.stack import Stack
from shared.kafka import ensure_topic, feed_partitioner
from shared.settings import CommonSettings
from tests.conftest import TEST_TOKEN, bearer
from tests.integration.test_kills import check_reader, first_records, history_settles_on, stop_all
from tests.utils.faults import KeyedWriter, ResumingReader, crash, read_back, settle, until, wait_ready
from tests.utils.stacks import own_stack

pytestmark = pytest.mark.timeout(200)

OWN_SHIFT = 3000
"""This module's stack listens on the session stack's ports plus this."""
TOPIC = "livefeed.events"
OFFSETS_TOPIC = "__consumer_offsets"
HISTORY_GROUP = "livefeed-history"
WRITERS = 3
PACE_S = 0.05
READERS = ("ws", "ws", "sse", "sse")
BEFORE_KILL_S = 2.0
ACKS_AFTER_RECOVERY = 20
"""Writes acknowledged after the first post-kill acknowledgement before the writers stop."""
RECOVERY_S = 45.0
"""Bound on the outage: Kafka fences a dead broker after its 9 s session timeout, then elects new leaders."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    """A whole stack on three Kafka brokers, one process per service, on its own ports and run dir."""
    with own_stack(OWN_SHIFT, "livefeed-cluster-", TEST_TOKEN, kafka_brokers=3) as stack:
        yield stack


@pytest.fixture
async def cluster_api(cluster: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.topology.base_url, headers=bearer(TEST_TOKEN), timeout=15) as api:
        yield api


async def partitions_of(stack: Stack, topic: str) -> dict[int, dict[str, Any]]:
    """``topic``'s partitions as the cluster's metadata has them: leader, replicas, isr."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.topology.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return {p["partition"]: p for p in described["partitions"]}
    finally:
        await admin.close()


async def min_insync(stack: Stack) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.topology.kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, TOPIC, {"min.insync.replicas": None})])
        [(_, _, _, _, entries)] = response.resources
        return str(next(value for name, value, *_ in entries if name == "min.insync.replicas"))
    finally:
        await admin.close()


async def group_coordinator(stack: Stack) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.topology.kafka_bootstrap)
    await admin.start()
    try:
        node: int = await admin.find_coordinator(HISTORY_GROUP)
        return node
    finally:
        await admin.close()


def feed_led_by(leaders: dict[int, int], node: int, *, surviving: bool = False) -> str:
    """A fresh feed whose partition ``node`` leads (or, with ``surviving``, another node leads)."""
    partition_of = feed_partitioner(len(leaders))
    for n in range(10_000):
        feed = f"k-{os.urandom(4).hex()}-{n}"
        if (leaders[partition_of(feed)] == node) != surviving:
            return feed
    raise AssertionError(f"no feed maps to a partition {'not ' if surviving else ''}led by node {node}: {leaders}")


async def all_in_sync(stack: Stack, timeout: float) -> float:
    """Seconds until every partition of the topic and of the group offsets has all 3 brokers in its ISR."""
    started = time.monotonic()
    nodes = {node for node, _, _ in stack.topology.kafka_nodes.values()}
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        try:
            last = {topic: {p: sorted(d["isr"]) for p, d in (await partitions_of(stack, topic)).items()}
                    for topic in (TOPIC, OFFSETS_TOPIC)}
        except Exception as exc:  # a cluster metadata answer may still lack the restarted broker
            last = {"error": repr(exc)}
        else:
            if all(set(isr) == nodes for isr_of in last.values() for isr in isr_of.values()):
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"the restarted broker did not rejoin every ISR within {timeout:g}s: {last}")


async def test_the_cluster_replicates_the_topic_and_the_group_offsets(cluster: Stack) -> None:
    await wait_ready(cluster.topology.base_url, 60)
    for topic in (TOPIC, OFFSETS_TOPIC):
        partitions = await partitions_of(cluster, topic)
        assert partitions, f"{topic} has no partitions"
        assert {len(p["replicas"]) for p in partitions.values()} == {3}, (topic, partitions)
    assert await min_insync(cluster) == "2"
    assert cluster.env()["LIVEFEED_KAFKA_BOOTSTRAP"].count(",") == 2


async def test_a_topic_kafka_refuses_to_create_is_an_error_not_a_silent_success(cluster: Stack) -> None:
    """Four replicas on three brokers: Kafka answers the create with an error code, which must raise
    (wait_for_kafka then retries and names it) instead of letting a service start without its topic."""
    settings = CommonSettings(kafka_bootstrap=cluster.topology.kafka_bootstrap, topic=f"refused-{uuid.uuid4().hex}",
                              topic_replication_factor=4)
    with pytest.raises(KafkaError, match="replication"):
        await ensure_topic(settings)


async def test_killing_the_leading_broker_loses_and_doubles_no_acknowledged_item(
    cluster: Stack, cluster_api: httpx.AsyncClient
) -> None:
    t = cluster.topology
    ws_url, base_url, origin = f"ws://{t.host}:{t.gateway}", t.base_url, t.base_url
    await wait_ready(base_url, 60)
    leaders = {p: d["leader"] for p, d in (await partitions_of(cluster, TOPIC)).items()}
    coordinator = await group_coordinator(cluster)
    victim = coordinator if coordinator in leaders.values() else leaders[0]
    name = next(n for n, (node, _, _) in t.kafka_nodes.items() if node == victim)
    feed, other = feed_led_by(leaders, victim), feed_led_by(leaders, victim, surviving=True)
    print(f"\nleaders {leaders}, history's group coordinator {coordinator}: killing node {victim} ({name})")

    writers = [KeyedWriter(cluster_api, feed, give_up_s=RECOVERY_S + 20) for _ in range(WRITERS)]
    refused: Counter[str] = Counter()
    bystanders: list[str] = []
    before = await writers[0].post({"headline": "before"})
    readers = [ResumingReader(kind, feed, before["cursor"]) for kind in READERS]  # type: ignore[arg-type]
    tasks = [asyncio.create_task(r.run(ws_url, base_url, origin), name=f"{r.transport} reader {i}")
             for i, r in enumerate(readers)]
    acked_at: list[float] = []
    stop = asyncio.Event()

    async def write(writer: KeyedWriter, label: str) -> None:
        n = 0
        while not stop.is_set():
            await writer.post({"headline": f"{label} {n}", "tags": [label]})
            acked_at.append(time.monotonic())
            n += 1
            await asyncio.sleep(PACE_S)

    async def bystand() -> None:
        """Post to ``other`` like a writer, keeping each refusal's error code."""
        while not stop.is_set():
            key, deadline = uuid.uuid4().hex, time.monotonic() + RECOVERY_S
            while True:
                answer = await cluster_api.post(f"/v1/feeds/{other}/items", headers={"Idempotency-Key": key},
                                                json={"headline": f"bystander {len(bystanders)}"}, timeout=20)
                if answer.is_success:
                    bystanders.append(answer.json()["item"]["id"])
                    break
                assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
                refused[answer.json()["error"]] += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(PACE_S)

    writing = [asyncio.create_task(write(w, f"w{i}"), name=f"writer {i}") for i, w in enumerate(writers)]
    writing.append(asyncio.create_task(bystand(), name="bystander writer"))
    try:
        await until(lambda: all(r.connections for r in readers), 15, "every reader's hello", [*tasks, *writing])
        await asyncio.sleep(BEFORE_KILL_S)
        acked_before = len(acked_at)
        killed_at = time.monotonic()
        await crash(cluster, name, signal.SIGKILL)
        await until(lambda: len([a for a in acked_at if a > killed_at]) >= ACKS_AFTER_RECOVERY, RECOVERY_S,
                    f"{ACKS_AFTER_RECOVERY} acknowledged posts after the kill", writing)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writing), RECOVERY_S + 30)
        after_kill = sorted(a for a in acked_at if a > killed_at)
        gaps = [b - a for a, b in zip([killed_at, *after_kill], after_kill, strict=False)]
        unavailable_s = max(gaps)

        after = await writers[0].post({"headline": "after"})
        for reader in readers:
            reader.until(after["cursor"])
        await settle(readers, tasks, 60)

        restarted_at = time.monotonic()
        await asyncio.to_thread(cluster.start_broker, name)
        rejoined_s = await all_in_sync(cluster, 90)
        rejoined_total = time.monotonic() - restarted_at
    finally:
        stop.set()
        await stop_all([*tasks, *writing])

    acked = [a["item"]["id"] for w in writers for a in w.acked]
    answers = sum((w.answers for w in writers), Counter[int]())
    no_answer = sum((w.no_answer for w in writers), Counter[str]())
    print(f"killed {name} (kill -9) after {acked_before} acknowledged posts; {len(acked)} acknowledged in all "
          f"by {WRITERS} writers, answers {dict(answers)}, no answer {dict(no_answer)}")
    print(f"longest time without an acknowledgement after the kill: {unavailable_s:.2f}s; "
          f"slowest acknowledged post {max(w.slowest_s for w in writers):.2f}s")
    print(f"bystander feed (its partition led by a live broker): {len(bystanders)} acknowledged, "
          f"503s {dict(refused)}")
    print(f"restarted {name}: in every ISR again {rejoined_s:.2f}s after its port opened "
          f"({rejoined_total:.2f}s after the restart)")

    assert len(set(acked)) == len(acked), "two acknowledgements named one item"
    in_kafka = await read_back(cluster, feed, before["cursor"].split(".")[0])
    per_id = Counter(item_id for _, _, item_id, _ in in_kafka)
    assert set(per_id) == set(acked), "Kafka holds an item no answer named, or lacks an acknowledged one"
    listed = await history_settles_on(cluster_api, feed, set(acked), 30)
    assert sorted(listed) == sorted(acked), f"history lists {len(listed)} items, {len(acked)} acknowledged"
    after_before = in_kafka[1:]
    for reader in readers:
        check_reader(reader, after_before)
        seen = [item_id for _, _, item_id, _ in reader.received]
        assert seen == first_records(after_before), f"{reader.transport} reader did not get each item once, in order"
    print(f"delivered: each of {len(readers)} readers ({', '.join(READERS)}) got all {len(acked) - 1} items after "
          f"its cursor once, in order (connections {[r.connections for r in readers]}); Kafka records per item: "
          f"{dict(Counter(per_id.values()))}")
    # Every partition has the dead broker in its ISR until Kafka fences it, so an acks=all write may
    # time out anywhere meanwhile (kafka_unacknowledged); but a feed whose leader is alive is reachable.
    assert "kafka_unavailable" not in refused, f"a feed whose partition's leader is alive was refused: {refused}"
