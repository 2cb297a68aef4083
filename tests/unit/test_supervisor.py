"""deploy/supervisor.py: the local runner's restart policy, on a clock the test moves by hand."""

from __future__ import annotations

from deploy.supervisor import Backoff, Restart, Supervisor

POLICY = Backoff(first_s=0.5, cap_s=10.0, stable_s=10.0)


def _crash_loop(supervisor: Supervisor, name: str, times: int, now: float, uptime_s: float) -> list[float]:
    """Let ``name`` exit ``times`` times, each after ``uptime_s`` up; the waits the supervisor chose."""
    delays = []
    for _ in range(times):
        restart = supervisor.exited(name, now)
        delays.append(restart.delay_s)
        now += restart.delay_s
        assert supervisor.due(now) == [name]
        supervisor.started(name, now)
        now += uptime_s
    return delays


def test_the_wait_doubles_from_half_a_second_to_the_cap() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("kafka", 0.0)
    assert _crash_loop(supervisor, "kafka", 8, now=1.0, uptime_s=1.0) == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_a_process_that_stayed_up_starts_over_at_the_first_wait() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("ingest", 0.0)
    assert _crash_loop(supervisor, "ingest", 4, now=1.0, uptime_s=1.0) == [0.5, 1, 2, 4]
    supervisor.started("ingest", 100.0)
    assert supervisor.exited("ingest", 100.0 + POLICY.stable_s) == Restart("ingest", 0.5, 1)


def test_a_run_just_short_of_stable_still_counts_as_a_quick_exit() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("history", 0.0)
    assert supervisor.exited("history", 1.0).delay_s == 0.5
    supervisor.started("history", 2.0)
    assert supervisor.exited("history", 2.0 + POLICY.stable_s - 0.1) == Restart("history", 1.0, 2)


def test_a_process_is_due_only_once_its_wait_is_over_and_only_once() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("redis", 0.0)
    supervisor.exited("redis", 50.0)
    assert supervisor.due(50.4) == []
    assert supervisor.due(50.5) == ["redis"]
    assert supervisor.due(60.0) == []


def test_processes_back_off_independently() -> None:
    supervisor = Supervisor(POLICY)
    for name in ("kafka", "fanout"):
        supervisor.started(name, 0.0)
    _crash_loop(supervisor, "kafka", 3, now=1.0, uptime_s=1.0)
    assert supervisor.exited("fanout", 8.0) == Restart("fanout", 0.5, 1)
    assert supervisor.exited("kafka", 8.0) == Restart("kafka", 4.0, 4)
    assert supervisor.due(8.5) == ["fanout"]
    assert supervisor.due(12.0) == ["kafka"]


def test_a_process_that_could_not_be_spawned_backs_off_too() -> None:
    """The runner reports a failed spawn as an exit without a start in between."""
    supervisor = Supervisor(POLICY)
    supervisor.started("gateway", 0.0)
    waits = []
    for now in (1.0, 2.0, 3.0):
        waits.append(supervisor.exited("gateway", now).delay_s)
        supervisor.due(now + 100)
    assert waits == [0.5, 1.0, 2.0]


def test_a_process_never_seen_starting_gets_the_first_wait() -> None:
    assert Supervisor(POLICY).exited("fanout", 5.0) == Restart("fanout", 0.5, 1)
