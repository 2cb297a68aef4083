"""The widget script's rules, read from the file: its gzipped size limit, no dependencies, text only as text,
the gateway from its own URL."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from services.history.embed import WIDGET_PATH

SIZE_LIMIT = 8 * 1024
"""Issue 12: at most 8 KB gzipped; publishers load it on every article page."""


def test_the_widget_is_at_most_8_kb_gzipped() -> None:
    gzip = shutil.which("gzip")
    assert gzip is not None, "gzip is part of every Debian install"
    run = subprocess.run([gzip, "-9", "-c", str(WIDGET_PATH)], capture_output=True, check=True, timeout=10)
    compressed = run.stdout
    print(f"\nembed/v1.js: {WIDGET_PATH.stat().st_size} bytes, {len(compressed)} bytes with gzip -9 "
          f"(limit {SIZE_LIMIT})")
    assert len(compressed) <= SIZE_LIMIT


SOURCE = WIDGET_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("sink", ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                                  "new Function", "setHTMLUnsafe"])
def test_newsroom_text_never_reaches_an_html_sink(sink: str) -> None:
    assert sink not in SOURCE


def test_the_widget_has_no_dependencies_and_finds_the_gateway_from_its_own_url() -> None:
    assert re.findall(r"^\s*import\s", SOURCE, flags=re.MULTILINE) == []
    assert "import(" not in SOURCE
    assert "new URL('../', import.meta.url)" in SOURCE
    assert "location.host" not in SOURCE and "location.origin" not in SOURCE


def test_the_widget_defines_one_element_with_shadow_dom_parts_and_polite_announcements() -> None:
    assert "customElements.define('livefeed-feed'" in SOURCE
    assert "attachShadow" in SOURCE
    for part in ("container", "header", "title", "status", "list", "item", "time", "badge", "headline", "body", "more"):
        assert f"'{part}'" in SOURCE or f"'{part} " in SOURCE, part
    assert "'aria-live', 'polite'" in SOURCE
    assert "prefers-reduced-motion:no-preference" in SOURCE
    assert "--livefeed-accent" in SOURCE and "--livefeed-font" in SOURCE
