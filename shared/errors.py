"""The one error livefeed answers with, and its JSON shape, for every service and stream.

Every error body is ``{"error": code, "message": text, "fields": [{"field", "message"}]}``
(plus any ``extra`` keys); ``fields`` names what was wrong in the request, so a client can
point at it. Raise :class:`ApiError` from a handler, or from pure code (the item lifecycle,
the stream request parser) that a handler calls; the HTTP edge renders it (``shared/http.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError"]


class ApiError(Exception):
    """Raise from a handler to answer with the livefeed error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return {"error": self.code, "message": self.message, "fields": self.fields, **self.extra}
