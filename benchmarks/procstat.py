"""Process and machine figures read straight from /proc: CPU seconds, RSS, open files.

No psutil needed: the harness measures the fanout (or a peer) by pid, finds that pid from the
port it listens on when it did not start the process itself (``--url``), and samples the whole
machine's busy time so a reader of the results can see how noisy the machine was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuClock", "MachineClock", "ProcSample", "cpu_seconds", "listening_pid", "open_files", "rss_bytes"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of the process in bytes (0 if it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * _PAGE


def open_files(pid: int) -> int:
    """How many descriptors the process holds."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (IPv4 or IPv6), found via socket inodes."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    return int(entry)
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class ProcSample:
    """A process's CPU use over an interval (percent of one core) and its RSS at the end."""

    cpu_percent: float
    rss_bytes: int


class CpuClock:
    """Measures one process's CPU percent between :meth:`start` and :meth:`sample`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = cpu_seconds(pid)
        self._wall = time.monotonic()

    def start(self) -> None:
        self._cpu = cpu_seconds(self.pid)
        self._wall = time.monotonic()

    def sample(self) -> ProcSample:
        """CPU percent of one core since :meth:`start` (or the last sample), RSS now."""
        cpu, wall = cpu_seconds(self.pid), time.monotonic()
        elapsed = max(wall - self._wall, 1e-6)
        percent = (cpu - self._cpu) / elapsed * 100.0
        self._cpu, self._wall = cpu, wall
        return ProcSample(round(percent, 1), rss_bytes(self.pid))


class MachineClock:
    """The whole machine's busy percent (of all cores, 100 = every core busy) over an interval."""

    def __init__(self) -> None:
        self._busy, self._total = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        total = sum(fields[:8])
        return total - idle, total

    def start(self) -> None:
        self._busy, self._total = self._read()

    def sample(self) -> float:
        busy, total = self._read()
        percent = (busy - self._busy) / max(total - self._total, 1) * 100.0
        self._busy, self._total = busy, total
        return round(percent, 1)
