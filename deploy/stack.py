"""The local runner: starts the real Kafka, Redis and nginx and the three services on one machine.

It mirrors docker-compose.yml (same services, same ``LIVEFEED_*`` settings, same gateway
config, Redis persisted the same way) for machines without a Docker engine. ``python -m
deploy.stack up`` runs the stack in the foreground until Ctrl-C or SIGTERM and, like compose's
``restart: unless-stopped``, starts again any process that exits (policy in ``supervisor.py``).
Each process's pid is in ``<run dir>/pids/<name>.pid``, its output in ``<run dir>/logs/<name>.log``.
The tests drive :class:`Stack` directly, on other ports.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template

from deploy.gateway import LOCAL_RESOLVER, gateway_values, servers
from deploy.supervisor import Supervisor
from shared import credentials as creds
from shared.kafka import min_insync_replicas
from shared.workers import exit_reason

__all__ = [
    "KAFKA_VERSION", "MAX_KAFKA_BROKERS", "REDIS_PERSISTENCE", "NamedToken", "Stack", "Topology", "main", "supervise",
]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KAFKA_VERSION = "4.1.1"
CACHE = Path(os.environ.get("LIVEFEED_CACHE", Path.home() / ".cache" / "livefeed"))
SERVICES = ("ingest", "history", "fanout")
START_ORDER = ("redis", "kafka", *SERVICES, "gateway")
MAX_KAFKA_BROKERS = 4
"""Broker n listens on the first broker's two ports plus 2(n - 1): four fit below the metrics ports (9101)."""
DEMO_TOKEN = "demo-newsroom-token"
DEMO_NAME = "demo"
INSTANCE_PORT_STEP = 10
"""Instance i of a service listens 10 * (i - 1) above the first: the services' ports end in 1 to 4, the
gateway's in 0, so no count of instances reaches another's."""
MAX_INSTANCES = 8
"""The most instances of a service the runner starts: eight stay below the gateway's port (8080)."""
INSTANCE_METRICS_STEP = 1_000
"""Instance i's metrics ports start 1000 * (i - 1) above the first's, past every service's block of 100."""
REDIS_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
"""Redis keeps idempotency keys (and history) across a restart in its append-only file, synced
every second: a killed redis-server loses no acknowledged write, a lost machine at most the
last second. docker-compose.yml's redis runs with the same options."""


@dataclass(frozen=True)
class Topology:
    """Ports of every process; compose uses the same service ports inside its network."""

    gateway: int = 8080
    ingest: int = 8001
    history: int = 8002
    fanout: int = 8003
    fanout_sse: int = 8004
    kafka: int = 9092
    kafka_controller: int = 9093
    kafka_brokers: int = 1
    """Kafka nodes, each a broker and a controller: 1, or a cluster (3 tolerates losing one)."""
    redis: int = 6380
    ingest_metrics: int = 9101
    history_metrics: int = 9201
    fanout_metrics: int = 9301
    """Each service's metrics port is its first worker's; worker i serves on it plus i. Blocks of 100
    keep the workers of different services apart up to ``shared.workers.MAX_WORKERS`` each."""
    host: str = "127.0.0.1"
    ingest_instances: int = 1
    history_instances: int = 1
    fanout_instances: int = 1
    """Processes of each service (``up --fanout N``), each with its workers: instance i (from 1) listens on
    the service's ports plus ``INSTANCE_PORT_STEP`` * (i - 1), and serves metrics on the service's metrics
    port plus ``INSTANCE_METRICS_STEP`` * (i - 1), clear of the other services' ports and workers."""

    @classmethod
    def shifted(cls, by: int) -> Topology:
        """The default ports plus ``by``: a second stack (the tests') beside a running one."""
        base = cls()
        return replace(
            base,
            **{name: getattr(base, name) + by for name in (
                "gateway", "ingest", "history", "fanout", "fanout_sse", "kafka", "kafka_controller", "redis",
                "ingest_metrics", "history_metrics", "fanout_metrics")},
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.gateway}"

    def instances(self, service: str) -> list[str]:
        """The process names of ``service``'s instances: the first keeps the plain name (``fanout``,
        ``fanout-2``, ...), so one instance is named as it always was."""
        count: int = getattr(self, f"{service}_instances")
        return [service] + [f"{service}-{i}" for i in range(2, count + 1)]

    def ports(self, name: str) -> dict[str, int]:
        """The ports of instance ``name`` (``history-2``), by what they serve: ``http`` (and ``sse``), ``metrics``."""
        service, _, number = name.partition("-")
        step = int(number or 1) - 1
        ports = {"http": getattr(self, service) + INSTANCE_PORT_STEP * step,
                 "metrics": getattr(self, f"{service}_metrics") + INSTANCE_METRICS_STEP * step}
        if service == "fanout":
            ports["sse"] = self.fanout_sse + INSTANCE_PORT_STEP * step
        return ports

    def addresses(self, service: str, port: str = "http") -> list[str]:
        """``host:port`` of every instance of ``service`` (``port="sse"``: the fanouts' SSE ports), for the gateway."""
        return [f"{self.host}:{self.ports(name)[port]}" for name in self.instances(service)]

    @property
    def kafka_nodes(self) -> dict[str, tuple[int, int, int]]:
        """Each Kafka node's process name (``kafka``, ``kafka-2``, ...) -> (node id, client port, controller port)."""
        if not 1 <= self.kafka_brokers <= MAX_KAFKA_BROKERS:
            raise ValueError(f"kafka_brokers must be 1 to {MAX_KAFKA_BROKERS}, not {self.kafka_brokers}")
        return {("kafka" if n == 1 else f"kafka-{n}"): (n, self.kafka + 2 * (n - 1),
                                                        self.kafka_controller + 2 * (n - 1))
                for n in range(1, self.kafka_brokers + 1)}

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker's address, comma-separated: a client that finds one down asks the next."""
        return ",".join(f"{self.host}:{port}" for _, port, _ in self.kafka_nodes.values())

    @property
    def topic_replication(self) -> int:
        """The replication factor of the topics: 3 on a cluster of 3 or more, else one per broker."""
        return min(3, self.kafka_brokers)


