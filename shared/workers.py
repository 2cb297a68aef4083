"""Worker processes: one service on every core of a host, under a small parent that keeps them running.

With ``LIVEFEED_<SERVICE>_WORKERS`` above 1, a service's ``main`` becomes the parent
(:func:`worker_or_supervise`): it starts that many copies of itself, each told its index in
``LIVEFEED_WORKER_INDEX``, which share the service's ports with ``SO_REUSEPORT`` (the kernel
spreads new connections over them) and serve their metrics on the metrics port plus their index.
The parent starts again a worker that exits, after a backoff (:class:`RestartPolicy`), passes a
SIGTERM or SIGINT on to every worker and waits for them (at most ``STOP_S``, then SIGKILL).
A worker dies with its parent, even one killed with SIGKILL (``PR_SET_PDEATHSIG``).
With 1 worker the service runs in its own process as it always did: no parent, index 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BEAT_ENV",
    "INDEX_ENV",
    "MAX_WORKERS",
    "PARENT_ENV",
    "STARTUP_FAILURE",
    "STOP_S",
    "RestartPolicy",
    "WorkerSlot",
    "bind_to_parent",
    "default_workers",
    "exit_reason",
    "heartbeat",
    "supervise",
    "usable_cpus",
    "worker_index",
    "worker_or_supervise",
]

log = logging.getLogger("livefeed.workers")

INDEX_ENV = "LIVEFEED_WORKER_INDEX"
PARENT_ENV = "LIVEFEED_WORKER_PARENT"
"""The parent's pid, so a worker whose parent died before it could ask to die with it exits at once."""
MAX_WORKERS = 64
"""The most workers a service may run: each holds its own Kafka connections and metrics port."""
STOP_S = 15.0
"""How long the parent waits for its workers after passing on a SIGTERM (uvicorn cuts requests after 10 s)."""
TICK_S = 0.2
BEAT_ENV = "LIVEFEED_WORKER_BEAT_FD"
"""The pipe a worker's event loop writes a byte to every :data:`BEAT_EVERY_S`, so the parent knows it still runs."""
BEAT_EVERY_S = 1.0
SILENT_S = 10.0
"""A worker whose event loop has not beaten for this long is hung (stopped, wedged): it is killed and
started again. Its port is shared, so until then the kernel still hands it new connections, which wait."""
FIRST_BEAT_S = 60.0
"""How long a new worker may take to beat first (imports, settings, under load)."""
STARTUP_FAILURE = 3
"""A worker's exit code when it cannot start (a bad setting or file; uvicorn's own code for a failed
startup). Given within the policy's ``stable_s`` of the start, starting it again would fail the same
way, so the parent stops every worker and exits with it; given later (Kafka away longer than the
wait for it), the worker is started again like any other that exits."""

_PR_SET_PDEATHSIG = 1


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""A cgroup v2 CPU quota: a container limited to 2 CPUs on a 64-core host must not start 64 workers."""


def usable_cpus(online: int | None, affinity: int | None, cpu_max: str | None) -> int:
    """The CPUs this process may use: the fewest of those online, those its affinity allows and its cgroup's
    quota (``cpu.max``: ``"max 100000"``, or ``"200000 100000"`` for 2 CPUs, rounded up); at least 1."""
    counts = [n for n in (online, affinity) if n]
    fields = (cpu_max or "").split()
    if len(fields) == 2 and fields[0] != "max" and fields[0].isdigit() and fields[1].isdigit() and int(fields[1]):
        counts.append(math.ceil(int(fields[0]) / int(fields[1])))
    return max(1, min(counts, default=1))


def default_workers() -> int:
    """The CPUs this process may use, at most :data:`MAX_WORKERS`: the default of every ``*_workers`` setting."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        cpu_max: str | None = CPU_MAX.read_text()
    except OSError:
        cpu_max = None
    return min(MAX_WORKERS, usable_cpus(os.cpu_count(), affinity, cpu_max))


