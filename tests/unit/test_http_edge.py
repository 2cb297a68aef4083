"""The HTTP edge both FastAPI services share (shared/http.py): what a request the routes do not match gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from shared.http import create_api


@asynccontextmanager
async def _nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


async def test_a_trailing_slash_is_a_json_404_not_a_redirect_to_the_callers_host() -> None:
    """A redirect would be built from the Host header (and carry ?token= along): outside review, issue 11."""
    app = create_api("t", "t", _nothing)

    @app.get("/v1/feeds/{feed}/items")
    async def items(feed: str) -> dict[str, str]:
        return {"feed": feed}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/v1/feeds/x/items/?token=abc", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"] == "not_found"
