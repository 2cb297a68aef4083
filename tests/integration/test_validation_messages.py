"""Validation errors speak to people (issue 12): a field checked against a pattern is explained in words."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field", "says"),
    [
        ("POST", "/v1/feeds/{feed}/items", {"json": {"headline": "x", "tags": ["Not A Tag"]}}, "tags.0",
         "must be a tag: lowercase letters, digits and dashes"),
        ("POST", "/v1/feeds/{feed}/items", {"json": {"headline": "x"}, "headers": {"Idempotency-Key": "has space"}},
         "Idempotency-Key", "printable ASCII characters without spaces"),
        ("PATCH", "/v1/feeds/{feed}/items/NOT-AN-ID", {"json": {"headline": "x"}}, "item_id", "must be an item id"),
        ("GET", "/v1/feeds/{feed}/items?tag=Bad_Tag", {}, "tag", "must be a tag"),
        ("POST", "/v1/feeds/{feed}/items", {"json": {"headline": "x", "url": "ftp://example.com"}}, "url",
         "must be an http(s) URL"),
    ],
)
async def test_a_pattern_failure_is_explained_in_words(
    api: httpx.AsyncClient, feed: str, method: str, path: str, kwargs: dict[str, object], field: str, says: str
) -> None:
    answer = await api.request(method, path.format(feed=feed), **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert set(body) == {"error", "message", "fields"} and body["error"] == "validation_error"
    assert body["fields"] == [{"field": field, "message": body["fields"][0]["message"]}]
    assert says in body["fields"][0]["message"] and f"{field}: {body['fields'][0]['message']}" == body["message"]
    for raw in ("^", "pattern", "Value error"):
        assert raw not in body["message"], body["message"]
