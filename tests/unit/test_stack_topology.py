"""The local runner's instances of each service (``deploy/stack.py up --fanout N ...``): names and ports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy.stack import MAX_INSTANCES, MAX_KAFKA_BROKERS, SERVICES, Topology, main
from shared.workers import MAX_WORKERS


def test_one_instance_of_each_service_keeps_its_plain_name_and_ports() -> None:
    t = Topology()
    assert [t.instances(s) for s in SERVICES] == [["ingest"], ["history"], ["fanout"]]
    assert t.ports("fanout") == {"http": 8003, "sse": 8004, "metrics": 9301}
    assert t.addresses("history") == ["127.0.0.1:8002"]


def test_further_instances_are_numbered_from_2_each_on_its_own_ports() -> None:
    t = replace(Topology(), fanout_instances=3, history_instances=2)
    assert t.instances("fanout") == ["fanout", "fanout-2", "fanout-3"]
    assert t.ports("fanout-3") == {"http": 8023, "sse": 8024, "metrics": 11301}
    assert t.ports("history-2") == {"http": 8012, "metrics": 10201}
    assert t.addresses("fanout", "sse") == ["127.0.0.1:8004", "127.0.0.1:8014", "127.0.0.1:8024"]


def test_no_port_of_the_largest_layout_collides_with_another() -> None:
    t = replace(Topology(), kafka_brokers=MAX_KAFKA_BROKERS, ingest_instances=MAX_INSTANCES,
                history_instances=MAX_INSTANCES, fanout_instances=MAX_INSTANCES)
    ports = [t.gateway, t.redis]
    ports += [p for _, client, controller in t.kafka_nodes.values() for p in (client, controller)]
    for service in SERVICES:
        for name in t.instances(service):
            found = t.ports(name)
            ports += [found[kind] for kind in ("http", "sse") if kind in found]
            ports += [found["metrics"] + worker for worker in range(MAX_WORKERS)]
    assert len(ports) == len(set(ports))


def test_the_command_line_refuses_an_instance_count_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["up", "--fanout", str(MAX_INSTANCES + 1)])
    assert "--fanout" in capsys.readouterr().err
