"""The figures the harness reads about a process and the machine (CPU, RSS, descriptors), through psutil.

The harness measures the fanout (or a peer) by pid, finds that pid from the port it listens on
when it did not start the process itself (``--url``), and samples the whole machine's busy time
so a reader of the results can see how noisy the machine was. A process that has gone (a peer
that crashed) reads as zeros, so it spoils one row rather than the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

__all__ = ["CpuClock", "MachineClock", "ProcSample", "listening_pid", "open_files", "rss_bytes"]


def rss_bytes(pid: int) -> int:
    """Resident set size of the process in bytes (0 if it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def open_files(pid: int) -> int:
    """How many descriptors the process holds (0 if it is gone)."""
    try:
        return psutil.Process(pid).num_fds()
    except psutil.Error:
        return 0


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (IPv4 or IPv6); one of them if processes share the socket."""
    return next(
        (c.pid for c in psutil.net_connections("tcp")
         if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid is not None),
        None,
    )


@dataclass(frozen=True)
class ProcSample:
    """A process's CPU use over an interval (percent of one core) and its RSS at the end."""

    cpu_percent: float
    rss_bytes: int


class CpuClock:
    """One process's CPU percent between :meth:`start` (or creation) and :meth:`sample`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._process = None
        self.start()

    def start(self) -> None:
        """Begin the interval now."""
        if self._process is not None:
            try:
                self._process.cpu_percent()
            except psutil.Error:
                self._process = None

    def sample(self) -> ProcSample:
        """CPU percent of one core since :meth:`start` (or the last sample), RSS now; zeros if the process died."""
        if self._process is None:
            return ProcSample(0.0, 0)
        try:
            with self._process.oneshot():
                return ProcSample(round(self._process.cpu_percent(), 1), int(self._process.memory_info().rss))
        except psutil.Error:
            self._process = None
            return ProcSample(0.0, 0)


class MachineClock:
    """The whole machine's busy percent (of all cores, 100 = every core busy) over an interval.

    psutil keeps one last reading per thread, so the harness times one window at a time (its
    steps run one after another): a second clock started inside the window would restart it.
    """

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Begin the interval now."""
        psutil.cpu_percent()

    def sample(self) -> float:
        """Busy percent since :meth:`start` (or the last sample)."""
        return round(psutil.cpu_percent(), 1)
