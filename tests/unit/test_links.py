"""``LIVEFEED_PUBLIC_URL`` and the URLs made from it (``services/history/links.py``), without servers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.history.links import PublicUrls
from shared.settings import HistorySettings


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("http://localhost:8080", "http://localhost:8080"),
        ("HTTPS://News.Example/", "https://news.example"),
        ("https://news.example/live/", "https://news.example/live"),
        ("http://[::1]:8080/a/b", "http://[::1]:8080/a/b"),
    ],
)
def test_a_public_url_is_stored_normalised(value: str, stored: str) -> None:
    assert HistorySettings(public_url=value).public_url == stored


@pytest.mark.parametrize(
    "value",
    ["", "news.example", "ftp://news.example", "https://", "https://user@news.example", "https://news.example/?a=1",
     "https://news.example#top", "https://news.example:0", "https://news.example:99999", "https://news.example/a b",
     "https://news.example/a//b", "https://evil.example; script-src *", "https://news.example/<x>"],
)
def test_anything_else_fails_at_start_with_a_clear_message(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEFEED_PUBLIC_URL", value)
    with pytest.raises(ValidationError, match=r"is not a public URL such as https://news\.example"):
        HistorySettings()


def test_the_default_is_the_local_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEFEED_PUBLIC_URL", raising=False)
    assert HistorySettings().public_url == "http://localhost:8080"


@pytest.mark.parametrize(
    ("base", "page", "stream"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/feeds/middle-east", "ws://127.0.0.1:8080"),
        ("https://news.example/live", "https://news.example/live/feeds/middle-east", "wss://news.example"),
    ],
)
def test_pages_and_the_stream_origin_come_from_the_base(base: str, page: str, stream: str) -> None:
    urls = PublicUrls(base)
    assert urls.feed_page("middle-east") == page
    assert urls.url("/") == f"{base}/"
    assert urls.stream_origin == stream