def worker_index() -> int:
    """This process's worker index: ``LIVEFEED_WORKER_INDEX``, or 0 for a service running alone."""
    return int(os.environ.get(INDEX_ENV, "0"))


@dataclass(frozen=True)
class RestartPolicy:
    """The wait before a worker starts again: ``first_s``, doubling after each quick exit, at most ``cap_s``.

    A worker that stayed up ``stable_s`` counts as a good start, so its next exit waits
    ``first_s`` again. The cap bounds the restart rate of a worker that keeps crashing (Kafka
    down at start, a bad setting) to one per ``cap_s``, so a crash loop cannot take a core.
    """

    first_s: float = 0.5
    cap_s: float = 10.0
    stable_s: float = 10.0

    def delay(self, quick_exits: int) -> float:
        """The wait after the ``quick_exits``-th quick exit in a row (1 for the first)."""
        return min(self.cap_s, self.first_s * 2.0 ** max(0, quick_exits - 1))


@dataclass
class WorkerSlot:
    """One worker index's restart state; no process in it, so the policy is testable with plain numbers.

    Call :meth:`started` after each spawn and :meth:`exited` when the worker is seen dead; spawn
    again once :meth:`due` says so.
    """

    index: int
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    started_at: float | None = None
    quick_exits: int = 0
    due_at: float | None = None
    beat_at: float | None = None

    def started(self, now: float) -> None:
        self.started_at = now
        self.due_at = None
        self.beat_at = None

    def beat(self, now: float) -> None:
        """The worker's event loop said it runs."""
        self.beat_at = now

    def resumed(self, now: float) -> None:
        """The parent itself was not running (the whole tree paused): what it could not hear is no silence."""
        if self.started_at is not None:
            self.beat_at = now

    def hung(self, now: float) -> bool:
        """Whether the running worker has been silent too long: :data:`SILENT_S` since its last beat, or
        :data:`FIRST_BEAT_S` since it started without one."""
        if self.started_at is None:
            return False
        if self.beat_at is None:
            return now - self.started_at > FIRST_BEAT_S
        return now - self.beat_at > SILENT_S

    def exited(self, now: float) -> float:
        """The worker exited at ``now``: how long to wait before starting it again."""
        ran_long = self.started_at is not None and now - self.started_at >= self.policy.stable_s
        self.quick_exits = 1 if ran_long else self.quick_exits + 1
        delay = self.policy.delay(self.quick_exits)
        self.started_at = None
        self.due_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        """Whether the worker should be spawned now (true once per exit)."""
        if self.due_at is not None and self.due_at <= now:
            self.due_at = None
            return True
        return False


def worker_or_supervise(service: str, workers: int) -> int:
    """Become the parent of ``workers`` copies of ``services.<service>.main`` (and exit when it ends),
    or return the index to run as: this worker's, or 0 for a service running alone."""
    if workers > 1 and INDEX_ENV not in os.environ:
        raise SystemExit(supervise([sys.executable, "-m", f"services.{service}.main"], workers))
    if INDEX_ENV in os.environ:
        bind_to_parent()
    return worker_index()


