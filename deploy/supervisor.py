"""When the local runner starts a process again: the restart policy, with no processes or clocks in it.

``deploy/stack.py`` drives it: it reports each start and each exit with the time, and asks which
processes are due to start again. Every process is restarted, whatever its exit code, as often as
it takes: a broker that is killed, or a service that gives up waiting for that broker, comes back
by itself, and the rest of the stack keeps running meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "Restart", "Supervisor"]


@dataclass(frozen=True)
class Backoff:
    """The wait before each restart: ``first_s``, doubling after each quick exit, at most ``cap_s``.

    A process that stayed up ``stable_s`` counts as a good start, so its next exit waits
    ``first_s`` again. Docker's restart policy works the same way (100 ms doubling, reset after
    10 s up); a longer first wait here keeps a crash loop from taking one of two cores.
    """

    first_s: float = 0.5
    cap_s: float = 10.0
    stable_s: float = 10.0

    def delay(self, quick_exits: int) -> float:
        """The wait after the ``quick_exits``-th exit in a row (1 for the first) that followed a short run."""
        return min(self.cap_s, self.first_s * 2.0 ** max(0, quick_exits - 1))


@dataclass(frozen=True)
class Restart:
    """What the supervisor decided about a process that exited: start it again after ``delay_s``."""

    name: str
    delay_s: float
    attempt: int
    """1 for the first restart after a good run, then 2, 3, ... while it keeps exiting quickly."""


@dataclass
class _Process:
    started_at: float | None = None
    quick_exits: int = 0
    due_at: float | None = None


class Supervisor:
    """Decides when each process that exited starts again; the caller spawns it and reports back.

    Call :meth:`started` after every spawn and :meth:`exited` when the process is seen dead, then
    call :meth:`due` periodically and spawn each name it returns (and call :meth:`started` again).
    Times are seconds on one monotonic clock, passed in by the caller.
    """

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._processes: dict[str, _Process] = {}

    def started(self, name: str, now: float) -> None:
        """``name`` was just spawned."""
        process = self._processes.setdefault(name, _Process())
        process.started_at = now
        process.due_at = None

    def exited(self, name: str, now: float) -> Restart:
        """``name`` exited (or could not be spawned): when to start it again."""
        process = self._processes.setdefault(name, _Process())
        ran_long = process.started_at is not None and now - process.started_at >= self.backoff.stable_s
        process.quick_exits = 1 if ran_long else process.quick_exits + 1
        delay = self.backoff.delay(process.quick_exits)
        process.started_at = None
        process.due_at = now + delay
        return Restart(name, delay, process.quick_exits)

    def due(self, now: float) -> list[str]:
        """The processes to spawn now, each returned once per exit."""
        names = [name for name, p in self._processes.items() if p.due_at is not None and p.due_at <= now]
        for name in names:
            self._processes[name].due_at = None
        return names