@dataclass(frozen=True)
class NamedToken:
    """A newsroom credential the stack writes into its credentials file, with its token in clear (tests, demo)."""

    name: str
    role: str
    token: str
    feeds: tuple[str, ...] = ("*",)


@dataclass
class Stack:
    """The processes of one stack, their logs under ``run_dir``, and how to stop them.

    ``token`` is the admin credential "demo" of the credentials file the stack writes into
    ``run_dir`` (with ``credentials`` beside it), unless ``credentials_file`` names a file of
    the deployment's own, which is used as it is.
    """

    topology: Topology = field(default_factory=Topology)
    run_dir: Path = ROOT / ".run"
    token: str | None = DEMO_TOKEN
    credentials: tuple[NamedToken, ...] = ()
    credentials_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(default_factory=dict)
    """What each process was spawned with, so :meth:`respawn` can start it again as it was."""

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"livefeed: {message}", flush=True)

    # -- settings -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The ``LIVEFEED_*`` environment every service gets (the README table lists them)."""
        t = self.topology
        env = {
            "LIVEFEED_KAFKA_BOOTSTRAP": t.kafka_bootstrap,
            "LIVEFEED_TOPIC_REPLICATION_FACTOR": str(t.topic_replication),
            "LIVEFEED_REDIS_URL": f"redis://{t.host}:{t.redis}/0",
            "LIVEFEED_CREDENTIALS_FILE": str(self.credentials_path),
            "LIVEFEED_INGEST_HOST": t.host,
            "LIVEFEED_INGEST_PORT": str(t.ingest),
            "LIVEFEED_HISTORY_HOST": t.host,
            "LIVEFEED_HISTORY_PORT": str(t.history),
            "LIVEFEED_FANOUT_HOST": t.host,
            "LIVEFEED_FANOUT_PORT": str(t.fanout),
            "LIVEFEED_FANOUT_SSE_PORT": str(t.fanout_sse),
            "LIVEFEED_ALLOWED_ORIGINS": f"http://{t.host}:{t.gateway},http://localhost:{t.gateway}",
            "LIVEFEED_PUBLIC_URL": t.base_url,
            "LIVEFEED_METRICS_HOST": t.host,
            "LIVEFEED_INGEST_METRICS_PORT": str(t.ingest_metrics),
            "LIVEFEED_HISTORY_METRICS_PORT": str(t.history_metrics),
            "LIVEFEED_FANOUT_METRICS_PORT": str(t.fanout_metrics),
        }
        env.update(self.extra_env)
        return env

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.run_dir / "credentials.json"

    def write_credentials(self) -> None:
        """Put the stack's own credentials (the demo admin and ``credentials``) into its credentials file.

        Credentials added meanwhile under other names (``livefeed credentials add``) are kept.
        A deployment's own ``credentials_file`` is never written.
        """
        if self.credentials_file is not None:
            return
        ours = [NamedToken(DEMO_NAME, "admin", self.token)] if self.token else []
        ours += self.credentials
        names = {t.name for t in ours}
        path = self.credentials_path
        kept = [c for c in creds.load(path) if c.name not in names] if path.exists() else []
        creds.save(path, [*kept, *(creds.make(t.name, t.role, t.feeds, t.token) for t in ours)])

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything, in dependency order, each one up before the next."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.write_credentials()
        self.start_redis()
        self.start_kafka()
        for service in SERVICES:
            for name in self.topology.instances(service):
                self.start_service(name)
        self.start_gateway()

    def stop(self) -> None:
        """Stop every process, in the reverse of the start order (a restarted one is not stopped first).

        A cluster's Kafka nodes are all signalled at once: stopped one by one, the last ones would
        wait out the timeout for a controller quorum that has already gone.
        """
        for name in sorted(self.procs, key=_start_rank, reverse=True):
            if name in self.topology.kafka_nodes:
                for node in self.topology.kafka_nodes:
                    proc = self.procs.get(node)
                    if proc is not None and proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
            self.stop_process(name)

    def start_redis(self) -> None:
        data = self.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "redis",
            [_need("redis-server"), "--bind", self.topology.host, "--port", str(self.topology.redis),
             "--dir", str(data), *REDIS_PERSISTENCE, "--protected-mode", "yes",
             "--maxmemory", "1gb", "--maxmemory-policy", "noeviction"],
        )
        _wait_port(self.topology.host, self.topology.redis, 30, "redis")

    def start_kafka(self) -> None:
        """Start every Kafka node, then wait for each: a cluster's nodes only open their client
        port once a majority of the controller quorum is up."""
        commands = {name: self._kafka_commands(name) for name in self.topology.kafka_nodes}
        formats = [subprocess.Popen(fmt, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for _, fmt in commands.values() if fmt is not None]
        for fmt in formats:
            _, err = fmt.communicate(timeout=120)
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting Kafka's storage failed: {err.decode(errors='replace')[-500:]}")
        for name, (run, _) in commands.items():
            self._spawn(name, run)
        for name in commands:
            self._wait_kafka(name)

    def start_broker(self, name: str) -> None:
        """Start one Kafka node (``kafka``, ``kafka-2``, ...) of a running cluster again, and wait for it."""
        run, fmt = self._kafka_commands(name)
        if fmt is not None:
            subprocess.run(fmt, check=True, capture_output=True, timeout=120)
        self._spawn(name, run)
        self._wait_kafka(name)

    def _wait_kafka(self, name: str) -> None:
        _, port, _ = self.topology.kafka_nodes[name]
        _wait_port(self.topology.host, port, 90, name)

    def _kafka_commands(self, name: str) -> tuple[list[str], list[str] | None]:
        """Write node ``name``'s server.properties; return the command that runs it, and the one that
        formats its log dir first if it is new (with the cluster's one id)."""
        t = self.topology
        libs = fetch_kafka(log=self.log)
        node_id, port, controller_port = t.kafka_nodes[name]
        data = self.run_dir / name / "data"
        props = self.run_dir / name / "server.properties"
        props.parent.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n}@{t.host}:{c}" for n, _, c in t.kafka_nodes.values())
        replication = t.topic_replication
        props.write_text(
            Template((DEPLOY / "kafka" / "server.properties").read_text()).substitute(
                KAFKA_NODE_ID=node_id,
                KAFKA_QUORUM_VOTERS=voters,
                KAFKA_PORT=port,
                KAFKA_CONTROLLER_PORT=controller_port,
                KAFKA_DATA=data,
                KAFKA_REPLICATION=replication,
                KAFKA_MIN_ISR=min_insync_replicas(replication),
            )
        )
        java = [_need("java"), "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.yaml'}", "-cp", f"{libs}/*"]
        fmt = None
        if not (data / "meta.properties").exists():
            self.log(f"formatting {name} storage (KRaft)")
            fmt = [*java, "kafka.tools.StorageTool", "format", "-t", self._kafka_cluster_id(), "-c", str(props)]
        return [*java, "kafka.Kafka", str(props)], fmt

    def _kafka_cluster_id(self) -> str:
        """The cluster id of the nodes already formatted, else a new one, kept in the run dir for every node."""
        for name in self.topology.kafka_nodes:
            meta = self.run_dir / name / "data" / "meta.properties"
            with contextlib.suppress(OSError):
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        kept = self.run_dir / "kafka" / "cluster.id"
        if not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(_new_cluster_id())
        return kept.read_text().strip()

    def start_service(self, name: str) -> None:
        """Start instance ``name`` of a service (``history``, ``history-2``, ...) on its own ports."""
        service = name.partition("-")[0]
        ports = self.topology.ports(name)
        env = {**self.env(), f"LIVEFEED_{service.upper()}_PORT": str(ports["http"]),
               f"LIVEFEED_{service.upper()}_METRICS_PORT": str(ports["metrics"])}
        if "sse" in ports:
            env["LIVEFEED_FANOUT_SSE_PORT"] = str(ports["sse"])
        configured = {**os.environ, **env}.get("LIVEFEED_HISTORY_INSTANCE_ID")
        if service == "history":
            # A static member id per instance, the same across the runner's restarts of it, so a restarted
            # history takes its partitions back at once; a second member under one id fences the first out.
            default = f"{socket.gethostname()}:{ports['http']}"
            env["LIVEFEED_HISTORY_INSTANCE_ID"] = (f"{configured}-{name}" if name != service else configured) \
                if configured else default
        self._spawn(name, [sys.executable, "-m", f"services.{service}.main"], env=env)
        _wait_http(f"http://{self.topology.host}:{ports['http']}/healthz", 90, name, self._alive(name))

    def start_gateway(self) -> None:
        """Render the gateway template (its settings from the environment and ``extra_env``, as the
        services get theirs), check it with nginx -t and start nginx."""
        t = self.topology
        conf_dir = self.run_dir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (conf_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        # A new gateway starts with an empty micro-cache: nothing a previous run (another
        # LIVEFEED_PRIVATE_FEEDS, say) cached is served, even stale while history starts.
        shutil.rmtree(conf_dir / "cache", ignore_errors=True)
        (conf_dir / "cache").mkdir()
        try:
            settings = gateway_values({**os.environ, **self.env()})
        except ValueError as exc:
            raise RuntimeError(f"gateway settings: {exc}") from exc
        site = Template((DEPLOY / "nginx" / "livefeed.conf.template").read_text()).safe_substitute(
            settings,
            LIVEFEED_INGEST_SERVERS=servers(t.addresses("ingest")),
            LIVEFEED_HISTORY_SERVERS=servers(t.addresses("history")),
            LIVEFEED_FANOUT_SERVERS=servers(t.addresses("fanout")),
            LIVEFEED_SSE_SERVERS=servers(t.addresses("fanout", "sse")),
            NGINX_LOCAL_RESOLVERS=LOCAL_RESOLVER,
            LIVEFEED_GATEWAY_PORT=f"{t.host}:{t.gateway}",
            LIVEFEED_GATEWAY_CACHE_DIR=str(conf_dir / "cache"),
        )
        (conf_dir / "livefeed.conf").write_text(site)
        tmp = conf_dir / "tmp"
        # Run as root, nginx's workers would drop to nobody, who cannot enter a private run dir (the
        # tests' is a mkdtemp, 0700) to write the micro-cache: they stay the runner's user instead.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (conf_dir / "nginx.conf").write_text(
            f"""{user}worker_processes auto;
worker_rlimit_nofile 40000;
pid {conf_dir / 'nginx.pid'};
error_log stderr warn;
events {{ worker_connections 20000; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {tmp / 'client_body'};
    proxy_temp_path {tmp / 'proxy'};
    fastcgi_temp_path {tmp / 'fastcgi'};
    uwsgi_temp_path {tmp / 'uwsgi'};
    scgi_temp_path {tmp / 'scgi'};
    include {conf_dir / 'livefeed.conf'};
}}
"""
        )
        nginx = _need("nginx")
        check = subprocess.run([nginx, "-t", "-q", "-c", str(conf_dir / "nginx.conf")], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected the gateway config: {check.stderr.strip()}")
        self._spawn("gateway", [nginx, "-c", str(conf_dir / "nginx.conf"), "-g", "daemon off;"])
        _wait_http(f"{t.base_url}/healthz", 30, "gateway", self._alive("gateway"))

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        self._pid_file(name).unlink(missing_ok=True)
        if proc is None:
            return
        if proc.poll() is not None:
            _kill_leftovers(proc)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[int]:
        """SIGSTOP process ``name`` for the body (a hung process keeps its sockets open, unlike a
        dead one); SIGCONT it whatever happens. Yields its pid. For fault tests and benchmarks."""
        pid = self.procs[name].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_stopped(pid)
            yield pid
        finally:
            os.kill(pid, signal.SIGCONT)

    def restart_service(self, name: str) -> None:
        self.stop_process(name)
        self.start_service(name)

    def reap(self) -> list[tuple[str, int]]:
        """The processes that exited since the last call, with their exit codes (-N: killed by signal N).

        Each is forgotten (as :meth:`stop_process` would) and whatever it left in its process
        group is killed: nginx workers outlive a killed master and keep the port.
        """
        exited = [(name, code) for name, proc in self.procs.items() if (code := proc.poll()) is not None]
        for name, _ in exited:
            self.stop_process(name)
        return exited

    def respawn(self, name: str) -> None:
        """Spawn ``name`` again with the command it was first started with, without waiting for it."""
        argv, env = self.commands[name]
        self._spawn(name, argv, env)

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"

    def _alive(self, name: str) -> subprocess.Popen[bytes]:
        return self.procs[name]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log(f"starting {name}")
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path(name), "ab")  # noqa: SIM115 - the child owns it
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        self.procs[name] = proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, start_new_session=True
        )
        out.close()
        self.commands[name] = (argv, env)
        self._pid_file(name).parent.mkdir(parents=True, exist_ok=True)
        self._pid_file(name).write_text(f"{proc.pid}\n")


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Wait until every thread of ``pid`` is stopped: ``kill`` returns before a busy process's threads
    (a JVM's dozens, on loaded cores) have each taken the SIGSTOP, and until then they still answer."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        if all(state in ("T", "t") for state in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} was not stopped within {timeout:g} s: thread states {states}")
        time.sleep(0.01)


def fetch_kafka(log: object = print) -> Path:
    """The Kafka jars from Maven Central, fetched once with mvn into the cache folder."""
    libs = CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if callable(log):
        log(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (once; cached in {libs})")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_need("mvn"), "-q", "-B", "-f", str(DEPLOY / "kafka" / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}"],
        check=True,
    )
    marker.touch()
    return libs


