"""deploy/k8s/ checked without a cluster: the schemas, and the code and compose file they must agree with.

No cluster runs here, so a manifest only meets Kubernetes on someone's ``kubectl apply``. These
checks catch here what would fail or quietly misbehave there: every core resource against the
Kubernetes API's own schema with ``kubernetes-validate --strict`` (unknown fields refused), and
the properties no schema sees (readiness on /readyz, ports and settings that match the code and
docker-compose.yml, graceful termination, the Strimzi resources against the settings). Each check
returns its problems as text; ``test_each_check_catches_a_broken_copy`` feeds each one a broken
copy of the manifests to show that it can fail.

kubernetes-validate knows only the built-in kinds: for a custom resource it finds no schema and
just warns (the CLI still exits 0), and it has no option to load other schemas. So the Strimzi
resources are checked by ``check_strimzi`` instead, field by field. Strimzi publishes its CRD
schemas only in its own repository, not in any package this project installs from a registry, so
the suite cannot validate against them offline; they were validated by hand once (deploy/k8s/README.md).
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from deploy.stack import Stack, Topology
from shared.kafka import min_insync_replicas
from shared.settings import CommonSettings
from tests.deploy.test_compose import (
    Project as ComposeProject,
)
from tests.deploy.test_compose import (
    environment as compose_environment,
)
from tests.deploy.test_compose import (
    setting_names,
    settings_class,
    stack_template,
    template_nginx_variables,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = "deploy/k8s"
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
"""The oldest Kubernetes the manifests are for (the preStop sleep action is on by default from 1.30) and the newest
kubernetes-validate knows."""
CUSTOM_GROUPS = ("kafka.strimzi.io/",)
"""API groups of custom resources: kubernetes-validate has no schema for them (check_strimzi checks them)."""
GATEWAY_CONFIGMAP = "livefeed-gateway"
PRE_STOP_S = 5
IMAGE_UID = 10001
"""The uid of the image's user (deploy/Dockerfile)."""

UPSTREAM_PORTS = {
    "LIVEFEED_INGEST_SERVERS": "LIVEFEED_INGEST_PORT",
    "LIVEFEED_HISTORY_SERVERS": "LIVEFEED_HISTORY_PORT",
    "LIVEFEED_FANOUT_SERVERS": "LIVEFEED_FANOUT_PORT",
    "LIVEFEED_SSE_SERVERS": "LIVEFEED_FANOUT_SSE_PORT",
}
"""The service port each gateway upstream must reach."""
ENTRYPOINT_FILLED = {"NGINX_LOCAL_RESOLVERS": "NGINX_ENTRYPOINT_LOCAL_RESOLVERS"}
"""Template placeholders the nginx image's entrypoint fills itself when the variable named here is set."""
CLUSTER_DOMAIN = "svc.cluster.local"

COPIED = (K8S, "docker-compose.yml", "deploy/nginx", "deploy/Dockerfile")
"""What a broken copy holds."""


# -- reading the manifests --------------------------------------------------------------------


@dataclass
class Manifests:
    """The manifests of one checkout (the real one, or a broken copy under tmp_path)."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root / K8S

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("*.yaml") if p.name != "kustomization.yaml")

    def documents(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every resource with its file; shared between calls, so a check must not change one."""
        for path in self.files():
            for doc in _parse(path.read_text()):
                yield path, doc

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return {doc["metadata"]["name"]: doc for _, doc in self.documents() if doc.get("kind") == kind}

    @property
    def kustomization(self) -> dict[str, Any]:
        data = yaml.safe_load((self.folder / "kustomization.yaml").read_text())
        assert isinstance(data, dict)
        return data

    @property
    def readme(self) -> str:
        return (self.folder / "README.md").read_text()

    def compose(self) -> ComposeProject:
        return ComposeProject(self.root)

    def config(self) -> dict[str, str]:
        """The data of every ConfigMap in the manifests, by ``name/key``."""
        return {f"{name}/{key}": str(value) for name, cm in self.of_kind("ConfigMap").items()
                for key, value in (cm.get("data") or {}).items()}


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    result: dict[str, Any] = containers[0]
    return result


def env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``name -> the env entry`` (with ``value`` or ``valueFrom``)."""
    return {item["name"]: item for item in container(deployment).get("env") or []}


def env_values(deployment: dict[str, Any]) -> dict[str, str]:
    return {name: str(item["value"]) for name, item in env(deployment).items() if "value" in item}


def is_ours(deployment: dict[str, Any]) -> bool:
    """Runs the livefeed image (one of its console scripts); the others are upstream images."""
    return str(container(deployment).get("image", "")).split(":")[0] == "livefeed"


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"].get("labels") or {}
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_ports(deployment: dict[str, Any]) -> dict[str, int]:
    """``name -> containerPort`` (unnamed ports under their number)."""
    return {str(p.get("name", p["containerPort"])): int(p["containerPort"])
            for p in container(deployment).get("ports") or []}


def resolve_port(deployment: dict[str, Any], port: object) -> int | None:
    """A probe's or a Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    return container_ports(deployment).get(str(port))


def main_port_setting(deployment: dict[str, Any]) -> str | None:
    """The ``LIVEFEED_<SERVICE>_PORT`` a livefeed Deployment listens on for HTTP (fanout: its WebSocket port)."""
    names = [n for n in env_values(deployment) if re.fullmatch(r"LIVEFEED_(INGEST|HISTORY|FANOUT)_PORT", n)]
    return names[0] if len(names) == 1 else None


def scripts(manifests: Manifests) -> dict[str, str]:
    return manifests.compose().scripts


