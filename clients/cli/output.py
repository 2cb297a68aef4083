"""How the CLI prints items and events: one readable line each, or JSON lines with ``--json``."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["Printer"]

BODY_PREVIEW = 160
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: object) -> str:
    """Newsroom text with terminal control characters replaced, so it cannot drive the terminal."""
    return _CONTROL.sub("\ufffd", str(text))


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        moment = datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        return iso
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(_clean(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Printer:
    """Writes results to stdout and notes (progress, hints) to stderr, never mixing the two."""

    def __init__(self, *, json_lines: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = self.out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def json(self, value: Any) -> None:
        self.out.write(orjson.dumps(value).decode() + "\n")
        self.out.flush()

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.err.write(f"livefeed: {text}\n")
        self.err.flush()

    def flags(self, item: dict[str, Any]) -> str:
        marks = []
        if item.get("urgency") == "breaking":
            marks.append(self._style("BREAKING", "1;31"))
        if item.get("pinned"):
            marks.append("PINNED")
        if item.get("key_event"):
            marks.append("KEY")
        return " ".join(marks) + " " if marks else ""

    def item(self, item: dict[str, Any], kind: str | None = None) -> None:
        """An item as a headline line and an indented line: body, tags, who posted it and who updated it."""
        lead = f"{kind:<9} " if kind else ""
        headline = self._style(_clean(item.get("headline", "")), "1")
        self.line(f"{_when(item.get('published_at'))}  {lead}{item.get('id')}  v{item.get('version')}  "
                  f"{self.flags(item)}{headline}")
        details = []
        if item.get("body"):
            details.append(_one_line(str(item["body"]), BODY_PREVIEW))
        if item.get("tags"):
            details.append(" ".join(f"#{_clean(t)}" for t in item["tags"]))
        if item.get("created_by"):
            details.append(f"posted by {_clean(item['created_by'])}")
        if int(item.get("version", 1)) > 1:
            by = f" by {_clean(item['updated_by'])}" if item.get("updated_by") else ""
            details.append(f"(updated {_when(item.get('updated_at'))}{by})")
        if details:
            self.line("    " + "  ".join(details))

    def event(self, message: dict[str, Any]) -> None:
        """A stream event: the whole message as JSON, or the item with what happened to it."""
        if self.json_lines:
            self.json(message)
            return
        kind = str(message.get("type", "")).removeprefix("item.")
        self.item(message.get("item") or {}, kind)
