"""How the benchmark reports write a figure: thousands separated, a dash for one not measured."""

from __future__ import annotations

from typing import Any

__all__ = ["figure"]


def figure(value: Any, digits: int = 0) -> str:
    """``1,234`` for an int, ``1,234.5`` for a float with ``digits`` decimals, ``-`` for None, else ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
