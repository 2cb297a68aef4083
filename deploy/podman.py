"""Docker's engine API from podman, so docker-compose runs docker-compose.yml on a machine without Docker.

podman serves the API on a socket (``podman system service``) and docker-compose talks to it
through ``DOCKER_HOST``. One part of Docker's engine podman leaves to systemd: running each
container's health check on its interval. Where systemd is not PID 1 (a container, a CI machine)
those checks never run, every container stays ``starting``, and compose's ``depends_on:
condition: service_healthy`` waits forever. :class:`Engine` runs them itself, with ``podman
healthcheck run``: the container's own check, on its own interval.

    python -m deploy.podman -- docker-compose up -d --build    # the engine lives as long as the command
    python -m deploy.podman -- bash                              # a shell with DOCKER_HOST set
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["CONTAINERS_CONF", "Engine", "configure", "main"]

CONTAINERS_CONF = Path("/etc/containers/containers.conf")
ENGINE_SETTINGS = """\
# Written by livefeed's deploy/podman.py: the host refuses podman's default rlimits inside a
# container, and crun refuses its hybrid cgroups.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""
START_TIMEOUT_S = 30
HEALTH_TICK_S = 1.0


def configure() -> None:
    """Write podman's engine settings for this machine, unless the operator wrote their own."""
    if not CONTAINERS_CONF.exists():
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(ENGINE_SETTINGS)


def _podman() -> str:
    path = shutil.which("podman")
    if path is None:
        raise SystemExit("livefeed podman: podman is not installed (deploy/install.sh --test installs it)")
    return path


class Engine:
    """podman's API service on a socket of its own and the health-check runner, for a ``with`` block.

    ``env`` is what docker-compose needs (``DOCKER_HOST``). Leaving the block stops both. Each
    engine has its own socket, so two at once (the suite's and an operator's) never cut each other
    off; they drive the same containers.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="livefeed-podman-"))
        self.socket = self._dir / "podman.sock"
        self.podman = _podman()
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        self._service: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._health = threading.Thread(target=self._run_health_checks, name="podman-health", daemon=True)
        self._due: dict[str, float] = {}

    def __enter__(self) -> Engine:
        configure()
        self._service = subprocess.Popen(
            [self.podman, "system", "service", "--time=0", f"unix://{self.socket}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self._service.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"podman system service did not answer on {self.socket} within {START_TIMEOUT_S} s")
            time.sleep(0.2)
        self._health.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._health.is_alive():
            self._health.join(10)
        if self._service is not None and self._service.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._service.pid, signal.SIGTERM)
            try:
                self._service.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._service.pid, signal.SIGKILL)
                self._service.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _answers(self) -> bool:
        import http.client
        import socket

        class UnixConnection(http.client.HTTPConnection):
            def connect(inner) -> None:
                inner.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                inner.sock.settimeout(2)
                inner.sock.connect(str(self.socket))

        try:
            connection = UnixConnection("localhost", timeout=2)
            connection.request("GET", "/_ping")
            return connection.getresponse().status == 200
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            return False

    def _run_health_checks(self) -> None:
        """Run every running container's health check when its interval is due, until stopped."""
        while not self._stop.wait(HEALTH_TICK_S):
            now = time.monotonic()
            for container, interval in self._checked_containers():
                if self._due.get(container, 0.0) <= now:
                    self._due[container] = now + interval
                    subprocess.run([self.podman, "healthcheck", "run", container],
                                   capture_output=True, timeout=120, check=False)

    def _checked_containers(self) -> Iterator[tuple[str, float]]:
        """(id, interval in seconds) of each running container that has a health check."""
        listing = subprocess.run([self.podman, "ps", "-q", "--no-trunc"], capture_output=True, text=True,
                                 timeout=30, check=False)
        ids = listing.stdout.split()
        if not ids:
            return
        inspected = subprocess.run([self.podman, "inspect", *ids], capture_output=True, text=True, timeout=30,
                                   check=False)
        with contextlib.suppress(json.JSONDecodeError):
            for container in json.loads(inspected.stdout or "[]"):
                check = (container.get("Config") or {}).get("Healthcheck") or {}
                if check.get("Test") and check["Test"] != ["NONE"]:
                    yield container["Id"], max(1.0, (check.get("Interval") or 30_000_000_000) / 1e9)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command (docker-compose ...) against podman, then stop the engine."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    def stop(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)  # subprocess.run kills the command, then the engine stops

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    with Engine() as engine:
        return subprocess.run(args, env=engine.env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