def bind_to_parent() -> None:
    """Have the kernel send this worker SIGTERM when its parent dies (SIGKILL included); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    parent = os.environ.get(PARENT_ENV)
    if parent is not None and os.getppid() != int(parent):
        log.error("the worker's parent is gone: exiting")
        raise SystemExit(1)


async def heartbeat() -> None:
    """Tell the parent, every :data:`BEAT_EVERY_S` until cancelled, that this worker's event loop runs.

    Run it as a task beside the service; for a service alone (no ``LIVEFEED_WORKER_BEAT_FD``) it
    returns at once. A full pipe (the parent busy) or a closed one (the parent gone) is ignored.
    """
    fd = os.environ.get(BEAT_ENV)
    if fd is None:
        return
    beat_fd = int(fd)
    os.set_blocking(beat_fd, False)
    while True:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(beat_fd, b".")
        await asyncio.sleep(BEAT_EVERY_S)


def exit_reason(code: int) -> str:
    """A child's exit, in words: ``exit code 3`` or ``killed by SIGKILL`` (Popen's negative codes)."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def supervise(argv: Sequence[str], workers: int, policy: RestartPolicy | None = None,
              spawn: Callable[[Sequence[str], dict[str, str]], subprocess.Popen[bytes]] | None = None) -> int:
    """Run ``workers`` copies of ``argv`` until SIGTERM or SIGINT, starting again any that exits; returns 0,
    or :data:`STARTUP_FAILURE` once a worker exits with it (a service that cannot start refuses as one process would).

    Each copy gets ``LIVEFEED_WORKER_INDEX`` (0 to ``workers - 1``) and this pid in
    ``LIVEFEED_WORKER_PARENT``; a restarted worker keeps its index, and so its metrics port.
    """
    policy = policy or RestartPolicy()
    spawn = spawn or _spawn
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    slots = [WorkerSlot(i, policy) for i in range(workers)]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    beats: dict[int, int] = {}

    def start(slot: WorkerSlot) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        env = {**os.environ, INDEX_ENV: str(slot.index), PARENT_ENV: str(os.getpid()), BEAT_ENV: str(write_end)}
        try:
            procs[slot.index] = spawn(argv, env)
        except OSError as exc:
            os.close(read_end)
            log.error("worker could not be started", extra={"worker": slot.index, "error": repr(exc),
                                                             "retry_in_s": slot.exited(time.monotonic())})
            return
        finally:
            os.close(write_end)
        beats[slot.index] = read_end
        slot.started(time.monotonic())

    def heard(slot: WorkerSlot, now: float) -> None:
        with contextlib.suppress(BlockingIOError):
            if os.read(beats[slot.index], 4096):
                slot.beat(now)

    log.info("starting workers", extra={"workers": workers, "argv": list(argv)})
    for slot in slots:
        start(slot)
    last_tick = time.monotonic()
    try:
        while not stopping:
            now = time.monotonic()
            if now - last_tick > SILENT_S / 2:
                log.warning("the parent was paused: its workers' silence meanwhile is not counted",
                            extra={"paused_s": round(now - last_tick, 1)})
                for slot in slots:
                    slot.resumed(now)
            last_tick = now
            for slot in slots:
                proc = procs.get(slot.index)
                if proc is not None and slot.index in beats:
                    heard(slot, now)
                    if slot.hung(now):
                        log.error("worker stopped answering: killing it", extra={
                            "worker": slot.index, "pid": proc.pid, "silent_s": SILENT_S})
                        proc.kill()
                        proc.wait(5)
                if proc is not None and (code := proc.poll()) is not None:
                    del procs[slot.index]
                    os.close(beats.pop(slot.index))
                    if code == STARTUP_FAILURE and slot.started_at is not None \
                            and now - slot.started_at < policy.stable_s:
                        log.error("a worker cannot start: stopping them all", extra={"worker": slot.index})
                        return STARTUP_FAILURE
                    delay = slot.exited(now)
                    log.warning("worker exited: starting it again", extra={
                        "worker": slot.index, "pid": proc.pid, "reason": exit_reason(code),
                        "attempt": slot.quick_exits, "retry_in_s": delay})
                if slot.due(now):
                    start(slot)
            time.sleep(TICK_S)
    finally:
        _stop_all(list(procs.values()))
        for read_end in beats.values():
            os.close(read_end)
    return 0


def _spawn(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one worker in a process group of its own: a signal to the parent's group (Ctrl-C, the runner's
    SIGTERM) reaches the workers once, through the parent; a second would cut uvicorn's graceful stop short."""
    return subprocess.Popen(list(argv), env=env, process_group=0, pass_fds=(int(env[BEAT_ENV]),))


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = STOP_S) -> None:
    """SIGTERM every worker, wait for them all at most ``timeout`` seconds, then SIGKILL the rest."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in time: killing it", extra={"pid": proc.pid})
            proc.kill()
            proc.wait(5)
    log.info("workers stopped", extra={"workers": len(procs)})