def template_placeholders(template: Path) -> set[str]:
    """The ``${LIVEFEED_*}`` and ``${NGINX_*}`` names the nginx image's envsubst must fill."""
    return set(re.findall(r"\$\{((?:LIVEFEED|NGINX)_\w+)\}", template.read_text()))


def upstream_servers(value: str) -> list[tuple[str, list[str]]]:
    """The ``server`` lines of a ``LIVEFEED_*_SERVERS`` value: (address, parameters) each."""
    return [(words[1], words[2:]) for line in value.split(";") if len(words := line.split()) > 1]


# -- the checks: each returns a list of problems ------------------------------------------------


def check_schemas(manifests: Manifests) -> list[str]:
    """Every core resource passes kubernetes-validate --strict, for the oldest and newest Kubernetes we support.

    A kind with no schema is a problem here, not the tool's warning: it would otherwise pass unchecked.
    """
    problems = []
    for path, doc in manifests.documents():
        if str(doc.get("apiVersion", "")).startswith(CUSTOM_GROUPS):
            continue
        where = f"{path.name}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                field = ".".join(str(part) for part in exc.path)
                problems.append(f"{where} (Kubernetes {version}): {field}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{where}: {exc.message}")
    return problems


def check_kustomization(manifests: Manifests) -> list[str]:
    """kustomization.yaml lists every manifest (and only those), and names the image our Deployments run."""
    problems = []
    kustomization = manifests.kustomization
    listed = set(kustomization.get("resources") or [])
    present = {path.name for path in manifests.files()}
    for name in sorted(present - listed):
        problems.append(f"kustomization.yaml: {name} is not in resources, so kubectl apply -k leaves it out")
    for name in sorted(listed - present):
        problems.append(f"kustomization.yaml: resource {name} does not exist")
    images = {image.get("name") for image in kustomization.get("images") or []}
    for name, deployment in manifests.of_kind("Deployment").items():
        image = str(container(deployment).get("image", ""))
        if is_ours(deployment) and image not in images:
            problems.append(f"{name}: image {image} is not set by kustomization.yaml images (registry and tag)")
    if not kustomization.get("namespace"):
        problems.append("kustomization.yaml: no namespace")
    return problems


def check_probes(manifests: Manifests) -> list[str]:
    """Every Deployment has a readiness probe; ours ask /readyz, and /healthz for liveness, on their HTTP port.

    /healthz says only that the process answers: a pod waiting for Kafka or rebuilding from it would
    get traffic. The gateway's probe is a TCP one: its /healthz is history's, and a gateway whose
    history is down must stay in the Ingress to serve streams and the micro-cache's stale copies.
    """
    problems = []
    for name, deployment in manifests.of_kind("Deployment").items():
        spec = container(deployment)
        readiness = spec.get("readinessProbe")
        if not readiness:
            problems.append(f"{name}: no readinessProbe")
            continue
        if not is_ours(deployment):
            continue
        setting = main_port_setting(deployment)
        port = int(env_values(deployment)[setting]) if setting else None
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            http = (spec.get(probe) or {}).get("httpGet") or {}
            if http.get("path") != path:
                problems.append(f"{name}: {probe} asks {http.get('path')}, not {path}")
            if resolve_port(deployment, http.get("port")) != port:
                problems.append(f"{name}: {probe} port {http.get('port')} is not its {setting} {port}")
    return problems


