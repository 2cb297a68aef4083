"""The Redis key table: Python and Lua build the same names, and a rebuild spares ingest's keys."""

from __future__ import annotations

import re

from shared import keys


def test_python_fills_in_a_pattern_under_the_prefix() -> None:
    assert keys.key("item", feed="world", id="01abc") == "lf:item:world:01abc"
    assert keys.key("feeds") == "lf:feeds"
    assert keys.key("idem", scope="s", key="k") == "lf:idem:s:k"


def test_every_pattern_has_one_lua_function_building_the_same_name() -> None:
    functions = {name: (params, body) for name, params, body in
                 re.findall(r"local function k_(\w+)\(([^)]*)\) return (.+) end", keys.LUA)}
    assert set(functions) == set(keys.PATTERNS)
    for name, pattern in keys.PATTERNS.items():
        params, body = functions[name]
        rebuilt = "".join(piece[1:-1] if piece.startswith("'") else "{" + piece + "}" for piece in body.split(" .. "))
        assert rebuilt == keys.PREFIX + pattern
        assert [p for p in params.split(", ") if p] == re.findall(r"\{(\w+)\}", pattern)


def test_a_rebuild_deletes_history_keys_only() -> None:
    assert "idem" not in keys.REBUILT and "lock" not in keys.REBUILT and "status" not in keys.REBUILT
    assert {"item", "list", "wm", "epoch", "op"} <= keys.REBUILT
