"""docker-compose.yml run for real: images built by deploy/images, the engine podman (deploy/podman.py).

One compose project for the module, started scaled (3 fanout, 2 history, 2 ingest) from images
built on a local Debian root; the tests then kill, scale and redeploy it in order, and the last
one takes it down. Whatever a failure leaves, the fixture's finalizer takes down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy import images
from deploy.podman import Engine
from deploy.stack import ROOT, Topology

PROJECT = "livefeedtest"
PODMAN_OVERRIDE = ROOT / "deploy" / "compose" / "podman.yml"
UP_TIMEOUT_S = 420
"""``up`` waits for Kafka, Redis and then the services to report healthy, each on its check's interval."""
SCALE = {"fanout": 3, "history": 2, "ingest": 2}
TEST_ENV = {
    # One process per container, so a container's readers are its one worker's (and 2 cores go round).
    "LIVEFEED_FANOUT_WORKERS": "1",
    "LIVEFEED_HISTORY_WORKERS": "1",
    "LIVEFEED_INGEST_WORKERS": "1",
    "LIVEFEED_HEARTBEAT_S": "5",
    "LIVEFEED_LOG_LEVEL": "INFO",
}


def log(message: str) -> None:
    print(f"compose test: {message}", file=sys.stderr, flush=True)


@dataclass
class Compose:
    """The compose project under test: ``run`` is docker-compose with its files, env and name."""

    engine: Engine
    env: dict[str, str]
    gateway_port: int
    scale: dict[str, int] = field(default_factory=lambda: dict(SCALE))
    token: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}"

    origin = "http://localhost:8080"
    """An Origin the services allow by default (LIVEFEED_ALLOWED_ORIGINS)."""

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [shutil.which("docker-compose") or "docker-compose", "-p", PROJECT,
                "-f", str(ROOT / "docker-compose.yml"), "-f", str(PODMAN_OVERRIDE), *args]
        result = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result

    def up(self, *extra: str, timeout: float = UP_TIMEOUT_S) -> float:
        """``up -d`` at :attr:`scale`; returns the seconds it took."""
        started = time.monotonic()
        scales = [a for name, n in self.scale.items() for a in ("--scale", f"{name}={n}")]
        self.run("up", "-d", *extra, *scales, timeout=timeout)
        return time.monotonic() - started

    def podman(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run([self.engine.podman, *args], capture_output=True, text=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[dict[str, Any]]:
        """The project's containers (running ones unless ``all_states``), oldest first."""
        filters = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        listed = json.loads(self.podman("ps", *(["-a"] if all_states else []), "--format", "json", *filters) or "[]")
        assert isinstance(listed, list)
        return sorted(listed, key=lambda c: c.get("Created", 0))

    def names(self, service: str) -> list[str]:
        return [c["Names"][0] for c in self.containers(service)]

    def readers(self, container: str) -> int:
        """Readers connected to one fanout container now (its /healthz, asked inside it)."""
        probe = ("import urllib.request as u; "
                 "print(u.urlopen('http://127.0.0.1:8003/healthz', timeout=4).read().decode())")
        out = self.podman("exec", container, "python", "-c", probe)
        return int(json.loads(out)["readers"])

    def health(self, container: str) -> str:
        state = json.loads(self.podman("inspect", container))[0]["State"]
        return str((state.get("Health") or state.get("Healthcheck") or {}).get("Status", ""))

    def wait_healthy(self, service: str, count: int, timeout: float) -> float:
        """Seconds until ``count`` containers of ``service`` run and report healthy."""
        started = time.monotonic()
        states: list[str] = []
        while time.monotonic() - started < timeout:
            names = self.names(service)
            states = [self.health(n) for n in names]
            if len(names) == count and all(s == "healthy" for s in states):
                return time.monotonic() - started
            time.sleep(1)
        raise AssertionError(f"{service}: wanted {count} healthy within {timeout:g}s, have {states}")

    def leftovers(self) -> dict[str, list[str]]:
        """What the project still has in the engine: containers, volumes and networks."""
        label = f"label=com.docker.compose.project={PROJECT}"
        return {
            "containers": self.podman("ps", "-a", "-q", "--filter", label).split(),
            "volumes": self.podman("volume", "ls", "-q", "--filter", label).split(),
            "networks": [n for n in self.podman("network", "ls", "--format", "{{.Name}}").split()
                         if n.startswith(PROJECT)],
        }

    def logs(self) -> str:
        return self.run("logs", "--tail", "30", "--no-color", check=False, timeout=60).stdout[-20000:]


def _token(output: str) -> str:
    match = re.search(r"^(lf_\S+)$", output, re.MULTILINE)
    assert match, f"`livefeed credentials add` printed no token: {output[-500:]}"
    return match.group(1)


@pytest.fixture(scope="module")
def compose() -> Iterator[Compose]:
    topology = Topology.shifted(int(os.environ.get("LIVEFEED_TEST_PORT_SHIFT", "10000")))
    credentials = Path(tempfile.mkdtemp(prefix="livefeed-compose-credentials-"))
    os.chmod(credentials, 0o755)
    if os.geteuid() == 0:
        os.chown(credentials, 10001, -1)
    started = time.monotonic()
    with Engine() as engine:
        images_env = images.build(log, cli=engine.podman)
        built = time.monotonic() - started
        env = {**engine.env, **images_env, **TEST_ENV,
               "LIVEFEED_CREDENTIALS_DIR": str(credentials),
               "LIVEFEED_GATEWAY_PUBLISH": f"127.0.0.1:{topology.gateway + 900}"}
        project = Compose(engine, env, topology.gateway + 900)
        try:
            project.run("down", "-v", "--remove-orphans", timeout=180)
            project.token = _token(project.run("run", "--rm", "--no-deps", "ingest", "livefeed", "credentials", "add",
                                               "compose-test", "--role", "admin", timeout=180).stdout)
            took = project.up()
            log(f"images ready in {built:.0f} s; up -d (3 fanout, 2 history, 2 ingest) healthy in {took:.0f} s")
            yield project
        except BaseException:
            print(project.logs())
            raise
        finally:
            project.run("down", "-v", "--remove-orphans", "-t", "20", timeout=300, check=False)
            shutil.rmtree(credentials, ignore_errors=True)