def _new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one: a random UUID in URL-safe base64, not
    starting with a dash (without starting a JVM for it)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


def _start_rank(name: str) -> int:
    name = name.partition("-")[0]
    return START_ORDER.index(name) if name in START_ORDER else len(START_ORDER)


def _kill_leftovers(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of an exited process's group (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _need(program: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)
    if path is None:
        raise RuntimeError(f"{program} is not installed: run deploy/install.sh first")
    return path


def _wait_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open {host}:{port} within {timeout:.0f}s; see its log under .run/logs/")


def _wait_http(
    url: str, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None, *, ok_below: int = 500
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see its log under .run/logs/{what}.log")
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status < ok_below:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f}s; see its log under .run/logs/{what}.log")


def post_demo_items(stack: Stack) -> int:
    """Post the project's demo items to each demo feed that is still empty.

    Waits until history has caught up with Kafka first (it rebuilds Redis from the topic when
    Redis comes back without its data), so a restart does not post the demo items a second time.
    """
    base = stack.topology.base_url
    _wait_http(f"{base}/api/history/readyz", 120, "history readiness", ok_below=300)
    by_feed: dict[str, list[dict[str, object]]] = {}
    for line in (DEPLOY / "demo" / "items.jsonl").read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            by_feed.setdefault(item.pop("feed"), []).append(item)
    count = 0
    for feed, items in by_feed.items():
        with urllib.request.urlopen(f"{base}/v1/feeds/{feed}/items?limit=1", timeout=15) as response:
            if json.load(response)["items"]:
                continue
        for n, item in enumerate(items):
            request = urllib.request.Request(
                f"{base}/v1/feeds/{feed}/items",
                data=json.dumps(item).encode(),
                headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json",
                         "Idempotency-Key": f"demo-{feed}-{n}"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=15):
                count += 1
    return count


def supervise(stack: Stack, stopping: Callable[[], bool], supervisor: Supervisor | None = None,
              tick_s: float = 0.2) -> None:
    """Start again every process of ``stack`` that exits, until ``stopping()``; never raises for one.

    A restart does not wait for the process to be healthy: a service that comes back before
    Kafka or Redis waits for them itself, or exits and is restarted after the next backoff.
    """
    supervisor = supervisor or Supervisor()
    for name in stack.procs:
        supervisor.started(name, time.monotonic())
    while not stopping():
        for name, code in stack.reap():
            restart = supervisor.exited(name, time.monotonic())
            stack.log(f"{name} exited ({exit_reason(code)}); restarting it in {restart.delay_s:g}s "
                      f"(attempt {restart.attempt}; log: {stack.log_path(name)})")
        for name in supervisor.due(time.monotonic()):
            try:
                stack.respawn(name)
            except OSError as exc:
                restart = supervisor.exited(name, time.monotonic())
                stack.log(f"{name} could not be started ({exc}); trying again in {restart.delay_s:g}s")
            else:
                supervisor.started(name, time.monotonic())
        time.sleep(tick_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__)
    parser.add_argument("command", choices=["up"], help="start the whole stack in the foreground")
    parser.add_argument("--no-demo", action="store_true", help="do not post the demo items")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run", help="logs and data (default: .run/)")
    parser.add_argument("--port-shift", type=int, default=0, help="add this to every default port")
    parser.add_argument("--kafka-brokers", type=int, default=1, choices=range(1, MAX_KAFKA_BROKERS + 1),
                        metavar="N", help="Kafka nodes (KRaft, each broker and controller); 3: topics replicated "
                        "3 times, 2 in sync, so one can be lost (default: 1)")
    for service in SERVICES:
        parser.add_argument(f"--{service}", type=int, default=1, choices=range(1, MAX_INSTANCES + 1), metavar="N",
                            help=f"{service} instances, each on its own ports behind the gateway (default: 1)")
    args = parser.parse_args(argv)
    own_file = os.environ.get("LIVEFEED_CREDENTIALS_FILE")
    stack = Stack(
        topology=replace(Topology.shifted(args.port_shift), kafka_brokers=args.kafka_brokers,
                         ingest_instances=args.ingest, history_instances=args.history, fanout_instances=args.fanout),
        run_dir=args.run_dir.resolve(),
        token=os.environ.get("LIVEFEED_TOKEN") or (None if own_file else DEMO_TOKEN),
        credentials_file=Path(own_file).resolve() if own_file else None,
    )
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(stack.run_dir / "stack.lock", "a+")  # noqa: SIM115 - held for the life of the stack
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        print(f"livefeed is already running from {stack.run_dir} (pid {lock.read().strip() or '?'}); stop it "
              "with Ctrl-C in its terminal or `kill <pid>` before starting another.", file=sys.stderr)
        return 1
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        stack.start()
        if not args.no_demo and stack.token:
            stack.log(f"posted {post_demo_items(stack)} demo items")
        url = stack.topology.base_url
        print(
            f"""
livefeed is up ({time.monotonic() - started:.1f}s). Logs: {stack.run_dir / 'logs'}
  Reader page     {url}/feeds/world
  Newsroom        {url}/newsroom
  History API     {url}/api/history/docs
  Ingest API      {url}/api/ingest/docs
  Stream          ws://{stack.topology.host}:{stack.topology.gateway}/v1/feeds/world/stream
  Newsroom token  {stack.token or '(from ' + str(stack.credentials_path) + ')'}
  Credentials     {stack.credentials_path} (livefeed credentials add NAME --role editor --file ...)
Try: curl -X POST {url}/v1/feeds/world/items -H 'Authorization: Bearer {stack.token or "<token>"}' \\
       -H 'Content-Type: application/json' -d '{{"headline": "Hello", "urgency": "breaking"}}'
A process that exits is started again (pids in {stack.run_dir / 'pids'}). Press Ctrl-C to stop.""",
            flush=True,
        )
        supervise(stack, lambda: stopping)
    except RuntimeError as exc:
        print(f"livefeed: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.log("stopping")
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
