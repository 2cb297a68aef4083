"""deploy/compose/kafka-cluster.yml, the 3-node Kafka override, checked as compose merges it.

``docker-compose -f docker-compose.yml -f deploy/compose/kafka-cluster.yml config`` prints the
file compose would run; the checks of test_compose.py that hold for any compose file run on it,
and :func:`check_cluster` checks what makes it a cluster: three nodes with their own ids, names
and volumes, one quorum and cluster id, topics at replication factor 3 with 2 in sync, and every
service bootstrapping from all three. ``test_check_cluster_catches_a_broken_override`` shows that
each of its rules can fail.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.kafka import min_insync_replicas
from tests.deploy.test_compose import (
    COMPOSE,
    CREDENTIALS_ENV,
    DOCKER_COMPOSE,
    ROOT,
    Project,
    check_dependencies,
    check_ports,
    check_scaling,
    check_settings,
    environment,
)

OVERRIDE = "deploy/compose/kafka-cluster.yml"
BROKERS = {"kafka": 1, "kafka-2": 2, "kafka-3": 3}
"""The cluster's nodes: compose service (and host) name -> node id."""
REPLICATION = 3
REPLICATION_KEYS = (
    "KAFKA_DEFAULT_REPLICATION_FACTOR",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
)
MIN_ISR_KEYS = (
    "KAFKA_MIN_INSYNC_REPLICAS",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
)
GENERAL_CHECKS = (check_settings, check_dependencies, check_ports, check_scaling)
"""test_compose.py's checks that read only the compose file (and the code), so they hold for a merged one too
(check_credentials reads the ``${VAR:?message}`` that ``config`` has already resolved)."""


@dataclass
class Merged(Project):
    """The checkout at ``root`` with the compose file that ``docker-compose config`` printed for it."""

    merged: dict[str, Any] = field(default_factory=dict)

    @property
    def compose(self) -> dict[str, Any]:
        return self.merged


