"""Checks of the export formats, shared by the unit and the integration tests: IPTC's ninjs 3.1 schema
(vendored in ``tests/data/ninjs/``) and the JSON Feed 1.1 rules, written here as a JSON Schema.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

__all__ = ["JSON_FEED_1_1", "RFC3339", "check_json_feed", "check_ninjs", "format_checker"]

NINJS_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "ninjs" / "ninjs-schema_3.1.json"

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
"""An RFC 3339 date-time (JSON Feed's dates, ninjs' ``date-time``)."""


def format_checker() -> FormatChecker:
    """``date-time`` and ``uri`` checked for real (jsonschema skips them without optional packages)."""
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_date_time)
    checker.checks("uri")(_uri)
    return checker


def _date_time(value: object) -> bool:
    return not isinstance(value, str) or RFC3339.fullmatch(value) is not None


def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    scheme = urlsplit(value).scheme
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) is not None and not any(c.isspace() for c in value)


@cache
def _ninjs_validator() -> Any:
    schema = json.loads(NINJS_SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


def check_ninjs(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not a valid ninjs 3.1 object by IPTC's published schema."""
    errors = sorted(_ninjs_validator().iter_errors(obj), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


_DATE = {"type": "string", "format": "date-time"}
_URL = {"type": "string", "format": "uri"}
_AUTHORS = {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "url": _URL,
                                                                       "avatar": _URL},
                                       "anyOf": [{"required": ["name"]}, {"required": ["url"]},
                                                 {"required": ["avatar"]}]}}
JSON_FEED_1_1: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$comment": "The rules of https://jsonfeed.org/version/1.1 that a JSON Schema can state.",
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "home_page_url": _URL,
        "feed_url": _URL,
        "description": {"type": "string"},
        "authors": _AUTHORS,
        "language": {"type": "string"},
        "expired": {"type": "boolean"},
        "items": {"type": "array", "items": {
            "type": "object",
            "required": ["id"],
            "anyOf": [{"required": ["content_text"]}, {"required": ["content_html"]}],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "url": _URL,
                "external_url": _URL,
                "title": {"type": "string"},
                "content_text": {"type": "string"},
                "content_html": {"type": "string"},
                "summary": {"type": "string"},
                "image": _URL,
                "banner_image": _URL,
                "date_published": _DATE,
                "date_modified": _DATE,
                "authors": _AUTHORS,
                "tags": {"type": "array", "items": {"type": "string"}},
                "language": {"type": "string"},
                "attachments": {"type": "array", "items": {"type": "object", "required": ["url", "mime_type"]}},
            },
        }},
    },
}


def check_json_feed(doc: dict[str, Any]) -> None:
    """Raise if ``doc`` breaks a JSON Feed 1.1 rule, or uses the 1.0 ``author`` the 1.1 spec deprecates."""
    validator = Draft202012Validator(JSON_FEED_1_1, format_checker=format_checker())
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert "author" not in doc and all("author" not in item for item in doc["items"])
    ids = [item["id"] for item in doc["items"]]
    assert len(ids) == len(set(ids)), "item ids must be unique"
