"""The gateway config: nginx accepts it, its settings are documented and set alike everywhere, and it
agrees with the services on how long idle connections and quiet streams live."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from string import Template

import pytest
import yaml

from deploy import settings_table
from deploy.gateway import GATEWAY_SETTINGS, gateway_values
from deploy.stack import DEPLOY, ROOT
from shared.http import KEEP_ALIVE_S
from shared.settings import FanoutSettings

TEMPLATE = DEPLOY / "nginx" / "livefeed.conf.template"
TOPOLOGY_VALUES = {
    "LIVEFEED_GATEWAY_PORT": "127.0.0.1:18080",
    "LIVEFEED_INGEST_SERVERS": "server 127.0.0.1:18001;",
    "LIVEFEED_HISTORY_SERVERS": "server 127.0.0.1:18002;",
    "LIVEFEED_FANOUT_SERVERS": "server 127.0.0.1:18003; server 127.0.0.1:18013;",
    "LIVEFEED_SSE_SERVERS": "server 127.0.0.1:18004;",
    "NGINX_LOCAL_RESOLVERS": "127.0.0.1",
    "LIVEFEED_GATEWAY_CACHE_DIR": "/tmp/livefeed-gateway-check-cache",
}
"""What deploy/stack.py fills in from its Topology (compose: service names and ports)."""


def render(env: dict[str, str]) -> str:
    """The site config as Stack.start_gateway renders it, with the gateway settings from ``env``."""
    return Template(TEMPLATE.read_text()).safe_substitute(gateway_values(env), **TOPOLOGY_VALUES)


def nginx_check(site: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``site`` inside a minimal main config like the local runner's."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (tmp_path / "livefeed.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                              "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr warn;\nevents {{ }}\nhttp {{\n"
        f"    include /etc/nginx/mime.types;\n{temp}\n    include {tmp_path / 'livefeed.conf'};\n}}\n"
    )
    return subprocess.run([nginx, "-t", "-q", "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)


def seconds(value: str) -> int:
    """An nginx time (``90``, ``75s``, ``10m``, ``1h``) in seconds."""
    number, unit = re.fullmatch(r"(\d+)(s|m|h)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {None: 1, "s": 1, "m": 60, "h": 3600}[unit]


def test_services_keep_idle_connections_longer_than_the_gateway() -> None:
    """Else nginx can reuse a connection the service is closing and answer a POST with 502."""
    template = TEMPLATE.read_text()
    upstreams = re.findall(r"^upstream (lf_\w+)\s*\{(.*)\}\s*$", template, re.MULTILINE)
    pooled = {name: body for name, body in upstreams if "keepalive " in body}
    assert set(pooled) == {"lf_ingest", "lf_history"}
    for name, body in pooled.items():
        timeout = re.search(r"keepalive_timeout (\d+)s;", body)
        assert timeout is not None, f"{name} must set keepalive_timeout (nginx's default is 60 s)"
        assert int(timeout.group(1)) < KEEP_ALIVE_S, name


def test_a_quiet_stream_outlives_many_heartbeats() -> None:
    """The fanout's heartbeat keeps a healthy stream talking, so the read timeout must never cut one."""
    streams = re.findall(r"location ~ \^/v1/feeds/\[\^/\]\+/(?:stream|events)\$ \{(.*?)\n    \}",
                         TEMPLATE.read_text(), re.DOTALL)
    assert len(streams) == 2
    heartbeat = FanoutSettings.model_fields["heartbeat_s"].default
    for body in streams:
        timeout = re.search(r"proxy_read_timeout (\w+);", body)
        assert timeout is not None, "nginx's default read timeout (60 s) is only three heartbeats"
        assert seconds(timeout.group(1)) >= 10 * heartbeat


def test_every_placeholder_is_filled_by_the_topology_or_a_gateway_setting() -> None:
    placeholders = set(re.findall(r"\$\{((?:LIVEFEED|NGINX)_\w+)\}", TEMPLATE.read_text()))
    assert placeholders == set(TOPOLOGY_VALUES) | {setting.name for setting in GATEWAY_SETTINGS}
    assert not re.search(r"\$\{(?:LIVEFEED|NGINX)_\w+\}", render({}))