def check_termination(manifests: Manifests) -> list[str]:
    """Each pod leaves its Service before SIGTERM (a preStop sleep), then has compose's stop_grace_period.

    terminationGracePeriodSeconds counts from the start of preStop, so it is the sleep plus the
    20 s a service gets in compose after SIGTERM (its workers have 15 s: shared/workers.py STOP_S).
    """
    problems = []
    grace = _compose_grace_s(manifests)
    for name, deployment in manifests.of_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        sleep = ((container(deployment).get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
        seconds = sleep.get("seconds")
        if not seconds:
            problems.append(f"{name}: no preStop sleep, so requests reach it after SIGTERM")
            continue
        total = pod.get("terminationGracePeriodSeconds", 30)
        if total - seconds != grace:
            problems.append(f"{name}: terminationGracePeriodSeconds {total} leaves {total - seconds} s after "
                            f"the {seconds} s preStop sleep, not compose's stop_grace_period {grace} s")
    return problems


def _compose_grace_s(manifests: Manifests) -> int:
    periods = {str(svc.get("stop_grace_period")) for svc in manifests.compose().ours().values()}
    assert len(periods) == 1, f"compose services differ in stop_grace_period: {periods}"
    match = re.fullmatch(r"(\d+)s", periods.pop())
    assert match, "stop_grace_period is not in whole seconds"
    return int(match.group(1))


def check_security(manifests: Manifests) -> list[str]:
    """Non-root (ours as the image's uid), no privilege escalation, a read-only root, no capabilities, and bounded."""
    problems = []
    for name, deployment in manifests.of_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"].get("securityContext") or {}
        spec = container(deployment)
        ctx = spec.get("securityContext") or {}
        if not pod.get("runAsNonRoot"):
            problems.append(f"{name}: runAsNonRoot is not true")
        if is_ours(deployment) and pod.get("runAsUser") != IMAGE_UID:
            problems.append(f"{name}: runAsUser {pod.get('runAsUser')} is not the image's user {IMAGE_UID}")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities are not all dropped")
        resources = spec.get("resources") or {}
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(part) or {}):
                    problems.append(f"{name}: no {resource} in resources.{part}")
    return problems


def check_settings(manifests: Manifests) -> list[str]:
    """Every LIVEFEED_* name is a setting of the service it is set on, and compose's values carry over.

    Ours: each name is a field of the settings class its command's entry point builds, every
    listen address is 0.0.0.0, a value from a ConfigMap names a key that exists, and every
    setting docker-compose.yml gives a value has the same one here (the Kafka address and the
    ConfigMap's settings excepted: check_strimzi and the ConfigMap own those). The gateway: exactly
    the template's placeholders, filtered as compose filters them.
    """
    problems = []
    config = manifests.config()
    compose = manifests.compose()
    entry_points = scripts(manifests)
    compose_by_command = {tuple(svc.get("command") or []): svc for svc in compose.ours().values()}
    for name, deployment in manifests.of_kind("Deployment").items():
        entries = env(deployment)
        for key, item in entries.items():
            ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
            if ref and f"{ref.get('name')}/{ref.get('key')}" not in config:
                problems.append(f"{name}: {key} reads {ref.get('name')}/{ref.get('key')}, which no ConfigMap here has")
        livefeed = {key for key in entries if key.startswith("LIVEFEED_")}
        if not is_ours(deployment):
            problems.extend(_gateway_settings(name, deployment, livefeed))
            continue
        command = container(deployment).get("command") or []
        if len(command) != 1 or command[0] not in entry_points:
            problems.append(f"{name}: command {command} is not one [project.scripts] entry point")
            continue
        names = setting_names(settings_class(entry_points[command[0]]))
        for key in sorted(livefeed - names.keys()):
            problems.append(f"{name}: {key} is not a setting of the {name} service")
        values = env_values(deployment)
        for key, field in names.items():
            if field.endswith("_host") and values.get(key) != "0.0.0.0":
                problems.append(f"{name}: {key} must be 0.0.0.0 so other pods reach it")
        twin = compose_by_command.get(tuple(command))
        if twin is None:
            problems.append(f"{name}: no service in docker-compose.yml runs {command}")
            continue
        for key, value in sorted(compose_environment(twin).items()):
            if value is None or key == "LIVEFEED_KAFKA_BOOTSTRAP":
                continue
            entry = entries.get(key)
            if entry is None:
                problems.append(f"{name}: {key} is set in docker-compose.yml ({value}) but not here")
            elif "value" in entry and str(entry["value"]) != value:
                problems.append(f"{name}: {key}={entry['value']} but docker-compose.yml has {value}")
            elif "value" not in entry and not (entry.get("valueFrom") or {}).get("configMapKeyRef"):
                problems.append(f"{name}: {key} comes neither from a value nor from a ConfigMap")
    return problems


def _gateway_settings(name: str, deployment: dict[str, Any], livefeed: set[str]) -> list[str]:
    """Every placeholder filled (by us or by the image's entrypoint), and envsubst filtered to those alone."""
    problems = []
    template = stack_template()
    placeholders = template_placeholders(template)
    values = env_values(deployment)
    for key in sorted(livefeed - placeholders):
        problems.append(f"{name}: {key} is not a placeholder of {template.name}")
    for key in sorted(placeholders - livefeed):
        if key in ENTRYPOINT_FILLED and values.get(ENTRYPOINT_FILLED[key]):
            continue
        problems.append(f"{name}: placeholder {key} of {template.name} is not set, so nginx gets it literally")
    pattern = values.get("NGINX_ENVSUBST_FILTER")
    if not pattern:
        return [*problems, f"{name}: NGINX_ENVSUBST_FILTER is unset, so envsubst may rewrite nginx variables"]
    for key in sorted(placeholders):
        if not re.search(pattern, key):
            problems.append(f"{name}: NGINX_ENVSUBST_FILTER {pattern!r} leaves {key} unfilled")
    for variable in sorted(template_nginx_variables(template)):
        if re.search(pattern, variable):
            problems.append(f"{name}: NGINX_ENVSUBST_FILTER {pattern!r} would substitute ${variable}")
    return problems


def check_ports(manifests: Manifests) -> list[str]:
    """Ports agree: settings with deploy.stack.Topology and compose, container ports, Services, gateway upstreams."""
    problems = []
    local = Stack(topology=Topology()).env()
    deployments = manifests.of_kind("Deployment")
    services = manifests.of_kind("Service")
    port_settings: dict[str, tuple[str, int]] = {}
    for name, deployment in deployments.items():
        if not is_ours(deployment):
            continue
        values = env_values(deployment)
        ports = {key: value for key, value in values.items() if re.fullmatch(r"LIVEFEED_\w+_PORT", key)}
        for key, value in ports.items():
            if key in local and value != local[key]:
                problems.append(f"{name}: {key}={value} but deploy/stack.py uses {local[key]}")
            if value.isdigit():
                port_settings[key] = (name, int(value))
        declared = {int(v) for v in ports.values() if v.isdigit()}
        opened = set(container_ports(deployment).values())
        if opened != declared:
            problems.append(f"{name}: container ports {sorted(opened)} differ from its port settings "
                            f"{sorted(declared)}")
    for sname, service in services.items():
        spec = service["spec"]
        if spec.get("type") == "ExternalName":
            continue
        targets = [d for d in deployments.values() if selects(spec.get("selector") or {}, pod_labels(d))]
        if not targets:
            problems.append(f"service {sname}: selects no Deployment's pods")
            continue
        for port in spec.get("ports") or []:
            number = resolve_port(targets[0], port.get("targetPort", port["port"]))
            if number is None:
                problems.append(f"service {sname}: targetPort {port.get('targetPort')} is no container port")
            elif number != port["port"]:
                problems.append(f"service {sname}: port {port['port']} leads to {number}; keep them equal, "
                                "as compose has")
    namespace = str(manifests.kustomization.get("namespace"))
    gateways = [d for d in deployments.values() if not is_ours(d)]
    for gateway in gateways:
        for key, value in env_values(gateway).items():
            if key not in UPSTREAM_PORTS:
                continue
            servers = upstream_servers(value)
            if not servers:
                problems.append(f"gateway: {key}={value!r} has no server line")
            for address, params in servers:
                problems.extend(_check_upstream(key, address, params, UPSTREAM_PORTS[key], namespace, port_settings,
                                                services, deployments))
    return problems


def _check_upstream(key: str, address: str, params: list[str], setting: str, namespace: str,
                    port_settings: dict[str, tuple[str, int]], services: dict[str, dict[str, Any]],
                    deployments: dict[str, dict[str, Any]]) -> list[str]:
    """One upstream server: a headless Service's whole name, re-resolved, leading to the service's port.

    nginx's resolver uses no search domains, so a short name never resolves; a Service with a
    virtual address would give least_conn one server, and no way to spread streams over the pods.
    """
    host, _, port = address.rpartition(":")
    owner = port_settings.get(setting)
    service = services.get(host.split(".")[0])
    if owner is None:
        return [f"gateway: {key}={address} but no Deployment sets {setting}"]
    if service is None:
        return [f"gateway: {key}={address} names no Service here"]
    problems = []
    if host != f"{service['metadata']['name']}.{namespace}.{CLUSTER_DOMAIN}":
        problems.append(f"gateway: {key}={address} is not the whole name "
                        f"{service['metadata']['name']}.{namespace}.{CLUSTER_DOMAIN} (nginx's resolver has no search)")
    if "resolve" not in params:
        problems.append(f"gateway: {key}={address} is resolved once, so scaled pods never get traffic")
    if service["spec"].get("clusterIP") != "None":
        problems.append(f"gateway: {key}={address}: Service {host.split('.')[0]} is not headless, so the "
                        "gateway sees one server, not every pod")
    if problems:
        return problems
    pods = [d for d in deployments.values() if selects(service["spec"].get("selector") or {}, pod_labels(d))]
    if not pods:
        return [f"gateway: {key}={address}: Service {host} selects no pods"]
    ports = {p["port"]: resolve_port(pods[0], p.get("targetPort", p["port"]))
             for p in service["spec"].get("ports") or []}
    if not port.isdigit() or ports.get(int(port)) != owner[1]:
        return [f"gateway: {key}={address} does not reach {setting} {owner[1]} of {owner[0]}"]
    return []


def check_credentials(manifests: Manifests) -> list[str]:
    """Ingest's credentials file is inside a Secret mounted as a folder (never subPath, which never updates)."""
    problems = []
    for name, deployment in manifests.of_kind("Deployment").items():
        path = env_values(deployment).get("LIVEFEED_CREDENTIALS_FILE")
        if path is None:
            if (container(deployment).get("command") or [])[:1] == ["livefeed-ingest"]:
                problems.append(f"{name}: LIVEFEED_CREDENTIALS_FILE is not set, and ingest refuses to start without it")
            continue
        folder = str(PurePosixPath(path).parent)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes") or []}
        mounts = [m for m in container(deployment).get("volumeMounts") or [] if m["mountPath"].rstrip("/") == folder]
        if not mounts:
            problems.append(f"{name}: LIVEFEED_CREDENTIALS_FILE={path} is not in a mounted folder")
            continue
        mount = mounts[0]
        if "subPath" in mount:
            problems.append(f"{name}: the credentials are mounted with subPath, so an updated Secret never "
                            "reaches ingest")
        if "secret" not in volumes.get(mount["name"], {}):
            problems.append(f"{name}: the credentials folder is not a Secret")
    return problems


def check_gateway(manifests: Manifests) -> list[str]:
    """The gateway renders deploy/nginx's own files, from a ConfigMap the README says how to make from them."""
    problems = []
    template = stack_template()
    nginx = template.parent
    wanted = {template.name: f"/etc/nginx/templates/{template.name}", "nginx.conf": "/etc/nginx/nginx.conf"}
    gateways = [d for d in manifests.of_kind("Deployment").values() if not is_ours(d)]
    if len(gateways) != 1:
        return [f"expected one gateway Deployment, found {len(gateways)}"]
    deployment = gateways[0]
    volumes = deployment["spec"]["template"]["spec"].get("volumes") or []
    mounted: dict[str, str] = {}
    for mount in container(deployment).get("volumeMounts") or []:
        volume: dict[str, Any] = next((v for v in volumes if v["name"] == mount["name"]), {})
        cm = volume.get("configMap") or {}
        if cm.get("name") != GATEWAY_CONFIGMAP:
            continue
        for item in cm.get("items") or []:
            if "subPath" in mount:
                if mount["subPath"] == item["path"]:
                    mounted[item["key"]] = mount["mountPath"]
            else:
                mounted[item["key"]] = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
    for key, path in wanted.items():
        if mounted.get(key) != path:
            problems.append(f"gateway: ConfigMap key {key} is mounted at {mounted.get(key)}, not {path}")
    command = re.search(rf"kubectl[^\n]*create configmap {GATEWAY_CONFIGMAP}(?:[^\n\\]|\\\n)*", manifests.readme)
    if command is None:
        problems.append(f"README.md: no `kubectl create configmap {GATEWAY_CONFIGMAP}` command")
        return problems
    sources = set(re.findall(r"--from-file=(\S+)", command.group(0)))
    for key in wanted:
        source = f"{nginx.relative_to(ROOT).as_posix()}/{key}"
        if source not in sources:
            problems.append(f"README.md: the configmap command does not take --from-file={source}")
    return problems


def check_strimzi(manifests: Manifests) -> list[str]:
    """Kafka through Strimzi: 3 KRaft nodes, min.insync.replicas 2, and the topic the services are told about.

    These are the fields Strimzi's CRDs require (Kafka: spec.kafka.listeners; KafkaNodePool:
    replicas, roles, storage) plus what livefeed relies on. The schemas themselves are not checked
    here (see the module docstring). Never a StatefulSet of our own, nor Kafka or Redis in a Deployment.
    """
    problems = []
    kafkas = manifests.of_kind("Kafka")
    pools = manifests.of_kind("KafkaNodePool")
    topics = manifests.of_kind("KafkaTopic")
    for _, doc in manifests.documents():
        api = str(doc.get("apiVersion", ""))
        if api.startswith("kafka.strimzi.io/") and api != "kafka.strimzi.io/v1":
            problems.append(f"{doc['kind']}: apiVersion {doc['apiVersion']} is not kafka.strimzi.io/v1")
        if doc.get("kind") == "StatefulSet":
            problems.append(f"StatefulSet {doc['metadata']['name']}: run Kafka and Redis through operators or outside")
    for name, deployment in manifests.of_kind("Deployment").items():
        if re.search(r"kafka|redis", str(container(deployment).get("image", ""))):
            problems.append(f"{name}: runs {container(deployment)['image']}, a home-made Kafka or Redis")
    if len(kafkas) != 1:
        return [*problems, f"expected one Kafka, found {sorted(kafkas)}"]
    cluster, kafka = next(iter(kafkas.items()))
    spec = kafka.get("spec") or {}
    if "zookeeper" in spec:
        problems.append(f"Kafka {cluster}: has a zookeeper section; KRaft only")
    listeners = (spec.get("kafka") or {}).get("listeners") or []
    if not listeners:
        problems.append(f"Kafka {cluster}: spec.kafka.listeners is required")
    config = (spec.get("kafka") or {}).get("config") or {}
    ours = [p for p in pools.values() if (p["metadata"].get("labels") or {}).get("strimzi.io/cluster") == cluster]
    for pool_name, pool in pools.items():
        for field in ("replicas", "roles", "storage"):
            if field not in (pool.get("spec") or {}):
                problems.append(f"KafkaNodePool {pool_name}: spec.{field} is required")
    roles = {role: sum(p["spec"].get("replicas", 0) for p in ours if role in p["spec"].get("roles", []))
             for role in ("controller", "broker")}
    if roles != {"controller": 3, "broker": 3}:
        problems.append(f"Kafka {cluster}: node pools give {roles}, not 3 controllers and 3 brokers")
    brokers = roles["broker"]
    if config.get("min.insync.replicas") != min_insync_replicas(brokers):
        problems.append(f"Kafka {cluster}: min.insync.replicas {config.get('min.insync.replicas')}, "
                        f"not {min_insync_replicas(brokers)} of {brokers}")
    if config.get("default.replication.factor") != brokers:
        problems.append(f"Kafka {cluster}: default.replication.factor {config.get('default.replication.factor')}")
    bootstrap = {f"{cluster}-kafka-bootstrap:{listener['port']}" for listener in listeners if not listener.get("tls")}
    topic_name = CommonSettings.model_fields["topic"].default
    topic = next((t for n, t in topics.items() if (t["spec"].get("topicName") or n) == topic_name), None)
    if topic is None:
        return [*problems, f"no KafkaTopic {topic_name}"]
    if (topic["metadata"].get("labels") or {}).get("strimzi.io/cluster") != cluster:
        problems.append(f"KafkaTopic {topic_name}: its strimzi.io/cluster label is not {cluster}")
    replicas = topic["spec"].get("replicas")
    if replicas != brokers or (topic["spec"].get("config") or {}).get("min.insync.replicas") != min_insync_replicas(
            brokers):
        problems.append(f"KafkaTopic {topic_name}: replicas {replicas} and min.insync.replicas must be "
                        f"{brokers} and {min_insync_replicas(brokers)}")
    for name, deployment in manifests.of_kind("Deployment").items():
        if not is_ours(deployment):
            continue
        values = env_values(deployment)
        if values.get("LIVEFEED_KAFKA_BOOTSTRAP") not in bootstrap:
            problems.append(f"{name}: LIVEFEED_KAFKA_BOOTSTRAP {values.get('LIVEFEED_KAFKA_BOOTSTRAP')} is not "
                            f"a plain listener of Kafka {cluster} ({sorted(bootstrap)})")
        if values.get("LIVEFEED_TOPIC_PARTITIONS") != str(topic["spec"].get("partitions")):
            problems.append(f"{name}: LIVEFEED_TOPIC_PARTITIONS {values.get('LIVEFEED_TOPIC_PARTITIONS')} "
                            f"differs from the KafkaTopic's {topic['spec'].get('partitions')}")
        if values.get("LIVEFEED_TOPIC_REPLICATION_FACTOR") != str(replicas):
            factor = values.get("LIVEFEED_TOPIC_REPLICATION_FACTOR")
            problems.append(f"{name}: LIVEFEED_TOPIC_REPLICATION_FACTOR {factor} differs from the KafkaTopic's "
                            f"{replicas}")
    return problems


def check_availability(manifests: Manifests) -> list[str]:
    """A PodDisruptionBudget per Deployment that lets a node drain; an autoscaler that owns fanout's replicas."""
    problems = []
    deployments = manifests.of_kind("Deployment")
    hpas = manifests.of_kind("HorizontalPodAutoscaler")
    scaled: dict[str, int] = {}
    for hname, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment" or target.get("name") not in deployments:
            problems.append(f"HorizontalPodAutoscaler {hname}: targets no Deployment here")
            continue
        scaled[target["name"]] = int(hpa["spec"].get("minReplicas", 1))
        if "replicas" in deployments[target["name"]]["spec"]:
            problems.append(f"{target['name']}: sets replicas, which each kubectl apply would reset under its "
                            "autoscaler")
    if "fanout" not in scaled:
        problems.append("fanout: no HorizontalPodAutoscaler")
    for name, deployment in deployments.items():
        replicas = scaled.get(name, deployment["spec"].get("replicas", 1))
        if replicas < 2:
            problems.append(f"{name}: {replicas} replica(s); one pod is an outage on every drain or rollout")
        budgets = [p for p in manifests.of_kind("PodDisruptionBudget").values()
                   if selects((p["spec"].get("selector") or {}).get("matchLabels") or {}, pod_labels(deployment))]
        if len(budgets) != 1:
            problems.append(f"{name}: {len(budgets)} PodDisruptionBudgets select its pods, not one")
            continue
        spec = budgets[0]["spec"]
        if "minAvailable" in spec and not int(spec["minAvailable"]) < replicas:
            problems.append(f"{name}: minAvailable {spec['minAvailable']} of {replicas} blocks every node drain")
        if "maxUnavailable" in spec and not int(spec["maxUnavailable"]) >= 1:
            problems.append(f"{name}: maxUnavailable {spec['maxUnavailable']} blocks every node drain")
    return problems


INGRESS_NGINX = "nginx.ingress.kubernetes.io/"
TIMEOUT_ANNOTATIONS = (f"{INGRESS_NGINX}proxy-read-timeout", f"{INGRESS_NGINX}proxy-send-timeout")
STREAM_BACKSTOP_S = 3600
"""The gateway's own proxy_read_timeout for streams (1 h in the template): the Ingress must not cut sooner."""


def check_ingress(manifests: Manifests) -> list[str]:
    """The Ingress sends everything to the gateway, and holds WebSocket and SSE streams as long as the gateway does."""
    problems = []
    services = manifests.of_kind("Service")
    gateway_services = {n for n, s in services.items() for d in manifests.of_kind("Deployment").values()
                        if not is_ours(d) and selects(s["spec"].get("selector") or {}, pod_labels(d))}
    ingresses = manifests.of_kind("Ingress")
    if not ingresses:
        return ["no Ingress"]
    for name, ingress in ingresses.items():
        annotations = ingress["metadata"].get("annotations") or {}
        for key in TIMEOUT_ANNOTATIONS:
            value = str(annotations.get(key, "60"))
            if not value.isdigit() or int(value) < STREAM_BACKSTOP_S:
                problems.append(f"Ingress {name}: {key} is {value} s, so quiet streams are cut before "
                                f"{STREAM_BACKSTOP_S} s")
        if annotations.get(f"{INGRESS_NGINX}proxy-buffering") != "off":
            problems.append(f"Ingress {name}: proxy-buffering is not off, so SSE events wait in a buffer")
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service") or {}
                if backend.get("name") not in gateway_services:
                    problems.append(f"Ingress {name}: {path.get('path')} goes to {backend.get('name')}, "
                                    "past the gateway's limits and micro-cache")
    return problems


CHECKS: dict[str, Callable[[Manifests], list[str]]] = {
    "schemas": check_schemas,
    "kustomization": check_kustomization,
    "probes": check_probes,
    "termination": check_termination,
    "security": check_security,
    "settings": check_settings,
    "ports": check_ports,
    "credentials": check_credentials,
    "gateway": check_gateway,
    "strimzi": check_strimzi,
    "availability": check_availability,
    "ingress": check_ingress,
}


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS)
def test_manifests_agree_with_the_code(check: str) -> None:
    assert CHECKS[check](Manifests(ROOT)) == []


