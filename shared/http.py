"""The HTTP edge both FastAPI services share: the error handlers, docs, the size limit, uvicorn.

Every error answer is an :class:`~shared.errors.ApiError` rendered by :func:`error_response`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
import uvicorn
import uvloop
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from .breaker import Breaker, StoreUnavailable
from .errors import ApiError
from .models import EXTERNAL_ID_PATTERN, FEED_PATTERN, FEED_SET_PATTERN, ITEM_ID_PATTERN, TAG_PATTERN
from .workers import STARTUP_FAILURE, heartbeat, worker_index

__all__ = [
    "ApiError",
    "BodySizeLimitMiddleware",
    "JsonResponse",
    "create_api",
    "error_response",
    "install_docs",
    "install_error_handlers",
    "serve",
]


class JsonResponse(Response):
    """A JSON answer encoded with orjson (what every livefeed error uses)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: ApiError) -> JsonResponse:
    return JsonResponse(error.body(), status_code=error.status, headers=error.headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "path", "query", "header")]
    return ".".join(parts) or "body"


_PATTERN_MESSAGES = {
    FEED_PATTERN: "must be a feed slug: lowercase letters, digits and dashes, 1 to 63 long, e.g. ukraine",
    TAG_PATTERN: "must be a tag: lowercase letters, digits and dashes, 1 to 40 long, e.g. kyiv",
    ITEM_ID_PATTERN: "must be an item id: the 26 lowercase letters and digits a publish answered",
    FEED_SET_PATTERN: "must be a feed slug, a slug prefix ending in *, or *",
    EXTERNAL_ID_PATTERN: "must be printable ASCII characters (letters, digits, spaces, punctuation)",
    r"^[\x21-\x7e]+$": "must be printable ASCII characters without spaces",
    r"^[A-Za-z0-9_.=-]*$": "must be a token as it was given: letters, digits and . _ = -",
}
"""What each pattern a request field is checked against means, in words: a client shows these to people."""


def plain_message(error: dict[str, Any]) -> str:
    """A validation error's message for people: a pattern in words, without pydantic's "Value error, " prefix."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        return _PATTERN_MESSAGES.get(pattern, "has characters or a form this field does not accept")
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


async def _on_api_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(
            ApiError(400, "malformed_json", "The request body is not valid JSON.",
                     fields=[{"field": "body", "message": "invalid JSON"}])
        )
    fields = [{"field": _field_name(tuple(err.get("loc", ()))), "message": plain_message(err)} for err in errors]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(ApiError(422, "validation_error", summary, fields=fields))


async def _on_http_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, field = _HTTP_ERRORS.get(exc.status_code, _OTHER_HTTP_ERROR)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(ApiError(exc.status_code, code, str(exc.detail), headers=headers,
                                   fields=[{"field": field, "message": str(exc.detail)}]))


_HTTP_ERRORS = {
    400: ("bad_request", "body"),
    404: ("not_found", "path"),
    405: ("method_not_allowed", "method"),
}
"""Errors Starlette raises itself, and the part of the request each is about (400: an unparsable body)."""
_OTHER_HTTP_ERROR = ("http_error", "request")


STORE_RETRY_AFTER_S = 1


async def _on_store_unavailable(request: Request, exc: Exception) -> JsonResponse:
    """Redis is slow or down: a fast 503 the client may retry, never a 500 or a hang.

    An app that keeps a :class:`~shared.breaker.Breaker` as ``app.state.breaker`` has it opened
    by a Redis error here, so its next requests can answer at once (see history's deps).
    """
    breaker = getattr(request.app.state, "breaker", None)
    if isinstance(breaker, Breaker) and not isinstance(exc, StoreUnavailable):
        breaker.failed(exc)
    return error_response(
        ApiError(
            503,
            "store_unavailable",
            "livefeed's store is not answering right now; nothing was changed. Retry shortly.",
            fields=[{"field": "store", "message": "redis unavailable"}],
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(RedisError, _on_store_unavailable)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)


KEEP_ALIVE_S = 75
SHUTDOWN_S = 10
"""After a SIGTERM, requests still running this long are cut, so a deploy never waits on one."""


def create_api(title: str, description: str, lifespan: Lifespan[FastAPI]) -> FastAPI:
    """A livefeed FastAPI app: the shared error shape, /docs behind the gateway, /healthz."""
    app = FastAPI(
        title=title,
        version="1",
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        servers=[{"url": "/", "description": "the gateway"}],
        # A redirect to the path without its slash would be built from the Host header.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    install_docs(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str | int]:
        return {"status": "ok", "worker": worker_index()}

    return app


def serve(app: ASGIApp, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Run ``app`` under uvicorn on uvloop; logs stay ours (JSON), one access line per request.

    Forwarded headers are trusted from the gateway (FORWARDED_ALLOW_IPS, default 127.0.0.1).
    Idle keep-alive connections stay open for ``KEEP_ALIVE_S``, longer than the gateway keeps
    them (60 s): if uvicorn closed first (its default is 5 s), nginx could send a request down a
    connection at the instant it closes and answer a POST with 502, since it never retries one.
    A SIGTERM waits at most ``SHUTDOWN_S`` for running requests (uvicorn's default is forever).
    Under a parent (:mod:`shared.workers`) a heartbeat task tells it that the event loop still runs.

    With ``reuse_port`` (a service of several workers, :mod:`shared.workers`) each worker binds
    the port itself with ``SO_REUSEPORT`` and the kernel spreads new connections over them.
    uvicorn listens on that socket only once the app's startup is done, so a worker still waiting
    for Kafka is given no connection; one that exits takes only its own unaccepted ones with it.
    """
    config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", log_config=None,
                            access_log=False, proxy_headers=True, timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=SHUTDOWN_S)
    server = uvicorn.Server(config)
    sockets = [_reuse_port_socket(host, port)] if reuse_port else None

    async def run() -> None:
        beat = asyncio.create_task(heartbeat())
        try:
            await server.serve(sockets=sockets)
        finally:
            beat.cancel()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT, not yet listening (uvicorn listens after startup)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def install_docs(app: FastAPI) -> None:
    """Serve the OpenAPI page at ``/docs``, and its Swagger UI files at ``/docs/<file>``, all by relative URLs.

    The gateway mounts each service under a prefix (``/api/ingest/``); a relative URL works
    both there and on the service's own port. The files come from the installed fastapi-offline
    package, so the page loads with no CDN (offline newsrooms, a strict egress policy).
    Create the app with ``docs_url=None``.
    """

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{app.title} API",
            swagger_js_url="docs/swagger-ui-bundle.js",
            swagger_css_url="docs/swagger-ui.css",
            swagger_favicon_url="docs/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:
            raise ApiError(404, "not_found", "No such file.", fields=[{"field": "path", "message": "unknown file"}])
        return FileResponse(DOCS_ASSETS_DIR / name, headers={"Cache-Control": "public, max-age=86400"})

    app.add_api_route("/docs", docs, include_in_schema=False)
    app.add_api_route("/docs/{name}", asset, include_in_schema=False)


DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"})
"""The Swagger UI files /docs loads, from fastapi-offline's package (its Redoc file is not served)."""


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with a 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = error_response(
            ApiError(
                413,
                "body_too_large",
                f"The request body is over {self.max_bytes} bytes.",
                fields=[{"field": "body", "message": f"at most {self.max_bytes} bytes"}],
            )
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass
