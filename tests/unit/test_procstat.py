"""benchmarks/procstat.py: the figures the harness reads about a process and the machine, on this test's own processes.

No server: the processes measured are this one and short-lived children, and the one socket is a
listener on a loopback port the kernel picks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from benchmarks.procstat import CpuClock, MachineClock, listening_pid, open_files, rss_bytes

BUSY_THEN_SLEEP = (
    "import time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3: pass\n"
    "print('busy done', flush=True)\n"
    "time.sleep(60)\n"
)


def _spin(cpu_s: float) -> None:
    """Burn ``cpu_s`` seconds of this process's CPU."""
    started = time.process_time()
    while time.process_time() - started < cpu_s:
        pass


@contextlib.contextmanager
def _child(code: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running ``code``, killed and reaped on the way out."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()


def _gone_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait(10)
    return child.pid


def test_rss_grows_with_memory_the_process_touches() -> None:
    before = rss_bytes(os.getpid())
    block = b"x" * (64 * 2**20)
    after = rss_bytes(os.getpid())
    assert before > 0
    assert after - before >= 48 * 2**20
    del block


def test_open_files_counts_a_descriptor_more_while_a_file_is_open(tmp_path: os.PathLike[str]) -> None:
    before = open_files(os.getpid())
    with open(os.path.join(tmp_path, "f"), "w"):
        assert open_files(os.getpid()) == before + 1
    assert open_files(os.getpid()) == before


def test_a_process_that_has_gone_reads_as_zeros() -> None:
    pid = _gone_pid()
    assert rss_bytes(pid) == 0
    assert open_files(pid) == 0
    sample = CpuClock(pid).sample()
    assert (sample.cpu_percent, sample.rss_bytes) == (0.0, 0)


def test_a_process_that_dies_between_start_and_sample_reads_zero_cpu_not_a_negative_figure() -> None:
    with _child(BUSY_THEN_SLEEP) as child:
        assert child.stdout is not None and child.stdout.readline() == "busy done\n"
        clock = CpuClock(child.pid)
        child.kill()
        child.wait(10)
        sample = clock.sample()
    assert (sample.cpu_percent, sample.rss_bytes) == (0.0, 0)


def test_cpu_clock_reads_a_busy_process_as_busy_and_an_idle_one_as_idle() -> None:
    with _child("import time; print('up', flush=True); time.sleep(60)") as idle:
        assert idle.stdout is not None and idle.stdout.readline() == "up\n"
        own, other = CpuClock(os.getpid()), CpuClock(idle.pid)
        own.start()
        other.start()
        _spin(0.3)
        busy_sample, idle_sample = own.sample(), other.sample()
    assert busy_sample.cpu_percent > 20.0
    assert busy_sample.rss_bytes > 0
    assert 0.0 <= idle_sample.cpu_percent < 10.0


def test_cpu_clock_measures_from_the_last_sample_on() -> None:
    clock = CpuClock(os.getpid())
    _spin(0.3)
    clock.sample()
    time.sleep(0.3)
    assert clock.sample().cpu_percent < 20.0


def test_machine_clock_sees_this_process_keep_a_core_busy() -> None:
    clock = MachineClock()
    _spin(0.3)
    busy = clock.sample()
    assert 20.0 <= busy <= 100.0


def test_listening_pid_finds_the_process_listening_on_a_port_and_only_a_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert listening_pid(port) == os.getpid()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert listening_pid(client.getsockname()[1]) is None
    assert listening_pid(port) is None


def test_listening_pid_finds_an_ipv6_listener() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as server:
        assert listening_pid(server.getsockname()[1]) == os.getpid()
