"""docker-compose.yml checked against the code, without a Docker engine.

Compose only meets the code when the stack starts, and a wrong name fails quietly there: the
settings classes ignore unknown LIVEFEED_* variables, so a typo just leaves a default in place.
These checks catch that here instead: the compose schema (docker-compose config), the entry
points, the settings names, the ports, the image's contents and the gateway template. Each
check returns its problems as text, and ``test_each_check_catches_a_broken_copy`` feeds each
one a deliberately broken copy of the files in a tmp dir to show that it can fail.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

import deploy.stack
from deploy.settings_table import env_name
from deploy.stack import REDIS_PERSISTENCE, Stack, Topology
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = "docker-compose.yml"
DOCKER_COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
CREDENTIALS_ENV = {"LIVEFEED_CREDENTIALS_DIR": "/srv/livefeed/credentials"}

UPSTREAM_PORTS = {
    "LIVEFEED_INGEST_SERVERS": "LIVEFEED_INGEST_PORT",
    "LIVEFEED_HISTORY_SERVERS": "LIVEFEED_HISTORY_PORT",
    "LIVEFEED_FANOUT_SERVERS": "LIVEFEED_FANOUT_PORT",
    "LIVEFEED_SSE_SERVERS": "LIVEFEED_FANOUT_SSE_PORT",
}


def upstream_servers(value: str | None) -> list[tuple[str, list[str]]]:
    """The ``server`` lines of a ``LIVEFEED_*_SERVERS`` value: (address, parameters) each."""
    return [(words[0], words[1:]) for line in (value or "").split(";") if (words := line.split()[1:])]
"""Which service port each gateway upstream must point at (as in Stack.start_gateway)."""

PROJECT_FILES = (
    COMPOSE,
    "pyproject.toml",
    "README.md",
    ".dockerignore",
    "deploy/Dockerfile",
    "deploy/nginx/livefeed.conf.template",
)
PACKAGES = ("shared", "services")
"""Copied into the broken copies too, for the package-data check."""


# -- reading the project ----------------------------------------------------------------------


_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution on every string of ``value``: ``${VAR}`` and ``${VAR:-default}``
    from ``env`` only, and ``$$`` for a literal ``$``. A required ``${VAR:?error}`` is left as written
    (check_credentials asks for one)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    def substitute(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        if kind == "?":
            return match.group(0)
        return env.get(name) or (default if kind == "-" else "")

    return "$".join(_VARIABLE.sub(substitute, part) for part in value.split("$$"))


@dataclass
class Project:
    """The deploy files of one checkout (the real one, or a broken copy under tmp_path)."""

    root: Path

    @property
    def compose(self) -> dict[str, Any]:
        """The compose file as compose reads it from an empty environment: every ``${VAR:-default}``
        (an image, the published port) takes its default."""
        data = interpolate(yaml.safe_load((self.root / COMPOSE).read_text()), {})
        assert isinstance(data, dict)
        return data

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services = self.compose.get("services") or {}
        assert isinstance(services, dict)
        return services

    @property
    def pyproject(self) -> dict[str, Any]:
        return tomllib.loads((self.root / "pyproject.toml").read_text())

    @property
    def scripts(self) -> dict[str, str]:
        scripts = self.pyproject["project"].get("scripts", {})
        assert isinstance(scripts, dict)
        return scripts

    def ours(self) -> dict[str, dict[str, Any]]:
        """The services built from this repository's image (the others are upstream images)."""
        return {name: svc for name, svc in self.services.items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping; list entries ``NAME=value`` or ``NAME`` too."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in env]
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def healthcheck_port(service: dict[str, Any]) -> int | None:
    test = (service.get("healthcheck") or {}).get("test") or []
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    match = re.search(r"://[^/:\s'\"]+:(\d+)/", text)
    return int(match.group(1)) if match else None


def settings_class(target: str) -> type[CommonSettings]:
    """The settings class an entry point ``module:function`` builds: the one its module imports."""
    module = importlib.import_module(target.split(":", 1)[0])
    found = {value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, CommonSettings) and value is not CommonSettings}
    assert len(found) == 1, f"{target}: expected one settings class in its module, found {found}"
    return found.pop()


def setting_names(cls: type[CommonSettings]) -> dict[str, str]:
    """``LIVEFEED_*`` name -> field name, for every field of ``cls``."""
    return {env_name(cls, field): field for field in cls.model_fields}


ENTRYPOINT_PLACEHOLDERS = {"NGINX_LOCAL_RESOLVERS": "NGINX_ENTRYPOINT_LOCAL_RESOLVERS"}
"""Placeholders the nginx image's entrypoint fills itself, when the variable named here is set."""


