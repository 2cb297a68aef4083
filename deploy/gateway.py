"""The gateway's own settings: nginx's per-address limits, its slow-client timeout, the trusted proxy.

nginx reads no environment and runs no Python, so these are not pydantic settings of a service:
they are values of the nginx template ``deploy/nginx/livefeed.conf.template``, filled in by
deploy/stack.py (``string.Template``) and by docker compose (the nginx image's envsubst). The
defaults live here; docker-compose.yml repeats them as ``${NAME:-default}`` and the README
settings table lists them (tests/deploy/test_gateway.py checks both).

Why the defaults are generous: a mobile carrier's CGNAT or a newsroom office puts hundreds, at
times thousands, of real people behind one IPv4 address. The limits are there to stop one host
from taking a large share of a fanout's reader slots or of history's requests, not to ration a
reader; an address that needs more (a newsroom's wire importer, a load test) gets a higher value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GATEWAY_SETTINGS", "GatewaySetting", "gateway_values"]

Check = tuple[Callable[[str], bool], str]
"""A test of a value, and the words for what it must be."""


def _count(most: int) -> Check:
    return (lambda v: re.fullmatch(r"[1-9][0-9]*", v) is not None and int(v) <= most,
            f"a whole number from 1 to {most}")


def _is_address(value: str) -> bool:
    if value == "unix:":
        return True
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


_COUNT = _count(999_999_999)
_CONNECTIONS = _count(65_535)
"""nginx's limit_conn counts below 65536."""
_ADDRESS: Check = (_is_address, "an IP address, a CIDR or unix:")


@dataclass(frozen=True)
class GatewaySetting:
    """One ``LIVEFEED_GATEWAY_*`` value of the template; ``kind`` is what nginx takes there (check, words)."""

    name: str
    default: str
    description: str
    kind: Check = _COUNT


GATEWAY_SETTINGS: tuple[GatewaySetting, ...] = (
    GatewaySetting(
        "LIVEFEED_GATEWAY_STREAMS_PER_ADDRESS", "2000",
        "Open streams (WebSocket and SSE together) one client address may hold; one more gets a 429.",
        _CONNECTIONS,
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_READ_RATE_PER_S", "500",
        "Sustained GET/HEAD requests per second per client address (pages, history API, stream opens).",
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_READ_BURST", "2000",
        "GET/HEAD requests a client address may send at once above the read rate before a 429.",
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_WRITE_RATE_PER_S", "200",
        "Sustained writes (POST, PATCH, PUT, DELETE) per second per client address.",
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_WRITE_BURST", "400",
        "Writes a client address may send at once above the write rate before a 429.",
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_CLIENT_TIMEOUT_S", "10",
        "Seconds a client has to send its whole request head (slowloris), and between reads of a body.",
    ),
    GatewaySetting(
        "LIVEFEED_GATEWAY_TRUSTED_PROXY", "unix:",
        "Address or CIDR of a proxy in front of the gateway (TLS termination) whose X-Forwarded-For names the "
        "client and whose X-Forwarded-Proto (sent with it) names the client's scheme; unix: trusts none.",
        _ADDRESS,
    ),
)
"""In the order of the README table."""


LOCAL_RESOLVER = "127.0.0.1"
"""The template's resolver where every upstream server is an address (the local runner): nginx
needs one to start, and asks it nothing."""


def servers(addresses: Sequence[str]) -> str:
    """A ``${LIVEFEED_*_SERVERS}`` value for fixed addresses: one ``server`` line per instance."""
    if not addresses:
        raise ValueError("an upstream needs at least one server address")
    return " ".join(f"server {address};" for address in addresses)


def gateway_values(env: Mapping[str, str]) -> dict[str, str]:
    """Every gateway setting, from ``env`` where set (non-empty) and its default otherwise.

    Raises ValueError naming the setting when a value is not what nginx takes there: nginx would
    refuse the config with a message about a line of a generated file instead.
    """
    values = {}
    for setting in GATEWAY_SETTINGS:
        value = env.get(setting.name) or setting.default
        check, words = setting.kind
        if not check(value):
            raise ValueError(f"{setting.name}={value!r} is not {words}")
        values[setting.name] = value
    return values
