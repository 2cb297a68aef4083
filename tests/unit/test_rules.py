"""The browser's slug and id rules (web/rules.js) are the server's (shared/models.py)."""

from __future__ import annotations

import re

import pytest

from services.history.pages import WEB_DIR
from shared.models import FEED_PATTERN, ITEM_ID_PATTERN, TAG_PATTERN, valid_feed, valid_item_id, valid_tag

RULES = (WEB_DIR / "rules.js").read_text()


@pytest.mark.parametrize(("name", "pattern"), [("FEED_RE", FEED_PATTERN), ("TAG_RE", TAG_PATTERN),
                                               ("ITEM_ID_RE", ITEM_ID_PATTERN)])
def test_rules_js_holds_the_servers_pattern(name: str, pattern: str) -> None:
    match = re.search(rf"export const {name} = /(.+)/;", RULES)
    assert match is not None, f"rules.js has no {name}"
    assert match.group(1) == pattern


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (valid_feed, ["a", "world", "middle-east", "x" * 63], ["", "-a", "A", "a_b", "x" * 64, "é"]),
        (valid_tag, ["a", "power", "x" * 40], ["", "-a", "Tag", "x" * 41, "a b"]),
        (valid_item_id, ["01m8dwcp6w2dxa4x4apskmqdpc"], ["", "01M8DWCP6W2DXA4X4APSKMQDPC", "0" * 25, "0" * 27]),
    ],
)
def test_validators_accept_slugs_and_refuse_the_rest(check: object, good: list[str], bad: list[str]) -> None:
    assert callable(check)
    assert all(check(value) for value in good)
    assert not any(check(value) for value in bad)