def template_placeholders(template: Path) -> set[str]:
    return set(re.findall(r"\$\{(LIVEFEED_\w+|NGINX_\w+)\}", template.read_text()))


def template_nginx_variables(template: Path) -> set[str]:
    text = re.sub(r"#[^\n]*", "", template.read_text())
    return set(re.findall(r"\$(\w+)", text))


def stack_template() -> Path:
    """The gateway template deploy/stack.py renders: the ``DEPLOY / ... / "*.template"`` path in it."""
    tree = ast.parse(inspect.getsource(deploy.stack))
    found: set[Path] = set()
    for node in ast.walk(tree):
        path = _deploy_path(node)
        if path is not None and path.name.endswith(".template"):
            found.add(path)
    assert len(found) == 1, f"deploy/stack.py: expected one template path, found {found}"
    return found.pop()


def _deploy_path(node: ast.AST) -> Path | None:
    if isinstance(node, ast.Name) and node.id == "DEPLOY":
        return deploy.stack.DEPLOY
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left = _deploy_path(node.left)
        if left is not None and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
            return left / node.right.value
    return None


def imported_top_level_packages(targets: list[str]) -> set[str]:
    """Top-level packages of this repository that importing the entry points loads."""
    return set(_imported_top_level_packages(tuple(sorted(targets))))


@functools.cache
def _imported_top_level_packages(targets: tuple[str, ...]) -> frozenset[str]:
    code = (
        "import importlib, json, sys\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[1])\n"
        "for name in sys.argv[2:]: importlib.import_module(name)\n"
        "found = set()\n"
        "for name, module in list(sys.modules.items()):\n"
        "    file = getattr(module, '__file__', None)\n"
        "    if not file: continue\n"
        "    path = Path(file).resolve()\n"
        "    if path.is_relative_to(root) and not path.is_relative_to(root / '.venv'):\n"
        "        found.add(path.relative_to(root).parts[0])\n"
        "print(json.dumps(sorted(found)))\n"
    )
    modules = [target.split(":", 1)[0] for target in targets]
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), *modules], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return frozenset(json.loads(out))


# -- the checks: each returns a list of problems ------------------------------------------------


def check_commands(project: Project) -> list[str]:
    """Every service built from our image runs a [project.scripts] entry point that imports."""
    problems = []
    scripts = project.scripts
    ours = project.ours()
    if not ours:
        problems.append("no service is built from deploy/Dockerfile")
    for name, service in ours.items():
        cmd = command(service)
        if len(cmd) != 1 or cmd[0] not in scripts:
            problems.append(f"{name}: command {cmd} is not one [project.scripts] entry point")
            continue
        target = scripts[cmd[0]]
        module_name, _, function = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            problems.append(f"{name}: entry point {target} does not import: {exc}")
            continue
        if not callable(getattr(module, function, None)):
            problems.append(f"{name}: entry point {target} has no callable {function}")
    return problems


def check_settings(project: Project) -> list[str]:
    """Every LIVEFEED_* name in compose is read by the service it is set on.

    Our services: a field of the settings class their entry point builds, with every listen
    address 0.0.0.0. The gateway: exactly the template's placeholders. Anything else: none.
    """
    problems = []
    scripts = project.scripts
    template = stack_template()
    for name, service in project.services.items():
        env = environment(service)
        livefeed = {key for key in env if key.startswith("LIVEFEED_")}
        if name in project.ours():
            cmd = command(service)
            if not cmd or cmd[0] not in scripts:
                continue  # check_commands reports it
            names = setting_names(settings_class(scripts[cmd[0]]))
            for key in sorted(livefeed - names.keys()):
                problems.append(f"{name}: {key} is not a setting of the {name} service")
            for key, field in names.items():
                if field.endswith("_host") and env.get(key) != "0.0.0.0":
                    problems.append(f"{name}: {key} must be 0.0.0.0 so other containers reach it")
        elif _mounts(service, project.root, template):
            placeholders = template_placeholders(template)
            for key in sorted(livefeed - placeholders):
                problems.append(f"{name}: {key} is not a placeholder of {template.name}")
            for key in sorted(placeholders - livefeed):
                if key in ENTRYPOINT_PLACEHOLDERS and env.get(ENTRYPOINT_PLACEHOLDERS[key]):
                    continue
                problems.append(f"{name}: placeholder {key} of {template.name} is not set")
        elif livefeed:
            problems.append(f"{name}: sets {sorted(livefeed)} but runs no livefeed code")
    return problems


