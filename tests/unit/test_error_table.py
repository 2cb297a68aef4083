"""The README's "Error codes" table lists every error code the services and the gateway answer with, and no other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared import http

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEMPLATE = ROOT / "deploy" / "nginx" / "livefeed.conf.template"
RAISERS = {"ApiError", "refusal", "_refusal"}
"""Calls that make an error: ``ApiError(status, code, ...)`` and the fanout's and reader tokens' helpers."""


def documented() -> dict[str, set[int]]:
    """Each code in the table with the statuses its row gives (none for "any")."""
    section = README.read_text().split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {code: {int(s) for s in re.findall(r"\d{3}", statuses)} for code, statuses in rows}


def raised_in_python() -> dict[str, set[int]]:
    """Codes given as string literals to the error-making calls in services/ and shared/, with literal statuses."""
    found: dict[str, set[int]] = {}
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            status, code = node.args[0], node.args[1]
            if name in RAISERS and isinstance(code, ast.Constant) and isinstance(code.value, str):
                statuses = found.setdefault(code.value, set())
                if isinstance(status, ast.Constant) and isinstance(status.value, int):
                    statuses.add(status.value)
    for http_status, (http_code, _) in http._HTTP_ERRORS.items():
        found.setdefault(http_code, set()).add(http_status)
    found.setdefault(http._OTHER_HTTP_ERROR[0], set())
    return found


def answered_by_gateway() -> dict[str, set[int]]:
    """Codes in the gateway's JSON bodies: literal ones, and the ``$lf_error`` map keyed by status."""
    template = TEMPLATE.read_text()
    found: dict[str, set[int]] = {}
    for status, code in re.findall(r"return (\d{3}) '\{\"error\":\"([a-z_]+)\"", template):
        found.setdefault(code, set()).add(int(status))
    block = re.search(r"map \$status \$lf_error \{(.*?)\}", template, flags=re.DOTALL)
    assert block is not None, "the gateway's $lf_error map moved: update this test"
    for key, code in re.findall(r"^\s*(\d{3}|default)\s+([a-z_]+);", block.group(1), flags=re.MULTILINE):
        found.setdefault(code, set()).update({int(key)} if key != "default" else set())
    return found


def test_the_table_lists_exactly_the_codes_in_the_code() -> None:
    in_code = set(raised_in_python()) | set(answered_by_gateway())
    in_table = set(documented())
    assert in_table - in_code == set(), "documented but never answered"
    assert in_code - in_table == set(), "answered but not in the README's Error codes table"


def test_the_table_gives_each_code_its_statuses() -> None:
    table = documented()
    for found in (raised_in_python(), answered_by_gateway()):
        for code, statuses in found.items():
            assert statuses <= table[code], (code, statuses, table[code])
