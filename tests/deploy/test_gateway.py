"""The gateway and the services agree on how long idle connections live."""

from __future__ import annotations

import re

from deploy.stack import DEPLOY
from shared.http import KEEP_ALIVE_S


def test_services_keep_idle_connections_longer_than_the_gateway() -> None:
    """Else nginx can reuse a connection the service is closing and answer a POST with 502."""
    template = (DEPLOY / "nginx" / "livefeed.conf.template").read_text()
    upstreams = re.findall(r"^upstream (lf_\w+)\s*\{(.*)\}\s*$", template, re.MULTILINE)
    pooled = {name: body for name, body in upstreams if "keepalive " in body}
    assert set(pooled) == {"lf_ingest", "lf_history"}
    for name, body in pooled.items():
        timeout = re.search(r"keepalive_timeout (\d+)s;", body)
        assert timeout is not None, f"{name} must set keepalive_timeout (nginx's default is 60 s)"
        assert int(timeout.group(1)) < KEEP_ALIVE_S, name