def check_ports(project: Project) -> list[str]:
    """Ports agree: settings, expose, healthchecks, gateway upstreams, and deploy/stack.py."""
    problems = []
    services = project.services
    scripts = project.scripts
    local = Stack(topology=Topology()).env()
    port_owner: dict[str, tuple[str, str | None]] = {}
    for name, service in project.ours().items():
        env = environment(service)
        cmd = command(service)
        if not cmd or cmd[0] not in scripts:
            continue
        names = setting_names(settings_class(scripts[cmd[0]]))
        ports = {key: env.get(key) for key, field in names.items() if field.endswith("_port")}
        for key, value in ports.items():
            port_owner[key] = (name, value)
            if value is None or not value.isdigit():
                problems.append(f"{name}: {key} must be set to a port number, not {value!r}")
            elif key in local and value != local[key]:
                problems.append(f"{name}: {key}={value} but deploy/stack.py uses {local[key]}")
        exposed = {str(port) for port in service.get("expose") or []}
        declared = {value for value in ports.values() if value is not None}
        if exposed != declared:
            problems.append(f"{name}: expose {sorted(exposed)} differs from its ports {sorted(declared)}")
        health = healthcheck_port(service)
        if health is None or str(health) not in declared:
            problems.append(f"{name}: healthcheck port {health} is not one of its ports {sorted(declared)}")
    template = stack_template()
    for name, service in services.items():
        if not _mounts(service, project.root, template):
            continue
        env = environment(service)
        for key, value in env.items():
            if not key.endswith("_SERVERS"):
                continue
            if key not in UPSTREAM_PORTS:
                problems.append(f"{name}: no known service port for {key}")
                continue
            owner, port = port_owner.get(UPSTREAM_PORTS[key], ("?", None))
            if [address for address, _ in upstream_servers(value)] != [f"{owner}:{port}"]:
                problems.append(f"{name}: {key}={value} but {UPSTREAM_PORTS[key]} is {owner}:{port}")
            elif any("resolve" not in params for _, params in upstream_servers(value)):
                problems.append(f"{name}: {key}={value} is resolved once: a scaled service needs `resolve`")
        gateway_port = env.get("LIVEFEED_GATEWAY_PORT")
        published = {str(p).rsplit(":", 1)[-1].split("/")[0] if not isinstance(p, dict) else str(p["target"])
                     for p in service.get("ports") or []}
        if gateway_port not in published:
            problems.append(f"{name}: LIVEFEED_GATEWAY_PORT={gateway_port} is not a published container port")
        if healthcheck_port(service) is None or str(healthcheck_port(service)) != gateway_port:
            problems.append(f"{name}: healthcheck port {healthcheck_port(service)} is not {gateway_port}")
    return problems


