"""The livefeed HTTP API as the CLI uses it: retries that are safe, errors that say what to do.

Every write carries an Idempotency-Key, generated once per command (or given by the caller),
so a retry after a timeout or a 503 can never publish twice. A write is never reported as failed
when it may have been applied: once it may have reached the service and no answer settles it,
it ends in :class:`~clients.cli.errors.OutcomeUnknown` with its key. Every read carries the
reader token, if one was given (a private feed needs it), as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from .errors import CliError, ExitCode, OutcomeUnknown

__all__ = ["READER_TOKEN_HINT", "Client", "ReaderTokenSource", "check_url"]

RETRY_STATUSES = {429, 502, 503, 504}
RETRY_CODES = {"idempotency_key_in_use", "item_busy"}
MAX_RETRY_WAIT_S = 5.0
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
            httpx.LocalProtocolError, httpx.ProxyError)
"""Transport errors raised before any byte of the request left: the service cannot have acted on it."""
NOT_APPLIED_CODES = {"kafka_unavailable", "store_unavailable", "auth_busy", "rate_limited"}
"""Codes of 429/5xx answers that say the write was not applied (the rest of 5xx may follow an applied write)."""
READER_TOKEN_HINT = "Check --reader-token, LIVEFEED_READER_TOKEN or LIVEFEED_READER_TOKEN_FILE."


def check_url(url: str) -> str:
    """The base URL without a trailing slash; a usage error if it is not http(s)://host[:port]."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise CliError(ExitCode.usage, f"--url {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CliError(
            ExitCode.usage,
            f"--url {url!r} is not an http(s) URL; give the gateway's address, e.g. http://127.0.0.1:8080",
        )
    return url.rstrip("/")


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(body: dict[str, Any], status: int) -> str:
    message = str(body.get("message") or f"HTTP {status}")
    fields = body.get("fields") or []
    named = [f"{f.get('field')}: {f.get('message')}" for f in fields if isinstance(f, dict)]
    if named and not any(n in message for n in named):
        message += " (" + "; ".join(named) + ")"
    return message


def _failure(response: httpx.Response) -> CliError:
    status = response.status_code
    body = _error_body(response)
    message = _describe(body, status)
    if str(body.get("error", "")).startswith("reader_token_"):
        return CliError(ExitCode.auth, f"the feed refused the reader token: {message} {READER_TOKEN_HINT}")
    if status == 401:
        return CliError(ExitCode.auth, f"the gateway refused the newsroom token: {message} "
                        "Check --token or LIVEFEED_TOKEN.")
    if status == 403:
        return CliError(ExitCode.auth, f"the newsroom credential may not do this: {message}")
    if status in (404, 410):
        return CliError(ExitCode.not_found, message)
    if status in (409, 412):
        return CliError(ExitCode.conflict, message)
    if status in (400, 413, 422):
        return CliError(ExitCode.refused, message)
    if status == 429 or status >= 500:
        return CliError(ExitCode.unavailable, f"the service is unavailable (HTTP {status}): {message}")
    return CliError(ExitCode.failed, f"unexpected answer HTTP {status}: {message}")


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    if header is not None and header.replace(".", "", 1).isdigit():
        return min(MAX_RETRY_WAIT_S, float(header))
    return float(min(MAX_RETRY_WAIT_S, 0.25 * 2**attempt) * (0.5 + random.random() / 2))


class ReaderTokenSource:
    """A private feed's reader token: ``--reader-token``, else ``LIVEFEED_READER_TOKEN``, else the file
    ``LIVEFEED_READER_TOKEN_FILE`` names, read again on every :meth:`read` so a renewed file is picked up."""

    def __init__(self, token: str | None = None, path: str | None = None) -> None:
        self._token = token or None
        self._path = path or None

    @classmethod
    def from_args(cls, token: str | None, environ: Mapping[str, str] = os.environ) -> ReaderTokenSource:
        return cls(token or environ.get("LIVEFEED_READER_TOKEN"), environ.get("LIVEFEED_READER_TOKEN_FILE"))

    @property
    def renewable(self) -> bool:
        """Whether :meth:`read` may give a new token later (it comes from a file)."""
        return self._token is None and self._path is not None

    def read(self) -> str | None:
        if self._token is not None or self._path is None:
            return self._token
        try:
            return Path(self._path).read_text().strip() or None
        except OSError as exc:
            raise CliError(ExitCode.usage, f"cannot read LIVEFEED_READER_TOKEN_FILE {self._path}: "
                           f"{exc.strerror or type(exc).__name__}") from None


class Client:
    """An HTTP client on the gateway that retries what is safe to retry."""

    def __init__(
        self, base_url: str, token: str | None, *, timeout: float, retries: int,
        reader_token: ReaderTokenSource | None = None,
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.reader_token = reader_token or ReaderTokenSource()
        self.retries = retries
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers={"User-Agent": "livefeed-cli/1", "Accept": "application/json"}
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def get(self, path: str, params: dict[str, str | int] | None = None) -> dict[str, Any]:
        """A read, fresh past the gateway's micro-cache (a tool reads back its own write); with the reader
        token, if there is one (public feeds ignore it)."""
        token = self.reader_token.read()
        headers = {"Cache-Control": "no-cache"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self._send("GET", path, params=params, headers=headers)

    async def write(
        self, method: str, path: str, body: dict[str, Any] | None = None, *,
        if_match: str | None = None, key: str | None = None,
    ) -> dict[str, Any]:
        """A newsroom write; the same Idempotency-Key goes with every retry of it."""
        if not self.token:
            raise CliError(ExitCode.auth, "no newsroom token: pass --token, or set LIVEFEED_TOKEN")
        key = key or f"cli-{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}
        if if_match is not None:
            version = if_match.strip().strip('"')
            headers["If-Match"] = f'"{version}"'
        return await self._send(method, path, json=body, headers=headers, write_key=key)

    async def _send(
        self, method: str, path: str, *, params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None, headers: dict[str, str] | None = None, write_key: str | None = None,
    ) -> dict[str, Any]:
        """Send with retries; a write (``write_key``) that may have been applied never ends in a plain failure."""
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        maybe_applied: str | None = None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self.http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, NOT_SENT):
                    maybe_applied = f"no answer after it was sent ({reason})"
                if not last:
                    await asyncio.sleep(_retry_after(None, attempt))
                    continue
                if write_key is not None and maybe_applied is not None:
                    raise OutcomeUnknown(write_key, maybe_applied) from None
                sent = "; nothing was sent" if write_key is not None else ""
                raise CliError(
                    ExitCode.unreachable,
                    f"cannot reach livefeed at {self.base_url} ({reason}){sent}; check --url or LIVEFEED_URL "
                    "and that the stack is running",
                ) from None
            if response.is_success:
                answer = orjson.loads(response.content)
                if not isinstance(answer, dict):
                    raise CliError(ExitCode.failed, f"unexpected answer from {path}: not a JSON object")
                return answer
            code = _error_body(response).get("error")
            in_flight = response.status_code == 409 and code in RETRY_CODES
            if (response.status_code >= 500 and code not in NOT_APPLIED_CODES) or in_flight:
                maybe_applied = f"HTTP {response.status_code}: {_describe(_error_body(response), response.status_code)}"
            if (response.status_code in RETRY_STATUSES or in_flight) and not last:
                await asyncio.sleep(_retry_after(response, attempt))
                continue
            settled = 400 <= response.status_code < 500 and response.status_code != 429 and not in_flight
            if write_key is not None and maybe_applied is not None and not settled:
                raise OutcomeUnknown(write_key, maybe_applied)
            raise _failure(response)
        raise AssertionError("unreachable")
