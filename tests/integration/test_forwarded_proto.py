"""Issue 14: the gateway passes on the client's scheme (X-Forwarded-Proto) only from the trusted proxy.

TLS is terminated in front of the gateway, so the services learn that a reader came over https only
from the proxy's X-Forwarded-Proto. Anyone else's is ignored: a client could otherwise claim https on
a plain connection. Two gateways of the test's own render the real template in front of a recording
upstream that answers every path with the forwarding headers it got: one trusts no proxy (the
default), the other trusts 127.0.0.1, where the test's requests come from. Every location of the
template is asked, so none keeps passing on what the client said.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from deploy.stack import Stack, Topology

UNTRUSTING_OFFSET = 3
TRUSTING_OFFSET = 5
"""The test's gateways listen on the shared gateway's port plus these (clear of the other tests' own gateways, +7)."""
CLIENT = "203.0.113.7"
"""The reader the trusted proxy names in X-Forwarded-For."""


class _Recorder(BaseHTTPRequestHandler):
    """Answers any request with the X-Forwarded-* headers it came with, as JSON."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"proto": self.headers.get_all("X-Forwarded-Proto"),
                           "for": self.headers.get_all("X-Forwarded-For")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the answers."""


@contextlib.contextmanager
def recorder(host: str) -> Iterator[int]:
    """The recording upstream on a free port of ``host``, for the body; yields the port."""
    server = ThreadingHTTPServer((host, 0), _Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def gateway_to(stack: Stack, run_dir: Path, upstream: int, offset: int, **settings: str) -> Iterator[Topology]:
    """A gateway of the real template whose every service is the recorder, with these gateway settings."""
    topology = replace(stack.topology, gateway=stack.topology.gateway + offset, ingest=upstream,
                       history=upstream, fanout=upstream, fanout_sse=upstream)
    gateway = Stack(topology=topology, run_dir=run_dir, token=None, quiet=True, extra_env=settings)
    try:
        gateway.start_gateway()
        yield topology
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def gateways(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Topology]]:
    """``untrusting``: the default, no proxy trusted; ``trusting``: 127.0.0.1, the test's own address, trusted."""
    with recorder(stack.topology.host) as upstream, \
            gateway_to(stack, tmp_path_factory.mktemp("untrusting"), upstream, UNTRUSTING_OFFSET) as untrusting, \
            gateway_to(stack, tmp_path_factory.mktemp("trusting"), upstream, TRUSTING_OFFSET,
                       LIVEFEED_GATEWAY_TRUSTED_PROXY="127.0.0.1") as trusting:
        yield {"untrusting": untrusting, "trusting": trusting}


LOCATIONS = [
    ("GET", "/v1/feeds/world/stream"),
    ("GET", "/v1/feeds/world/events"),
    ("GET", "/v1/feeds/world/items"),
    ("POST", "/v1/feeds/world/items"),
    ("GET", "/api/ingest/readyz"),
    ("GET", "/api/history/readyz"),
    ("GET", "/feeds/world"),
    ("GET", "/"),
]
"""One request for each location of the template that proxies (the cached ones with a fresh query each time)."""


def forwarded(topology: Topology, method: str, path: str, headers: dict[str, str]) -> dict[str, list[str] | None]:
    """What the upstream got for this request through ``topology``'s gateway."""
    answer = httpx.request(method, f"{topology.base_url}{path}", params={"n": uuid.uuid4().hex},
                           headers=headers, timeout=10)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    seen: dict[str, list[str] | None] = answer.json()
    return seen


@pytest.mark.parametrize(("method", "path"), LOCATIONS)
def test_a_client_that_is_not_the_trusted_proxy_cannot_claim_https(
    gateways: dict[str, Topology], method: str, path: str,
) -> None:
    for headers in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT}):
        seen = forwarded(gateways["untrusting"], method, path, headers)
        assert seen == {"proto": ["http"], "for": ["127.0.0.1"]}, (headers, seen)


@pytest.mark.parametrize(("method", "path"), LOCATIONS)
def test_the_trusted_proxy_passes_on_the_scheme_its_client_used(
    gateways: dict[str, Topology], method: str, path: str,
) -> None:
    proxied = {"X-Forwarded-For": CLIENT}
    assert forwarded(gateways["trusting"], method, path, {**proxied, "X-Forwarded-Proto": "https"}) == {
        "proto": ["https"], "for": [CLIENT]}
    assert forwarded(gateways["trusting"], method, path, {**proxied, "X-Forwarded-Proto": "http"}) == {
        "proto": ["http"], "for": [CLIENT]}


@pytest.mark.parametrize("claimed", [None, "", "ftp", "https, http", "https://x", "HTTPS"])
def test_anything_but_http_or_https_from_the_trusted_proxy_is_the_gateways_own_scheme(
    gateways: dict[str, Topology], claimed: str | None,
) -> None:
    headers = {"X-Forwarded-For": CLIENT}
    if claimed is not None:
        headers["X-Forwarded-Proto"] = claimed
    seen = forwarded(gateways["trusting"], "GET", "/v1/feeds/world/items", headers)
    assert seen["proto"] == ["https" if claimed == "HTTPS" else "http"], (claimed, seen)
