"""The pure parts of running a service as several workers: restart policy, settings, what names a worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import orjson
import pytest
from pydantic import ValidationError

from services.fanout.health import WORKER_HEADER, Health
from services.fanout.sse import sse_headers
from services.history.consumer import Readiness
from services.history.workers import ConsumerMirror
from shared import keys, workers
from shared.settings import FanoutSettings, HistorySettings, IngestSettings
from shared.workers import MAX_WORKERS, RestartPolicy, WorkerSlot, default_workers
from tests.unit.history_fakes import P0, Consumer, SharedRedis, Store, history, kafka


def test_a_crashing_worker_waits_longer_each_time_up_to_the_cap() -> None:
    policy = RestartPolicy(first_s=0.5, cap_s=10.0, stable_s=10.0)
    slot = WorkerSlot(1, policy)
    now = 0.0
    delays = []
    for _ in range(8):
        slot.started(now)
        now += 1.0
        delays.append(slot.exited(now))
        now += delays[-1]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_a_worker_that_ran_long_enough_restarts_quickly_again() -> None:
    slot = WorkerSlot(0, RestartPolicy(first_s=0.5, cap_s=10.0, stable_s=10.0))
    slot.started(0.0)
    assert slot.exited(1.0) == 0.5
    slot.started(2.0)
    assert slot.exited(3.0) == 1.0
    slot.started(5.0)
    assert slot.exited(60.0) == 0.5


def test_a_restart_is_due_once_after_its_delay() -> None:
    slot = WorkerSlot(0)
    slot.started(0.0)
    delay = slot.exited(1.0)
    assert not slot.due(1.0 + delay / 2)
    assert slot.due(1.0 + delay)
    assert not slot.due(100.0)


def test_the_cpus_a_process_may_use_are_the_fewest_of_online_affinity_and_quota() -> None:
    assert workers.usable_cpus(64, 64, "200000 100000\n") == 2, "a container limited to 2 CPUs"
    assert workers.usable_cpus(64, 64, "150000 100000\n") == 2, "a part of a CPU counts as one"
    assert workers.usable_cpus(8, 4, None) == 4
    assert workers.usable_cpus(8, 8, "max 100000\n") == 8
    assert workers.usable_cpus(8, 8, "5000 100000\n") == 1
    assert workers.usable_cpus(None, None, None) == 1
    assert workers.usable_cpus(8, None, "garbage") == 8


def test_the_default_is_the_cpu_count_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "usable_cpus", lambda *_: 1)
    assert default_workers() == 1
    monkeypatch.setattr(workers, "usable_cpus", lambda *_: 512)
    assert default_workers() == MAX_WORKERS
    monkeypatch.setattr(workers, "usable_cpus", lambda *_: 2)
    assert default_workers() == 2
    monkeypatch.delenv("LIVEFEED_FANOUT_WORKERS", raising=False)
    assert FanoutSettings().fanout_workers == 2


@pytest.mark.parametrize(("settings", "env"), [
    (FanoutSettings, "LIVEFEED_FANOUT_WORKERS"),
    (IngestSettings, "LIVEFEED_INGEST_WORKERS"),
    (HistorySettings, "LIVEFEED_HISTORY_WORKERS"),
])
def test_worker_counts_are_bounded(settings: type[FanoutSettings], env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("0", str(MAX_WORKERS + 1)):
        monkeypatch.setenv(env, bad)
        with pytest.raises(ValidationError):
            settings()


def test_a_service_alone_is_worker_zero_and_a_worker_knows_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workers.INDEX_ENV, raising=False)
    assert workers.worker_or_supervise("fanout", 1) == 0
    monkeypatch.setenv(workers.INDEX_ENV, "3")
    monkeypatch.setenv(workers.PARENT_ENV, str(os.getppid()))
    assert workers.worker_or_supervise("fanout", 4) == 3


def test_a_worker_whose_parent_is_gone_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workers.INDEX_ENV, "1")
    monkeypatch.setenv(workers.PARENT_ENV, str(os.getppid() + 100_000))
    with pytest.raises(SystemExit):
        workers.worker_or_supervise("fanout", 2)


def test_worker_metrics_ports_of_the_default_layout_never_collide() -> None:
    from deploy.stack import Topology

    t = Topology()
    ports = [base + i for base in (t.ingest_metrics, t.history_metrics, t.fanout_metrics) for i in range(MAX_WORKERS)]
    assert len(set(ports)) == len(ports)
    assert (IngestSettings().ingest_metrics_port, HistorySettings().history_metrics_port,
            FanoutSettings().fanout_metrics_port) == (t.ingest_metrics, t.history_metrics, t.fanout_metrics)


def test_fanout_health_and_stream_heads_name_the_worker() -> None:
    health = Health(lambda: 7, lambda: {"status": "ready"}, worker=1)
    assert health.answer("/healthz") == (200, {"status": "ok", "readers": 7, "worker": 1}, {})
    answer = health.answer("/readyz")
    assert answer is not None and answer[1]["worker"] == 1
    assert f"{WORKER_HEADER}: 1\r\n".encode() in sse_headers(None, 1)
    assert WORKER_HEADER.encode() not in sse_headers(None)


def test_the_mirror_tells_the_consuming_workers_status() -> None:
    mirror = ConsumerMirror("e1", "host:8002")
    seen = [mirror.state]
    body = {"status": "rebuilding", "epoch": "e1", "applied": 3, "rebuild_lag": {"0": 5}}
    mirror.update(orjson.dumps(body))
    seen.append(mirror.state)
    assert mirror.status() == body
    mirror.update(orjson.dumps({**body, "status": "ready"}))
    seen.append(mirror.state)
    mirror.update(None, ConnectionError("down"))
    seen.append(mirror.state)
    assert seen == [Readiness.starting, Readiness.rebuilding, Readiness.ready, Readiness.redis_unavailable]
    mirror.update(None)
    assert mirror.state is Readiness.starting, "an expired status means worker 0 is not running"
    mirror.update(orjson.dumps({**body, "status": "ready", "epoch": "e0"}))
    assert mirror.state is Readiness.starting, "a status of another topic epoch is not this one's"
    mirror.update(b"not json")
    assert mirror.state is Readiness.starting


def test_a_worker_that_cannot_start_stops_them_all_and_the_parent_exits_with_its_code() -> None:
    """A bad setting fails every worker the same way: restarting forever would hide the refusal."""
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        code = workers.STARTUP_FAILURE if env[workers.INDEX_ENV] == "1" else None
        script = f"import sys; sys.exit({code})" if code is not None else "import time; time.sleep(60)"
        proc = subprocess.Popen([sys.executable, "-c", script])
        spawned.append(proc)
        return proc

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    try:
        assert workers.supervise(["unused"], 2, spawn=spawn) == workers.STARTUP_FAILURE
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        for proc in spawned:
            proc.kill()
            proc.wait(5)
    assert time.monotonic() - started < workers.STOP_S
    assert len(spawned) == 2
    assert spawned[0].returncode == -signal.SIGTERM


def test_a_worker_is_hung_once_silent_for_too_long() -> None:
    slot = WorkerSlot(0)
    slot.started(100.0)
    assert not slot.hung(100.0 + workers.FIRST_BEAT_S)
    assert slot.hung(100.1 + workers.FIRST_BEAT_S), "a worker that never beat"
    slot.beat(101.0)
    assert not slot.hung(101.0 + workers.SILENT_S)
    assert slot.hung(101.1 + workers.SILENT_S)
    slot.exited(200.0)
    assert not slot.hung(10_000.0), "a worker that is not running is not hung"


def _sleeper(argv: Sequence[str], env: dict[str, str], spawned: list[subprocess.Popen[bytes]],
             script: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, pass_fds=(int(env[workers.BEAT_ENV]),))
    spawned.append(proc)
    return proc


def _supervise_for(seconds: float, spawn: Callable[[Sequence[str], dict[str, str]], subprocess.Popen[bytes]],
                   spawned: list[subprocess.Popen[bytes]], policy: RestartPolicy | None = None) -> None:
    """Run one worker under :func:`workers.supervise` for ``seconds``, then SIGTERM it as a runner would."""
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stop = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    stop.start()
    try:
        assert workers.supervise(["unused"], 1, policy, spawn) == 0
    finally:
        stop.cancel()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def test_a_worker_that_stops_beating_is_killed_and_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped or wedged worker still owns part of the shared port: new connections would wait on it."""
    monkeypatch.setattr(workers, "FIRST_BEAT_S", 0.5)
    spawned: list[subprocess.Popen[bytes]] = []
    _supervise_for(3.0, lambda argv, env: _sleeper(argv, env, spawned, "import time; time.sleep(60)"), spawned)
    assert len(spawned) >= 2
    assert spawned[0].returncode == -signal.SIGKILL