def compose_config(override: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not Path(DOCKER_COMPOSE).exists():
        pytest.fail("docker-compose is not installed: run deploy/install.sh --test")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    return subprocess.run([DOCKER_COMPOSE, "-f", str(ROOT / COMPOSE), "-f", str(override), "config"], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def merged(override: Path = ROOT / OVERRIDE, env: dict[str, str] = CREDENTIALS_ENV) -> Merged:
    result = compose_config(override, env)
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return Merged(ROOT, data)


def check_cluster(project: Project) -> list[str]:
    """Three KRaft nodes that form one cluster, replicating the topics 3 times, and services that know all three."""
    problems = []
    services = project.services
    nodes = {name: environment(svc) for name, svc in services.items() if "KAFKA_NODE_ID" in environment(svc)}
    if set(nodes) != set(BROKERS):
        return [f"Kafka nodes {sorted(nodes)}, expected {sorted(BROKERS)}"]
    voters = {f"{node_id}@{name}:9093" for name, node_id in BROKERS.items()}
    for name, env in nodes.items():
        if env.get("KAFKA_NODE_ID") != str(BROKERS[name]):
            problems.append(f"{name}: KAFKA_NODE_ID {env.get('KAFKA_NODE_ID')}, expected {BROKERS[name]}")
        if env.get("KAFKA_ADVERTISED_LISTENERS") != f"PLAINTEXT://{name}:9092":
            problems.append(f"{name}: advertises {env.get('KAFKA_ADVERTISED_LISTENERS')}, not its own name")
        if set((env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or "").split(",")) != voters:
            problems.append(f"{name}: quorum {env.get('KAFKA_CONTROLLER_QUORUM_VOTERS')}, expected {sorted(voters)}")
        if env.get("KAFKA_PROCESS_ROLES") != "broker,controller":
            problems.append(f"{name}: KAFKA_PROCESS_ROLES {env.get('KAFKA_PROCESS_ROLES')}")
        for key in REPLICATION_KEYS:
            if env.get(key) != str(REPLICATION):
                problems.append(f"{name}: {key} is {env.get(key)}, not {REPLICATION}")
        for key in MIN_ISR_KEYS:
            if env.get(key) != str(min_insync_replicas(REPLICATION)):
                problems.append(f"{name}: {key} is {env.get(key)}, not {min_insync_replicas(REPLICATION)}")
        if "healthcheck" not in services[name]:
            problems.append(f"{name}: no healthcheck")
    for key in ("CLUSTER_ID", "KAFKA_LOG_DIRS"):
        if len({env.get(key) for env in nodes.values()}) != 1:
            problems.append(f"the nodes differ in {key}: {sorted(str(env.get(key)) for env in nodes.values())}")
    if len({services[name].get("image") for name in nodes}) != 1:
        problems.append(f"the nodes run different images: {sorted(str(services[n].get('image')) for n in nodes)}")
    data_volumes = {}
    for name, env in nodes.items():
        volumes = [v for v in services[name].get("volumes") or [] if _target(v) == env.get("KAFKA_LOG_DIRS")]
        source = _source(volumes[0]) if volumes else None
        if source is None or source.startswith(("/", ".")):
            problems.append(f"{name}: its log dir {env.get('KAFKA_LOG_DIRS')} is not on a named volume")
        data_volumes[name] = source
    if len(set(data_volumes.values())) != len(data_volumes):
        problems.append(f"two nodes share a log dir volume: {data_volumes}")
    for name, service in project.ours().items():
        env = environment(service)
        hosts = {address.rpartition(":")[0] for address in (env.get("LIVEFEED_KAFKA_BOOTSTRAP") or "").split(",")}
        if hosts != set(BROKERS):
            problems.append(f"{name}: LIVEFEED_KAFKA_BOOTSTRAP {env.get('LIVEFEED_KAFKA_BOOTSTRAP')} is not every node")
        if env.get("LIVEFEED_TOPIC_REPLICATION_FACTOR") != str(REPLICATION):
            problems.append(f"{name}: LIVEFEED_TOPIC_REPLICATION_FACTOR is "
                            f"{env.get('LIVEFEED_TOPIC_REPLICATION_FACTOR')}, not {REPLICATION}")
    return problems


def _target(volume: Any) -> str | None:
    if isinstance(volume, dict):
        return str(volume.get("target"))
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else None


def _source(volume: Any) -> str | None:
    if isinstance(volume, dict):
        return str(volume.get("source"))
    return str(volume).split(":")[0]


def test_the_override_is_a_valid_compose_file() -> None:
    result = compose_config(ROOT / OVERRIDE, CREDENTIALS_ENV)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def cluster_file() -> Merged:
    return merged()


def test_the_merged_file_is_a_three_node_cluster(cluster_file: Merged) -> None:
    assert check_cluster(cluster_file) == []


@pytest.mark.parametrize("check", GENERAL_CHECKS, ids=[c.__name__ for c in GENERAL_CHECKS])
def test_the_merged_file_passes_the_compose_checks(cluster_file: Merged, check: Any) -> None:
    assert check(cluster_file) == []


def test_every_node_runs_the_kafka_image_variable(cluster_file: Merged) -> None:
    default = cluster_file
    assert {default.services[name]["image"] for name in BROKERS} == {"apache/kafka:4.1.1"}
    swapped = merged(env={**CREDENTIALS_ENV, "LIVEFEED_KAFKA_IMAGE": "localhost/livefeed-kafka:test"})
    assert {swapped.services[name]["image"] for name in BROKERS} == {"localhost/livefeed-kafka:test"}


def test_the_single_node_file_is_unchanged_by_the_override_existing() -> None:
    """docker-compose.yml alone stays one node at replication factor 1: the override is opt-in."""
    base = yaml.safe_load((ROOT / COMPOSE).read_text())
    kafka = environment(base["services"]["kafka"])
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert set(base["services"]) & set(BROKERS) == {"kafka"}


BROKEN: list[tuple[str, str, str, str]] = [
    ("a node left out of the quorum", "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093", "1@kafka:9093,2@kafka-2:9093",
     "quorum 1@kafka:9093,2@kafka-2:9093"),
    ("two nodes with one id", "KAFKA_NODE_ID: 3", "KAFKA_NODE_ID: 2", "kafka-3: KAFKA_NODE_ID 2"),
    ("a node advertising another's name", "PLAINTEXT://kafka-3:9092", "PLAINTEXT://kafka-2:9092",
     "kafka-3: advertises PLAINTEXT://kafka-2:9092"),
    ("one in sync is enough", "KAFKA_MIN_INSYNC_REPLICAS: 2", "KAFKA_MIN_INSYNC_REPLICAS: 1",
     "KAFKA_MIN_INSYNC_REPLICAS is 1, not 2"),
    ("group offsets on one node", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 3",
     "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 1", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR is 1, not 3"),
    ("a bootstrap without a node", "kafka:9092,kafka-2:9092,kafka-3:9092", "kafka:9092,kafka-2:9092",
     "LIVEFEED_KAFKA_BOOTSTRAP kafka:9092,kafka-2:9092 is not every node"),
    ("the topic on one node", 'LIVEFEED_TOPIC_REPLICATION_FACTOR: "3"', 'LIVEFEED_TOPIC_REPLICATION_FACTOR: "1"',
     "LIVEFEED_TOPIC_REPLICATION_FACTOR is 1, not 3"),
    ("two nodes on one volume", "kafka-3-data:/var/lib/kafka/data", "kafka-2-data:/var/lib/kafka/data",
     "two nodes share a log dir volume"),
]
"""(what, text of the override, replaced by, a problem check_cluster must then report)."""


@pytest.mark.parametrize(("what", "old", "new", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_check_cluster_catches_a_broken_override(tmp_path: Path, what: str, old: str, new: str, expected: str) -> None:
    text = (ROOT / OVERRIDE).read_text()
    assert old in text, f"{OVERRIDE} no longer contains {old!r}; update this test"
    broken = tmp_path / "kafka-cluster.yml"
    broken.write_text(text.replace(old, new, 1))
    problems = check_cluster(merged(broken))
    assert any(expected in problem for problem in problems), f"{what}: {expected!r} not in {problems}"


def test_check_cluster_catches_a_node_with_its_own_cluster_id(tmp_path: Path) -> None:
    text = (ROOT / OVERRIDE).read_text()
    old = "      KAFKA_NODE_ID: 3\n"
    assert old in text
    broken = tmp_path / "kafka-cluster.yml"
    broken.write_text(text.replace(old, old + "      CLUSTER_ID: AnotherClusterIdAAAAAA\n"))
    assert any("differ in CLUSTER_ID" in problem for problem in check_cluster(merged(broken)))