def test_the_cli_passes_every_manifest_strictly() -> None:
    """The CLI as an operator runs it: every core resource passes, and it warns only of the custom ones."""
    cli = Path(sys.executable).parent / "kubernetes-validate"
    files = [str(p) for p in Manifests(ROOT).files()]
    result = subprocess.run([str(cli), "--strict", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))], result.stdout
    warnings = [line for line in lines if line.startswith("WARN")]
    assert all("api version kafka.strimzi.io/" in line for line in warnings), warnings
    core = [doc for _, doc in Manifests(ROOT).documents() if not str(doc["apiVersion"]).startswith(CUSTOM_GROUPS)]
    assert sum(line.startswith("INFO") for line in lines) == len(core), result.stdout


# -- each check can fail: broken copies -------------------------------------------------------


@pytest.fixture
def copy_manifests(tmp_path: Path) -> Manifests:
    for name in COPIED:
        source, target = ROOT / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return Manifests(tmp_path)


def _edit(manifests: Manifests, file: str, kind: str, name: str, edit: Callable[[dict[str, Any]], object]) -> None:
    path = manifests.folder / file
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    found = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert found, f"{file} has no {kind}/{name}; update this test"
    edit(found[0])
    path.write_text(yaml.safe_dump_all(copy.deepcopy(docs), sort_keys=False))