def test_a_worker_that_beats_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "FIRST_BEAT_S", 0.5)
    monkeypatch.setattr(workers, "SILENT_S", 0.5)
    beating = ("import os, time\nfd = int(os.environ['LIVEFEED_WORKER_BEAT_FD'])\n"
               "while True:\n    os.write(fd, b'.')\n    time.sleep(0.1)\n")
    spawned: list[subprocess.Popen[bytes]] = []
    _supervise_for(2.5, lambda argv, env: _sleeper(argv, env, spawned, beating), spawned)
    assert len(spawned) == 1
    assert spawned[0].returncode == -signal.SIGTERM, "stopped by the parent's SIGTERM, not killed as hung"


async def test_the_consumer_tells_the_other_workers_it_rebuilds_before_it_empties_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Otherwise a worker that has not heard yet serves a list from the store as it refills."""
    redis = SharedRedis()
    redis.flush()
    consumer = history(Store(redis))
    calls: list[str] = consumer.rebuilds.calls  # type: ignore[attr-defined]

    async def before_reset() -> None:
        calls.append(f"announced {consumer.state.value}")

    async def partitions(consumer: object, topic: str) -> set[int]:
        return {0}

    monkeypatch.setattr("services.history.consumer.topic_partitions", partitions)
    consumer.before_reset = before_reset
    await consumer._rebuild(kafka(Consumer(set(), ends={P0: 5})))
    assert calls == ["claim", "begin [(0, 5)]", "announced rebuilding", "wipe", "finish"]


def test_each_instance_publishes_its_status_under_its_own_key() -> None:
    """Two history instances' workers must each mirror their own consumer, not the other's."""
    assert keys.key("status", instance="host:8002") == "lf:meta:history-status:host:8002"
    assert keys.key("status", instance="host:8002") != keys.key("status", instance="host:8012")


def test_a_paused_parent_does_not_count_its_own_pause_as_its_workers_silence() -> None:
    slot = WorkerSlot(0)
    slot.started(100.0)
    slot.beat(101.0)
    slot.resumed(200.0)
    assert not slot.hung(200.0 + workers.SILENT_S)


def test_a_worker_that_fails_to_start_after_running_a_while_is_started_again() -> None:
    """Exit 3 after ``stable_s`` (Kafka away longer than ingest waits for it) is an outage, not a bad setting:
    stopping every healthy worker would turn it into a whole-service outage."""
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        script = f"import sys; sys.exit({workers.STARTUP_FAILURE})" if not spawned else "import time; time.sleep(60)"
        proc = subprocess.Popen([sys.executable, "-c", script])
        spawned.append(proc)
        return proc

    _supervise_for(2.5, spawn, spawned, RestartPolicy(first_s=0.1, stable_s=0.0))
    assert len(spawned) == 2 and spawned[0].returncode == workers.STARTUP_FAILURE
