"""The Kafka cluster's shape, without a broker: node names and ports, quorum sizes, replication."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from deploy.stack import MAX_KAFKA_BROKERS, Stack, Topology
from shared.kafka import min_insync_replicas


def test_a_majority_must_be_in_sync() -> None:
    assert [min_insync_replicas(n) for n in (1, 2, 3, 5)] == [1, 2, 2, 3]


def test_one_broker_is_the_default_everywhere() -> None:
    topology = Topology.shifted(10_000)
    assert topology.kafka_nodes == {"kafka": (1, 19092, 19093)}
    env = Stack(topology=topology).env()
    assert env["LIVEFEED_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert env["LIVEFEED_TOPIC_REPLICATION_FACTOR"] == "1"


def test_three_brokers_get_their_own_ids_and_ports_and_replicate_three_times() -> None:
    topology = replace(Topology(), kafka_brokers=3)
    assert topology.kafka_nodes == {"kafka": (1, 9092, 9093), "kafka-2": (2, 9094, 9095), "kafka-3": (3, 9096, 9097)}
    env = Stack(topology=topology).env()
    assert env["LIVEFEED_KAFKA_BOOTSTRAP"] == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert env["LIVEFEED_TOPIC_REPLICATION_FACTOR"] == "3"


def test_no_broker_port_collides_with_another_port_of_the_stack() -> None:
    topology = replace(Topology(), kafka_brokers=MAX_KAFKA_BROKERS)
    nodes = topology.kafka_nodes.values()
    kafka = list(itertools.chain.from_iterable((port, controller) for _, port, controller in nodes))
    others = [value for name, value in vars(topology).items()
              if isinstance(value, int) and name not in ("kafka", "kafka_controller", "kafka_brokers")
              and not name.endswith("_instances")]
    assert len(set(kafka)) == len(kafka)
    assert not set(kafka) & set(others)
    assert max(kafka) < topology.ingest_metrics


@pytest.mark.parametrize("brokers", [0, MAX_KAFKA_BROKERS + 1])
def test_a_broker_count_out_of_range_is_refused(brokers: int) -> None:
    with pytest.raises(ValueError, match="kafka_brokers"):
        _ = replace(Topology(), kafka_brokers=brokers).kafka_nodes