def _deploy(manifests: Manifests, name: str, edit: Callable[[dict[str, Any]], object]) -> None:
    _edit(manifests, f"{name}.yaml", "Deployment", name, edit)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return container(doc)


def _set_env(doc: dict[str, Any], key: str, value: str) -> None:
    entries = _container(doc).setdefault("env", [])
    entries[:] = [e for e in entries if e["name"] != key] + [{"name": key, "value": value}]


def _drop_env(doc: dict[str, Any], key: str) -> None:
    _container(doc)["env"] = [e for e in _container(doc)["env"] if e["name"] != key]


BROKEN: list[tuple[str, str, Callable[[Manifests], object], str]] = [
    ("schemas", "a misspelt field",
     lambda m: _deploy(m, "fanout", lambda d: _container(d).update(readinesProbe={})),
     "Additional properties are not allowed ('readinesProbe' was unexpected)"),
    ("schemas", "a port as text",
     lambda m: _edit(m, "ingest.yaml", "Service", "ingest", lambda d: d["spec"]["ports"][0].update(port="8001")),
     "spec.ports.0.port: '8001' is not of type 'integer'"),
    ("schemas", "an API version Kubernetes no longer serves",
     lambda m: _edit(m, "fanout.yaml", "HorizontalPodAutoscaler", "fanout",
                     lambda d: d.update(apiVersion="autoscaling/v2beta2")),
     "Couldn't find schema for kind HorizontalPodAutoscaler"),
    ("kustomization", "a manifest left out",
     lambda m: (m.folder / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
     "extra.yaml is not in resources"),
    ("probes", "readiness on /healthz",
     lambda m: _deploy(m, "history", lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
     "history: readinessProbe asks /healthz, not /readyz"),
    ("probes", "readiness on the metrics port",
     lambda m: _deploy(m, "fanout", lambda d: _container(d)["readinessProbe"]["httpGet"].update(port="metrics")),
     "fanout: readinessProbe port metrics is not its LIVEFEED_FANOUT_PORT 8003"),
    ("probes", "no readiness at all",
     lambda m: _deploy(m, "gateway", lambda d: _container(d).pop("readinessProbe")),
     "gateway: no readinessProbe"),
    ("termination", "no preStop",
     lambda m: _deploy(m, "ingest", lambda d: _container(d).pop("lifecycle")),
     "ingest: no preStop sleep"),
    ("termination", "the grace period eaten by preStop",
     lambda m: _deploy(m, "fanout", lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20)),
     "fanout: terminationGracePeriodSeconds 20 leaves 10 s"),
    ("security", "privilege escalation",
     lambda m: _deploy(m, "history", lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True)),
     "history: allowPrivilegeEscalation is not false"),
    ("security", "another uid",
     lambda m: _deploy(m, "ingest", lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=1000)),
     "ingest: runAsUser 1000 is not the image's user 10001"),
    ("security", "no memory limit",
     lambda m: _deploy(m, "fanout", lambda d: _container(d)["resources"]["limits"].pop("memory")),
     "fanout: no memory in resources.limits"),
    ("settings", "misspelt setting",
     lambda m: _deploy(m, "fanout", lambda d: _set_env(d, "LIVEFEED_FANOUT_BUFFERS", "10")),
     "fanout: LIVEFEED_FANOUT_BUFFERS is not a setting of the fanout service"),
    ("settings", "another service's setting",
     lambda m: _deploy(m, "history", lambda d: _set_env(d, "LIVEFEED_CREDENTIALS_FILE", "/c.json")),
     "history: LIVEFEED_CREDENTIALS_FILE is not a setting"),
    ("settings", "listening on loopback",
     lambda m: _deploy(m, "ingest", lambda d: _set_env(d, "LIVEFEED_INGEST_HOST", "127.0.0.1")),
     "ingest: LIVEFEED_INGEST_HOST must be 0.0.0.0"),
    ("settings", "a compose setting left out",
     lambda m: _deploy(m, "history", lambda d: _drop_env(d, "LIVEFEED_METRICS_HOST")),
     "history: LIVEFEED_METRICS_HOST is set in docker-compose.yml"),
    ("settings", "a ConfigMap key that does not exist",
     lambda m: _deploy(m, "history", lambda d: env(d)["LIVEFEED_PUBLIC_URL"]["valueFrom"]["configMapKeyRef"].update(
         key="PUBLIC_URL")),
     "history: LIVEFEED_PUBLIC_URL reads livefeed-config/PUBLIC_URL"),
    ("settings", "gateway placeholder missing",
     lambda m: _deploy(m, "gateway", lambda d: _drop_env(d, "LIVEFEED_GATEWAY_CACHE_DIR")),
     "placeholder LIVEFEED_GATEWAY_CACHE_DIR"),
    ("settings", "no resolver for the pods",
     lambda m: _deploy(m, "gateway", lambda d: _drop_env(d, "NGINX_ENTRYPOINT_LOCAL_RESOLVERS")),
     "placeholder NGINX_LOCAL_RESOLVERS of livefeed.conf.template is not set"),
    ("settings", "a filter that leaves the resolver out",
     lambda m: _deploy(m, "gateway", lambda d: _set_env(d, "NGINX_ENVSUBST_FILTER", "^LIVEFEED_")),
     "leaves NGINX_LOCAL_RESOLVERS unfilled"),
    ("ports", "port differs from the local runner",
     lambda m: _deploy(m, "history", lambda d: _set_env(d, "LIVEFEED_HISTORY_METRICS_PORT", "9202")),
     "history: LIVEFEED_HISTORY_METRICS_PORT=9202 but deploy/stack.py uses 9201"),
    ("ports", "container port not opened",
     lambda m: _deploy(m, "fanout", lambda d: _container(d).update(ports=_container(d)["ports"][:2])),
     "fanout: container ports [8003, 8004] differ"),
    ("ports", "Service to the wrong container port",
     lambda m: _edit(m, "fanout.yaml", "Service", "fanout", lambda d: d["spec"]["ports"][1].update(targetPort="ws")),
     "service fanout: port 8004 leads to 8003"),
    ("ports", "SSE upstream on the WebSocket port",
     lambda m: _deploy(m, "gateway", lambda d: _set_env(
         d, "LIVEFEED_SSE_SERVERS", "server fanout.livefeed.svc.cluster.local:8003 resolve;")),
     "LIVEFEED_SSE_SERVERS=fanout.livefeed.svc.cluster.local:8003 does not reach LIVEFEED_FANOUT_SSE_PORT 8004"),
    ("ports", "upstream to no Service",
     lambda m: _deploy(m, "gateway", lambda d: _set_env(d, "LIVEFEED_HISTORY_SERVERS", "server hist:8002 resolve;")),
     "LIVEFEED_HISTORY_SERVERS=hist:8002 names no Service"),
    ("ports", "a short name nginx's resolver cannot find",
     lambda m: _deploy(m, "gateway", lambda d: _set_env(d, "LIVEFEED_INGEST_SERVERS", "server ingest:8001 resolve;")),
     "LIVEFEED_INGEST_SERVERS=ingest:8001 is not the whole name ingest.livefeed.svc.cluster.local"),
    ("ports", "pods resolved once",
     lambda m: _deploy(m, "gateway", lambda d: _set_env(
         d, "LIVEFEED_FANOUT_SERVERS", "server fanout.livefeed.svc.cluster.local:8003;")),
     "LIVEFEED_FANOUT_SERVERS=fanout.livefeed.svc.cluster.local:8003 is resolved once"),
    ("ports", "a virtual address behind least_conn",
     lambda m: _edit(m, "history.yaml", "Service", "history", lambda d: d["spec"].pop("clusterIP")),
     "Service history is not headless"),
    ("credentials", "credentials through subPath",
     lambda m: _deploy(m, "ingest", lambda d: _container(d)["volumeMounts"][0].update(subPath="credentials.json")),
     "mounted with subPath"),
    ("credentials", "credentials file not mounted",
     lambda m: _deploy(m, "ingest", lambda d: _set_env(d, "LIVEFEED_CREDENTIALS_FILE", "/etc/credentials.json")),
     "LIVEFEED_CREDENTIALS_FILE=/etc/credentials.json is not in a mounted folder"),
    ("gateway", "template mounted where nginx does not render it",
     lambda m: _deploy(m, "gateway", lambda d: _container(d)["volumeMounts"][0].update(mountPath="/etc/nginx/conf.d")),
     "is mounted at /etc/nginx/conf.d/livefeed.conf.template"),
    ("gateway", "README without the configmap command",
     lambda m: (m.folder / "README.md").write_text("kubectl apply -k deploy/k8s\n"),
     "no `kubectl create configmap livefeed-gateway` command"),
    ("strimzi", "a lone broker",
     lambda m: _edit(m, "kafka.yaml", "KafkaNodePool", "dual-role", lambda d: d["spec"].update(replicas=1)),
     "node pools give {'controller': 1, 'broker': 1}"),
    ("strimzi", "min.insync.replicas 1",
     lambda m: _edit(m, "kafka.yaml", "Kafka", "livefeed",
                     lambda d: d["spec"]["kafka"]["config"].update({"min.insync.replicas": 1})),
     "min.insync.replicas 1, not 2 of 3"),
    ("strimzi", "topic partitions the services are not told",
     lambda m: _edit(m, "kafka.yaml", "KafkaTopic", "livefeed.events", lambda d: d["spec"].update(partitions=12)),
     "LIVEFEED_TOPIC_PARTITIONS 6 differs from the KafkaTopic's 12"),
    ("strimzi", "bootstrap to a cluster that is not there",
     lambda m: _deploy(m, "ingest", lambda d: _set_env(d, "LIVEFEED_KAFKA_BOOTSTRAP", "kafka:9092")),
     "ingest: LIVEFEED_KAFKA_BOOTSTRAP kafka:9092 is not a plain listener"),
    ("strimzi", "a required field missing",
     lambda m: _edit(m, "kafka.yaml", "KafkaNodePool", "dual-role", lambda d: d["spec"].pop("storage")),
     "KafkaNodePool dual-role: spec.storage is required"),
    ("strimzi", "a home-made StatefulSet",
     lambda m: (m.folder / "redis.yaml").write_text(
         "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: redis\n"),
     "StatefulSet redis"),
    ("availability", "replicas under an autoscaler",
     lambda m: _deploy(m, "fanout", lambda d: d["spec"].update(replicas=3)),
     "fanout: sets replicas"),
    ("availability", "a budget that blocks drains",
     lambda m: _edit(m, "ingest.yaml", "PodDisruptionBudget", "ingest", lambda d: d["spec"].update(minAvailable=2)),
     "ingest: minAvailable 2 of 2 blocks every node drain"),
    ("availability", "no autoscaler for fanout",
     lambda m: _edit(m, "fanout.yaml", "HorizontalPodAutoscaler", "fanout",
                     lambda d: d["spec"]["scaleTargetRef"].update(name="fanout-x")),
     "fanout: no HorizontalPodAutoscaler"),
    ("ingress", "the controller's 60 s timeout",
     lambda m: _edit(m, "ingress.yaml", "Ingress", "livefeed",
                     lambda d: d["metadata"]["annotations"].pop(f"{INGRESS_NGINX}proxy-read-timeout")),
     "proxy-read-timeout is 60 s"),
    ("ingress", "buffered SSE",
     lambda m: _edit(m, "ingress.yaml", "Ingress", "livefeed",
                     lambda d: d["metadata"]["annotations"].update({f"{INGRESS_NGINX}proxy-buffering": "on"})),
     "proxy-buffering is not off"),
    ("ingress", "past the gateway",
     lambda m: _edit(m, "ingress.yaml", "Ingress", "livefeed",
                     lambda d: d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(name="history")),
     "goes to history, past the gateway"),
]


@pytest.mark.parametrize(("check", "what", "breakage", "expected"), BROKEN, ids=[f"{c}-{w}" for c, w, _, _ in BROKEN])
def test_each_check_catches_a_broken_copy(
    copy_manifests: Manifests, check: str, what: str, breakage: Callable[[Manifests], object], expected: str
) -> None:
    assert CHECKS[check](copy_manifests) == [], "the unbroken copy must pass"
    breakage(copy_manifests)
    problems = CHECKS[check](copy_manifests)
    assert any(expected in problem for problem in problems), f"{what}: {expected!r} not in {problems}"