NGINX_ERRORS = {400, 404, 405, 408, 411, 413, 414, 494, 500, 501, 502, 503, 504, 505}
"""The statuses nginx answers with itself (494: a request header over large_client_header_buffers)."""


def test_every_error_nginx_makes_has_a_json_page() -> None:
    """Each status nginx answers itself goes to a location that answers in the JSON error shape."""
    template = TEMPLATE.read_text()
    pages = re.findall(r"^\s*error_page ([\d ]+?) (?:=\d+ )?(\S+);", template, re.MULTILINE)
    covered = {int(code) for codes, _ in pages for code in codes.split()}
    assert covered >= NGINX_ERRORS, sorted(NGINX_ERRORS - covered)
    for _, target in pages:
        prefix = "" if target.startswith("@") else "= "
        block = re.search(rf"location {re.escape(prefix + target)} \{{(.*?)\n    \}}", template, re.DOTALL)
        assert block is not None, target
        assert "default_type application/json;" in block.group(1), target
        assert re.search(r"return \d{3} '\{\"error\":.*\"fields\":\[", block.group(1)), target
    assert "proxy_intercept_errors on" not in template, "the services' own errors must pass through"


def test_the_gateway_errors_state_the_limits_nginx_applies() -> None:
    """The body and header limits the JSON errors quote are the ones the server block sets."""
    template = TEMPLATE.read_text()
    assert "client_max_body_size 128k;" in template and '413     "at most 128 KiB";' in template
    assert "large_client_header_buffers 4 8k;" in template
    assert "a request line of at most 8 KiB" in template
    assert "each header field at most 8 KiB, the whole head at most 32 KiB" in template


@pytest.mark.parametrize("env", [
    {},
    {"LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS": "1", "LIVEFEED_GATEWAY_READ_RATE_PER_S": "1000000",
     "LIVEFEED_GATEWAY_READ_BURST": "1", "LIVEFEED_GATEWAY_WRITE_RATE_PER_S": "3",
     "LIVEFEED_GATEWAY_WRITE_BURST": "1000000", "LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S": "1",
     "LIVEFEED_GATEWAY_TRUSTED_PROXY": "10.0.0.0/8"},
    {"LIVEFEED_GATEWAY_TRUSTED_PROXY": "2001:db8::/32"},
    {"LIVEFEED_GATEWAY_TRUSTED_PROXY": "192.0.2.7"},
], ids=["defaults", "other-values", "ipv6-proxy", "one-proxy"])
def test_nginx_accepts_the_rendered_config(env: dict[str, str], tmp_path: Path) -> None:
    result = nginx_check(render(env), tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_check_catches_a_broken_config(tmp_path: Path) -> None:
    result = nginx_check(render({}).replace("limit_conn_status 429;", "limit_conn_status 200;"), tmp_path)
    assert result.returncode != 0
    assert "between 400 and 599" in result.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS", "0"),
    ("LIVEFEED_GATEWAY_READ_RATE_PER_S", "10r/s"),
    ("LIVEFEED_GATEWAY_WRITE_BURST", "-1"),
    ("LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S", "10s"),
    ("LIVEFEED_GATEWAY_TRUSTED_PROXY", "proxy.example; allow all"),
])
def test_a_bad_value_is_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        gateway_values({name: value})


def test_an_empty_value_takes_the_default_as_in_compose() -> None:
    """Compose's ``${NAME:-default}`` treats an empty variable as unset; so does the local runner."""
    assert gateway_values({"LIVEFEED_GATEWAY_READ_BURST": ""}) == gateway_values({})


def test_compose_sets_each_gateway_setting_with_the_same_default() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["gateway"]["environment"]
    for setting in GATEWAY_SETTINGS:
        assert env.get(setting.name) == f"${{{setting.name}:-{setting.default}}}", setting.name


def test_the_readme_settings_table_lists_the_gateway_settings() -> None:
    rows = {setting.name: setting for setting in settings_table.settings()}
    for setting in GATEWAY_SETTINGS:
        assert rows[setting.name].services == ("gateway",)
        assert rows[setting.name].default == setting.default
        assert setting.description
