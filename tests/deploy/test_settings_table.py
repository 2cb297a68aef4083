"""The README settings table and the local runner's environment, checked against shared/settings.py.

The README table must be exactly what ``python -m deploy.settings_table`` generates now, so it
cannot drift from the code; and every variable deploy/stack.py sets must be a real setting,
because the settings classes silently ignore unknown names.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from deploy import settings_table
from deploy.settings_table import END_MARKER, START_MARKER, render, splice
from deploy.stack import Stack, Topology

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGENERATE = "run `python -m deploy.settings_table --write README.md`"


def readme_table(text: str) -> str:
    """What the README holds between the settings-table markers."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError("README.md lost its settings-table markers")
    return text[start + len(START_MARKER) : end].strip("\n")


def readme_problems(text: str) -> list[str]:
    table = readme_table(text)
    if table != render().strip("\n"):
        return [f"README.md's settings table differs from shared/settings.py: {REGENERATE}"]
    return []


def known_names() -> set[str]:
    return {setting.name for setting in settings_table.settings()}


def unknown_names(names: set[str]) -> list[str]:
    """The ``LIVEFEED_*`` names in ``names`` that no service reads."""
    return sorted(name for name in names if name.startswith("LIVEFEED_") and name not in known_names())


def test_readme_table_is_generated_from_the_settings() -> None:
    assert readme_problems(README.read_text()) == []


def test_a_stale_readme_table_is_caught() -> None:
    stale = README.read_text().replace("`livefeed.events`", "`livefeed.old`", 1)
    assert stale != README.read_text()
    assert readme_problems(stale) != []
    with pytest.raises(ValueError, match="markers"):
        readme_problems(stale.replace(END_MARKER, ""))


def test_write_puts_the_table_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START_MARKER}\nold\n{END_MARKER}\n\n## After\n")
    assert settings_table.main(["--write", str(readme)]) == 0
    written = readme.read_text()
    assert readme_problems(written) == []
    assert written.startswith("# x\n\n") and written.endswith(f"{END_MARKER}\n\n## After\n")
    assert splice(written, render()) == written  # idempotent


def test_every_setting_is_documented_with_a_description() -> None:
    missing = [setting.name for setting in settings_table.settings() if not setting.description]
    assert missing == [], "add a description= to these fields in shared/settings.py"


def test_the_table_names_the_settings_class_each_service_builds() -> None:
    for service, cls in settings_table.SERVICES.items():
        main = importlib.import_module(f"services.{service}.main")
        assert getattr(main, cls.__name__, None) is cls, f"services/{service}/main.py does not build {cls.__name__}"


def test_local_runner_sets_only_real_settings() -> None:
    env = Stack(topology=Topology.shifted(10_000), extra_env={}).env()
    assert env, "Stack.env() set nothing"
    assert unknown_names(set(env)) == []


def test_an_unknown_name_is_caught() -> None:
    assert unknown_names({"LIVEFEED_KAFKA_BOOTSTRAP", "LIVEFEED_KAFKA_BOOTSTRAPS", "PATH"}) == [
        "LIVEFEED_KAFKA_BOOTSTRAPS"
    ]