def check_dependencies(project: Project) -> list[str]:
    """Kafka and Redis URLs name compose services; each dependency is waited for until healthy."""
    problems = []
    services = project.services
    template = stack_template()
    for name, service in services.items():
        env = environment(service)
        needs: set[str] = set()
        bootstrap = env.get("LIVEFEED_KAFKA_BOOTSTRAP")
        if bootstrap:
            for address in bootstrap.split(","):
                host, _, port = address.strip().rpartition(":")
                kafka = services.get(host)
                advertised = environment(kafka or {}).get("KAFKA_ADVERTISED_LISTENERS") or ""
                if kafka is None or f"//{host}:{port}" not in advertised:
                    problems.append(f"{name}: LIVEFEED_KAFKA_BOOTSTRAP {address} is no advertised Kafka listener")
                needs.add(host)
        redis_url = env.get("LIVEFEED_REDIS_URL")
        if redis_url:
            match = re.match(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", redis_url)
            host = match.group(1) if match else ""
            redis = services.get(host)
            port = (match.group(2) if match else None) or "6379"
            redis_cmd = command(redis or {})
            redis_port = redis_cmd[redis_cmd.index("--port") + 1] if "--port" in redis_cmd else "6379"
            if redis is None or port != redis_port:
                problems.append(f"{name}: LIVEFEED_REDIS_URL {redis_url} is no Redis service of this file")
            needs.add(host)
        if _mounts(service, project.root, template):
            for key, value in env.items():
                if key.endswith("_SERVERS") and value:
                    needs.update(address.split(":", 1)[0] for address, _ in upstream_servers(value))
        depends = service.get("depends_on") or {}
        for dependency in sorted(needs):
            condition = depends.get(dependency, {}).get("condition") if isinstance(depends, dict) else None
            if condition != "service_healthy":
                problems.append(f"{name}: must depend on {dependency} with condition service_healthy")
        for dependency in depends:
            if "healthcheck" not in services.get(dependency, {}):
                problems.append(f"{name}: waits for {dependency}, which has no healthcheck")
    return problems


def check_scaling(project: Project) -> list[str]:
    """Nothing pins a container name, and our services publish no host port, so --scale works."""
    problems = []
    for name, service in project.services.items():
        if "container_name" in service:
            problems.append(f"{name}: container_name stops `docker compose up --scale {name}=N`")
    for name, service in project.ours().items():
        if service.get("ports"):
            problems.append(f"{name}: a published host port collides when {name} is scaled")
    return problems


LOCK = "deploy/requirements/app.txt"
"""The image installs its dependencies from the lock, so it must copy it."""


def check_image(project: Project) -> list[str]:
    """The Dockerfile copies the lock and what `pip install .` and the entry points need; .dockerignore keeps it."""
    problems = []
    dockerfiles = set()
    for name, service in project.ours().items():
        build = service["build"]
        context = project.root / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if not dockerfile.is_file():
            problems.append(f"{name}: builds from {dockerfile}, which does not exist")
            continue
        dockerfiles.add((context, dockerfile))
    scripts = project.scripts
    targets = [scripts[cmd[0]] for svc in project.ours().values() if (cmd := command(svc)) and cmd[0] in scripts]
    needed = {"pyproject.toml", LOCK, *imported_top_level_packages(targets)}
    readme = project.pyproject["project"].get("readme")
    if isinstance(readme, str):
        needed.add(readme)
    for context, dockerfile in sorted(dockerfiles):
        copied, users = _dockerfile_copies(dockerfile.read_text())
        for path in sorted(needed):
            if not any(source in {path, f"{path}/", ".", "./"} for source in copied):
                problems.append(f"{dockerfile.name}: does not COPY {path}")
        if not users or users[-1] in {"root", "0"}:
            problems.append(f"{dockerfile.name}: the image must end with a non-root USER")
        ignore = context / ".dockerignore"
        patterns = [line.strip() for line in ignore.read_text().splitlines()
                    if line.strip() and not line.startswith("#")] if ignore.exists() else []
        for path in sorted(needed):
            for pattern in patterns:
                if not pattern.startswith("!") and fnmatch.fnmatch(path, pattern.rstrip("/")):
                    problems.append(f".dockerignore: {pattern} keeps {path} out of the build context")
    return problems


def check_package_data(project: Project) -> list[str]:
    """Every non-Python file in the installed packages is package-data, or `pip install .` drops it.

    The image installs a wheel, not the checkout: a file setuptools is not told about (static
    pages, demo data) exists locally but is missing in the container.
    """
    problems = []
    scripts = project.scripts
    targets = [scripts[cmd[0]] for svc in project.ours().values() if (cmd := command(svc)) and cmd[0] in scripts]
    declared = project.pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for top in sorted(imported_top_level_packages(targets)):
        for path in sorted((project.root / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in {".py", ".pyc"}:
                continue
            package = path.parent
            while not (package / "__init__.py").exists() and package != project.root:
                package = package.parent
            dotted = ".".join(package.relative_to(project.root).parts)
            relative = path.relative_to(package).as_posix()
            patterns = [*declared.get(dotted, []), *declared.get("*", []), *declared.get("", [])]
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                problems.append(f"pyproject.toml: {path.relative_to(project.root)} is not package-data of "
                                f"{dotted}, so the image lacks it")
    return problems


def check_gateway(project: Project) -> list[str]:
    """The gateway mounts deploy/stack.py's template where the nginx image renders templates."""
    problems = []
    template = stack_template()
    gateways = [name for name, svc in project.services.items() if _mounts(svc, project.root, template)]
    if len(gateways) != 1:
        return [f"expected one service mounting {template.relative_to(ROOT)}, found {gateways}"]
    service = project.services[gateways[0]]
    target = _template_target(service, project.root, template) or ""
    if not (target.startswith("/etc/nginx/templates/") and target.endswith(".template")):
        problems.append(f"gateway: {target} is not a *.template under /etc/nginx/templates/")
    env = environment(service)
    pattern = env.get("NGINX_ENVSUBST_FILTER")
    if not pattern:
        problems.append("gateway: NGINX_ENVSUBST_FILTER is unset, so envsubst may rewrite nginx variables")
        return problems
    for name in sorted(template_placeholders(template)):
        if not re.search(pattern, name):
            problems.append(f"gateway: NGINX_ENVSUBST_FILTER {pattern!r} leaves {name} unfilled")
    for name in sorted(template_nginx_variables(template)):
        if re.search(pattern, name):
            problems.append(f"gateway: NGINX_ENVSUBST_FILTER {pattern!r} would substitute ${name}")
    return problems


def healthcheck_path(service: dict[str, Any]) -> str | None:
    test = (service.get("healthcheck") or {}).get("test") or []
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    match = re.search(r"://[^/:\s'\"]+:\d+(/[^\s'\"?]*)", text)
    return match.group(1) if match else None


def check_observability(project: Project) -> list[str]:
    """Health checks ask /readyz on a service port, and no gateway upstream is a metrics port.

    (check_settings and check_ports already make every metrics port set, exposed and on 0.0.0.0.)

    /healthz says only that the process answers: a service waiting for Kafka or rebuilding from it
    would be "healthy", and the gateway would start in front of it. Metrics stay inside the network.
    """
    problems = []
    metrics_ports: dict[str, str] = {}
    for name, service in project.ours().items():
        env = environment(service)
        path = healthcheck_path(service)
        if path != "/readyz":
            problems.append(f"{name}: healthcheck asks {path}, not /readyz")
        for key, value in env.items():
            if key.endswith("_METRICS_PORT") and value:
                metrics_ports[f"{name}:{value}"] = key
                if str(healthcheck_port(service)) == value:
                    problems.append(f"{name}: healthcheck on its metrics port {value}")
    template = stack_template()
    for name, service in project.services.items():
        if _mounts(service, project.root, template):
            for key, value in environment(service).items():
                for address, _ in upstream_servers(value) if key.endswith("_SERVERS") else []:
                    if address in metrics_ports:
                        problems.append(f"{name}: {key} {address} sends public traffic to {metrics_ports[address]}")
    return problems


def check_redis(project: Project) -> list[str]:
    """Redis persists as the local runner's does (deploy.stack.REDIS_PERSISTENCE), into a named volume.

    Without it a Redis restart forgets every Idempotency-Key, and a newsroom retry posts twice.
    """
    redis = [name for name, svc in project.services.items() if str(svc.get("image", "")).startswith("redis:")]
    if len(redis) != 1:
        return [f"expected one service running the redis image, found {redis}"]
    name, service = redis[0], project.services[redis[0]]
    cmd = command(service)
    options = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    problems = [f"{name}: {option} is {options.get(option)!r}, deploy/stack.py runs Redis with {value!r}"
                for option, value in zip(REDIS_PERSISTENCE[::2], REDIS_PERSISTENCE[1::2], strict=True)
                if options.get(option) != value]
    data_dir = options.get("--dir", "/data")
    named = set(project.compose.get("volumes") or {})
    mounts = [str(v).split(":") for v in service.get("volumes") or []]
    if not any(len(m) >= 2 and m[0] in named and m[1] == data_dir for m in mounts):
        problems.append(f"{name}: its --dir {data_dir} is not on a named volume, so a new container starts empty")
    return problems


def _volumes(service: dict[str, Any], root: Path) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        else:
            parts = str(volume).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        if source.startswith((".", "/")):
            mounts.append((Path(os.path.normpath(root / source)), target))
    return mounts


def _template_target(service: dict[str, Any], root: Path, template: Path) -> str | None:
    """Where ``service`` mounts ``template`` (a file of the checkout at ROOT), in the checkout at ``root``."""
    wanted = root / template.relative_to(ROOT)
    return next((target for source, target in _volumes(service, root) if source == wanted), None)


def _mounts(service: dict[str, Any], root: Path, template: Path) -> bool:
    return _template_target(service, root, template) is not None


def _dockerfile_copies(text: str) -> tuple[list[str], list[str]]:
    """The sources of every COPY/ADD (not from another stage), and every USER, in order."""
    text = re.sub(r"\\\n", " ", text)
    copied: list[str] = []
    users: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction in {"COPY", "ADD"}:
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]):
                continue
            copied.extend(arg.rstrip("/") or "/" for arg in args[:-1])
        elif instruction == "USER" and len(words) > 1:
            users.append(words[1].split(":")[0])
    return copied, users


def _mount_targets(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each of a service's volumes, its source as written (``${VAR:?…}`` kept)."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume.get("target", ""))))
            continue
        parts = str(volume).rsplit(":", 2)
        if parts[-1] in ("ro", "rw") and len(parts) == 3:
            parts = parts[:-1]
        source, _, target = ":".join(parts).rpartition(":")
        mounts.append((source, target))
    return mounts


def check_credentials(project: Project) -> list[str]:
    """Ingest gets its credentials file, inside a mounted folder that the operator must name.

    A folder, not the file: ``livefeed credentials add`` renames a new file over the old one, which
    a single-file bind mount never shows to the container, so ingest would keep the old credentials.
    """
    problems = []
    for name, service in project.ours().items():
        path = environment(service).get("LIVEFEED_CREDENTIALS_FILE")
        if path is None:
            if command(service)[:1] == ["livefeed-ingest"]:
                problems.append(f"{name}: LIVEFEED_CREDENTIALS_FILE is not set, and ingest refuses to start without it")
            continue
        folder = str(PurePosixPath(path).parent)
        sources = [source for source, target in _mount_targets(service) if target.rstrip("/") == folder]
        if not sources:
            problems.append(f"{name}: LIVEFEED_CREDENTIALS_FILE={path} is not in a mounted folder")
        elif not all(re.fullmatch(r"\$\{LIVEFEED_\w+:\?[^}]+\}", source) for source in sources):
            problems.append(f"{name}: the credentials folder {sources} is not a required variable (${{NAME:?message}})")
    return problems


CHECKS: dict[str, Callable[[Project], list[str]]] = {
    "commands": check_commands,
    "settings": check_settings,
    "ports": check_ports,
    "dependencies": check_dependencies,
    "scaling": check_scaling,
    "credentials": check_credentials,
    "image": check_image,
    "package_data": check_package_data,
    "gateway": check_gateway,
    "redis": check_redis,
    "observability": check_observability,
}


# -- the tests --------------------------------------------------------------------------------


def compose_config(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not Path(DOCKER_COMPOSE).exists():
        pytest.fail("docker-compose is not installed: run deploy/install.sh --test")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
    return subprocess.run([DOCKER_COMPOSE, "-f", str(root / COMPOSE), "config", "-q"], cwd=root,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid() -> None:
    result = compose_config(ROOT, CREDENTIALS_ENV)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_credentials_folder() -> None:
    result = compose_config(ROOT, {})
    assert result.returncode != 0
    assert "LIVEFEED_CREDENTIALS_DIR" in result.stderr


@pytest.mark.parametrize("check", CHECKS)
def test_compose_agrees_with_the_code(check: str) -> None:
    assert CHECKS[check](Project(ROOT)) == []


# -- each check can fail: broken copies -------------------------------------------------------


@pytest.fixture
def copy_project(tmp_path: Path) -> Project:
    for name in PROJECT_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return Project(tmp_path)


def _edit_compose(project: Project, edit: Callable[[dict[str, Any]], object]) -> None:
    data = yaml.safe_load((project.root / COMPOSE).read_text())
    edit(data)
    (project.root / COMPOSE).write_text(yaml.safe_dump(data, sort_keys=False))


def _edit_text(project: Project, name: str, old: str, new: str) -> None:
    path = project.root / name
    text = path.read_text()
    assert old in text, f"{name} no longer contains {old!r}; update this test"
    path.write_text(text.replace(old, new))


def _env(data: dict[str, Any], service: str) -> dict[str, Any]:
    env = data["services"][service]["environment"]
    assert isinstance(env, dict)
    return env


BROKEN: list[tuple[str, str, Callable[[Project], object], str]] = [
    ("credentials", "ingest without its credentials file",
     lambda p: _edit_compose(p, lambda d: _env(d, "ingest").pop("LIVEFEED_CREDENTIALS_FILE")),
     "ingest: LIVEFEED_CREDENTIALS_FILE is not set"),
    ("credentials", "the credentials file mounted as a file",
     lambda p: _edit_compose(p, lambda d: d["services"]["ingest"].update(
         volumes=["${LIVEFEED_CREDENTIALS_DIR:?x}/credentials.json:/run/livefeed/credentials/credentials.json"])),
     "is not in a mounted folder"),
    ("credentials", "a credentials folder nobody has to name",
     lambda p: _edit_compose(p, lambda d: d["services"]["ingest"].update(
         volumes=["./credentials:/run/livefeed/credentials"])),
     "is not a required variable"),
    ("commands", "unknown script",
     lambda p: _edit_compose(p, lambda d: d["services"]["fanout"].update(command=["livefeed-fanin"])),
     "fanout: command ['livefeed-fanin']"),
    ("commands", "script that does not import",
     lambda p: _edit_text(p, "pyproject.toml", '"services.history.main:main"', '"services.history.nope:main"'),
     "history: entry point services.history.nope:main does not import"),
    ("settings", "misspelt setting",
     lambda p: _edit_compose(p, lambda d: _env(d, "fanout").update(LIVEFEED_FANOUT_BUFFERS="10")),
     "fanout: LIVEFEED_FANOUT_BUFFERS is not a setting"),
    ("settings", "another service's setting",
     lambda p: _edit_compose(p, lambda d: _env(d, "history").update(LIVEFEED_CREDENTIALS_FILE="/c.json")),
     "history: LIVEFEED_CREDENTIALS_FILE is not a setting"),
    ("settings", "listening on loopback",
     lambda p: _edit_compose(p, lambda d: _env(d, "ingest").update(LIVEFEED_INGEST_HOST="127.0.0.1")),
     "ingest: LIVEFEED_INGEST_HOST must be 0.0.0.0"),
    ("settings", "gateway placeholder missing",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").pop("LIVEFEED_SSE_SERVERS")),
     "placeholder LIVEFEED_SSE_SERVERS"),
    ("settings", "LIVEFEED_* on a service that runs none of our code",
     lambda p: _edit_compose(p, lambda d: d["services"]["redis"].update(environment={"LIVEFEED_X": "1"})),
     "redis: sets ['LIVEFEED_X']"),
    ("ports", "port differs from the local runner",
     lambda p: _edit_compose(p, lambda d: (_env(d, "history").update(LIVEFEED_HISTORY_PORT="9002"),
                                           d["services"]["history"].update(expose=["9002"]))),
     "history: LIVEFEED_HISTORY_PORT=9002 but deploy/stack.py uses 8002"),
    ("ports", "expose differs",
     lambda p: _edit_compose(p, lambda d: d["services"]["fanout"].update(expose=["8003"])),
     "fanout: expose ['8003'] differs"),
    ("ports", "healthcheck on the wrong port",
     lambda p: _edit_text(p, COMPOSE, "127.0.0.1:8001/readyz", "127.0.0.1:8002/readyz"),
     "ingest: healthcheck port 8002"),
    ("ports", "upstream to the wrong port",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").update(
         LIVEFEED_SSE_SERVERS="server fanout:8003 resolve;")),
     "LIVEFEED_SSE_SERVERS=server fanout:8003 resolve; but LIVEFEED_FANOUT_SSE_PORT is fanout:8004"),
    ("ports", "replicas resolved once",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").update(LIVEFEED_FANOUT_SERVERS="server fanout:8003;")),
     "LIVEFEED_FANOUT_SERVERS=server fanout:8003; is resolved once"),
    ("ports", "gateway port not published",
     lambda p: _edit_compose(p, lambda d: d["services"]["gateway"].update(ports=["80:80"])),
     "LIVEFEED_GATEWAY_PORT=8080 is not a published container port"),
    ("dependencies", "bootstrap names no service",
     lambda p: _edit_compose(p, lambda d: _env(d, "ingest").update(LIVEFEED_KAFKA_BOOTSTRAP="broker:9092")),
     "ingest: LIVEFEED_KAFKA_BOOTSTRAP broker:9092"),
    ("dependencies", "redis on the wrong port",
     lambda p: _edit_compose(p, lambda d: _env(d, "history").update(LIVEFEED_REDIS_URL="redis://redis:6380/0")),
     "history: LIVEFEED_REDIS_URL redis://redis:6380/0"),
    ("dependencies", "not waiting for a healthy dependency",
     lambda p: _edit_compose(p, lambda d: d["services"]["history"]["depends_on"].pop("redis")),
     "history: must depend on redis"),
    ("dependencies", "waiting for a service without healthcheck",
     lambda p: _edit_compose(p, lambda d: d["services"]["kafka"].pop("healthcheck")),
     "waits for kafka, which has no healthcheck"),
    ("scaling", "container_name",
     lambda p: _edit_compose(p, lambda d: d["services"]["fanout"].update(container_name="fanout")),
     "fanout: container_name"),
    ("scaling", "host port on a scalable service",
     lambda p: _edit_compose(p, lambda d: d["services"]["history"].update(ports=["8002:8002"])),
     "history: a published host port"),
    ("image", "package not copied",
     lambda p: _edit_text(p, "deploy/Dockerfile", "COPY shared ./shared\n", ""),
     "does not COPY shared"),
    ("image", "pyproject.toml not copied",
     lambda p: _edit_text(p, "deploy/Dockerfile", "COPY pyproject.toml README.md ./", "COPY README.md ./"),
     "does not COPY pyproject.toml"),
    ("image", "running as root",
     lambda p: _edit_text(p, "deploy/Dockerfile", "USER livefeed", "USER root"),
     "non-root USER"),
    ("image", "lock not copied",
     lambda p: _edit_text(p, "deploy/Dockerfile", "COPY deploy/requirements/app.txt ./requirements.txt\n", ""),
     "does not COPY deploy/requirements/app.txt"),
    ("image", "package ignored",
     lambda p: (p.root / ".dockerignore").write_text("services\n"),
     ".dockerignore: services keeps services out"),
    ("package_data", "data file setuptools is not told about",
     lambda p: (p.root / "shared" / "schema.json").write_text("{}"),
     "shared/schema.json is not package-data of shared"),
    ("gateway", "another template mounted",
     lambda p: _edit_text(p, COMPOSE, "./deploy/nginx/livefeed.conf.template:", "./deploy/nginx/other.conf.template:"),
     "expected one service mounting"),
    ("gateway", "mounted outside the templates folder",
     lambda p: _edit_text(p, COMPOSE, ":/etc/nginx/templates/livefeed.conf.template", ":/etc/nginx/conf.d/x.conf"),
     "is not a *.template under /etc/nginx/templates/"),
    ("gateway", "no envsubst filter",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").pop("NGINX_ENVSUBST_FILTER")),
     "NGINX_ENVSUBST_FILTER is unset"),
    ("gateway", "filter that catches nginx variables",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").update(NGINX_ENVSUBST_FILTER=".")),
     "would substitute $http_host"),
    ("settings", "no resolver for the replicas",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").pop("NGINX_ENTRYPOINT_LOCAL_RESOLVERS")),
     "placeholder NGINX_LOCAL_RESOLVERS of livefeed.conf.template is not set"),
    ("observability", "liveness instead of readiness",
     lambda p: _edit_text(p, COMPOSE, "127.0.0.1:8002/readyz", "127.0.0.1:8002/healthz"),
     "history: healthcheck asks /healthz, not /readyz"),
    ("observability", "metrics behind the gateway",
     lambda p: _edit_compose(p, lambda d: _env(d, "gateway").update(
         LIVEFEED_HISTORY_SERVERS="server history:9201 resolve;")),
     "LIVEFEED_HISTORY_SERVERS history:9201 sends public traffic to LIVEFEED_HISTORY_METRICS_PORT"),
    ("observability", "healthcheck on the metrics port",
     lambda p: _edit_text(p, COMPOSE, "127.0.0.1:8003/readyz", "127.0.0.1:9301/readyz"),
     "fanout: healthcheck on its metrics port 9301"),
    ("ports", "metrics port not exposed",
     lambda p: _edit_compose(p, lambda d: d["services"]["ingest"].update(expose=["8001"])),
     "ingest: expose ['8001'] differs"),
    ("settings", "metrics on loopback",
     lambda p: _edit_compose(p, lambda d: _env(d, "fanout").update(LIVEFEED_METRICS_HOST="127.0.0.1")),
     "fanout: LIVEFEED_METRICS_HOST must be 0.0.0.0"),
    ("redis", "no append-only file",
     lambda p: _edit_compose(p, lambda d: d["services"]["redis"].update(
         command=["redis-server", "--appendonly", "no", "--save", ""])),
     "redis: --appendonly is 'no'"),
    ("redis", "data dir off the volume",
     lambda p: _edit_compose(p, lambda d: d["services"]["redis"].update(volumes=["redis-data:/var/lib/redis"])),
     "redis: its --dir /data is not on a named volume"),
]


@pytest.mark.parametrize(("check", "what", "breakage", "expected"), BROKEN, ids=[f"{c}-{w}" for c, w, _, _ in BROKEN])
def test_each_check_catches_a_broken_copy(
    copy_project: Project, check: str, what: str, breakage: Callable[[Project], object], expected: str
) -> None:
    assert CHECKS[check](copy_project) == [], "the unbroken copy must pass"
    breakage(copy_project)
    problems = CHECKS[check](copy_project)
    assert any(expected in problem for problem in problems), f"{what}: {expected!r} not in {problems}"


def test_compose_config_catches_a_broken_copy(copy_project: Project) -> None:
    _edit_compose(copy_project, lambda d: d["services"]["kafka"].update(healthcheck={"test": 1, "interval": "soon"}))
    result = compose_config(copy_project.root, CREDENTIALS_ENV)
    assert result.returncode != 0
    assert "healthcheck" in result.stderr
