"""``livefeed tail``: a feed's events as they happen, resuming after every drop without a gap.

The tail keeps the cursor of the last event it printed and reconnects with ``since=<cursor>``
(capped, jittered backoff), so the server replays what it missed. When the server cannot
continue from that cursor it sends ``reset`` and closes with 4000: the tail then reloads the
snapshot, prints the items it has not seen at their current version, and resumes from the
snapshot's cursor. Items are printed only at a version newer than the one already printed.

A private feed's stream is opened with the reader token (``Authorization: Bearer``). When it
expires the server sends ``reauth`` and closes with 4401: the tail resumes from its cursor if
``LIVEFEED_READER_TOKEN_FILE`` holds a new token by then, and otherwise exits (code 3).

Drops behind a reachable gateway (a restarting fanout, a 502) are resumed however long they
last; a gateway that cannot be reached at all (refused, DNS, connect timeout) for ``give_up_s``
without a break ends the tail with exit 4 and the command that resumes it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .client import READER_TOKEN_HINT, Client
from .errors import CliError, ExitCode
from .output import Printer

__all__ = ["Tail"]

RESET_CLOSE_CODE = 4000
REAUTH_CLOSE_CODE = 4401
BASE_DELAY_S = 0.5
MAX_DELAY_S = 15.0
OPEN_TIMEOUT_S = 10.0
"""How long one connection attempt may take; never longer than --give-up, so a gateway that accepts
connections and never answers is given up on in time too."""
SILENCE_S = 90.0
SNAPSHOT_LIMIT = 100
SEEN_LIMIT = 10_000


class _Reset(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Reauth(Exception):
    """The reader token expired mid-stream (``reauth``, close 4401)."""


class _Done(Exception):
    """The requested number of events has been printed."""


class Tail:
    """Follows one feed; ``cursor`` is always the position to resume from."""

    def __init__(
        self, client: Client, printer: Printer, feed: str, *,
        since: str | None, tags: str | None, count: int | None, give_up_s: float = 15.0,
    ) -> None:
        self.client = client
        self.printer = printer
        self.feed = feed
        self.cursor = since
        self.tags = tags
        self.count = count
        self.printed = 0
        self.connected = False
        self.seen: OrderedDict[str, int] = OrderedDict()
        self.token_used: str | None = None
        self.give_up_s = give_up_s
        self.unreachable_since: float | None = None

    def url(self) -> str:
        base = self.client.base_url
        scheme = "wss" if base.startswith("https:") else "ws"
        query = {k: v for k, v in (("since", self.cursor), ("tags", self.tags)) if v}
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{scheme}{base[base.index(':'):]}/v1/feeds/{quote(self.feed)}/stream{suffix}"

    async def run(self) -> int:
        """Print events until ``count`` is reached (or forever); every drop is resumed."""
        attempt = 0
        try:
            while True:
                self.connected = False
                tried_at = time.monotonic()
                try:
                    await self._follow()
                    why = "the server closed the stream"
                except _Reset as reset:
                    self.printer.note(f"the stream cannot continue from cursor {self.cursor} ({reset.reason}); "
                                      "reloading the feed")
                    await self._reload_or_wait(attempt)
                    attempt += 1
                    continue
                except _Reauth:
                    renewed = self.client.reader_token.read() if self.client.reader_token.renewable else None
                    if renewed is None or renewed == self.token_used:
                        raise CliError(ExitCode.auth, "the reader token expired; get a new one and resume with: "
                                       f"livefeed tail --feed {self.feed} --since {self.cursor}. "
                                       f"{READER_TOKEN_HINT}") from None
                    self.printer.note(f"the reader token expired; resuming from cursor {self.cursor} "
                                      "with the renewed one")
                    continue
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if status in (401, 403):
                        detail = (exc.response.body or b"").decode(errors="replace").strip() or "no details"
                        raise CliError(ExitCode.auth, f"the stream refused the reader token (HTTP {status}): "
                                       f"{detail} {READER_TOKEN_HINT}") from None
                    if 400 <= status < 500:
                        detail = (exc.response.body or b"").decode(errors="replace").strip() or "no details"
                        raise CliError(ExitCode.refused,
                                       f"the stream refused the request (HTTP {status}): {detail}") from None
                    why = f"HTTP {status}"
                    self.unreachable_since = None
                except ConnectionClosed as exc:
                    why = str(exc) or type(exc).__name__
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    why = str(exc) or type(exc).__name__
                    if not self.connected:
                        self.unreachable_since = self.unreachable_since or tried_at
                if self.connected:
                    attempt = 0
                    self.unreachable_since = None
                delay = self._delay(attempt)
                if self.unreachable_since is not None:
                    left = self.unreachable_since + self.give_up_s - time.monotonic()
                    if left <= 0:
                        raise CliError(ExitCode.unreachable, self._give_up_message(why))
                    delay = min(delay, left)
                self.printer.note(f"connection lost ({why}); reconnecting in {delay:.1f}s "
                                  f"from cursor {self.cursor or '(none yet)'}")
                await asyncio.sleep(delay)
                attempt += 1
                if self.cursor is None and self.connected:
                    await self._reload_or_wait(attempt)
        except _Done:
            return ExitCode.ok

    def _give_up_message(self, why: str) -> str:
        resume = f"livefeed tail --feed {self.feed}" + (f" --since {self.cursor}" if self.cursor else "")
        return (f"cannot reach livefeed at {self.client.base_url} for {self.give_up_s:g}s ({why}); check --url or "
                f"LIVEFEED_URL and that the stack is running, then resume with: {resume}")

    @staticmethod
    def _delay(attempt: int) -> float:
        return float(min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt) * (0.5 + random.random() / 2))

    async def _follow(self) -> None:
        self.token_used = self.client.reader_token.read()
        headers = {"Authorization": f"Bearer {self.token_used}"} if self.token_used else None
        async with connect(
            self.url(), open_timeout=min(OPEN_TIMEOUT_S, self.give_up_s), ping_interval=20, ping_timeout=20,
            close_timeout=2,
            max_size=2**20, user_agent_header="livefeed-cli/1", additional_headers=headers,
        ) as ws:
            await self._read(ws)

    async def _read(self, ws: ClientConnection) -> None:
        reset: str | None = None
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), SILENCE_S)
            except TimeoutError:
                raise TimeoutError(f"no message for {SILENCE_S:.0f}s") from None
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == REAUTH_CLOSE_CODE:
                    raise _Reauth from None
                if reset is not None or (exc.rcvd is not None and exc.rcvd.code == RESET_CLOSE_CODE):
                    raise _Reset(reset or "reset") from None
                raise
            message: dict[str, Any] = orjson.loads(raw)
            kind = message.get("type")
            if kind == "hello":
                self.connected = True
                if self.cursor is None and message.get("cursor"):
                    self.cursor = message["cursor"]
                self.printer.note(f"following {self.feed} from cursor {self.cursor or '(start of the feed)'}")
            elif kind == "reset":
                reset = str(message.get("reason") or "reset")
            elif isinstance(kind, str) and kind.startswith("item."):
                if message.get("cursor"):
                    self.cursor = message["cursor"]
                self._show(message)

    def _show(self, message: dict[str, Any], kind: str | None = None) -> None:
        item = message.get("item") or {}
        item_id, version = str(item.get("id")), int(item.get("version", 0))
        if version <= self.seen.get(item_id, 0):
            return
        self.seen[item_id] = version
        self.seen.move_to_end(item_id)
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        if kind is not None and not self.printer.json_lines:
            self.printer.item(item, kind)
        else:
            self.printer.event(message)
        self.printed += 1
        if self.count is not None and self.printed >= self.count:
            raise _Done

    async def _reload_or_wait(self, attempt: int) -> None:
        """Reload the snapshot; if history cannot be reached either, wait and let the loop retry."""
        if attempt:
            await asyncio.sleep(self._delay(attempt))
        try:
            await self._reload()
        except CliError as exc:
            if exc.code not in (ExitCode.unreachable, ExitCode.unavailable):
                raise
            self.printer.note(f"could not reload {self.feed}: {exc.message}")

    async def _reload(self) -> None:
        """The snapshot after a reset: the items not yet printed at this version, oldest first."""
        params: dict[str, str | int] = {"limit": SNAPSHOT_LIMIT}
        page = await self.client.get(f"/v1/feeds/{quote(self.feed)}/items", params)
        wanted = set(self.tags.split(",")) if self.tags else None
        for item in reversed(page.get("items", [])):
            if wanted is None or wanted.intersection(item.get("tags", [])):
                self._show({"type": "snapshot", "feed": self.feed, "cursor": page.get("cursor"), "item": item},
                           "current")
        self.cursor = page.get("cursor")
        self.printer.note(f"reloaded {self.feed}; resuming from cursor {self.cursor or '(start of the feed)'}")
