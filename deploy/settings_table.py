"""The README's settings table, generated from the pydantic-settings classes in shared/settings.py
and the gateway's settings in deploy/gateway.py (nginx template values, not a Python service's).

``python -m deploy.settings_table`` prints it; ``--write README.md`` puts it between the
README's ``settings-table`` markers. Generating it (and a test comparing it with the README)
keeps the documented names, defaults and descriptions from drifting away from the code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from deploy.gateway import GATEWAY_SETTINGS
from shared.settings import FILE_SUFFIX, CommonSettings, FanoutSettings, HistorySettings, IngestSettings, is_secret

__all__ = [
    "END_MARKER",
    "SERVICES",
    "START_MARKER",
    "Setting",
    "env_name",
    "main",
    "render",
    "settings",
    "splice",
]

SERVICES: dict[str, type[CommonSettings]] = {
    "ingest": IngestSettings,
    "history": HistorySettings,
    "fanout": FanoutSettings,
}
"""Each service and the settings class its entry point builds (tests check this against main.py)."""

START_MARKER = "<!-- settings-table:start -->"
END_MARKER = "<!-- settings-table:end -->"


@dataclass(frozen=True)
class Setting:
    """One ``LIVEFEED_*`` variable; ``default`` is spelled the way the environment would."""

    name: str
    default: str
    services: tuple[str, ...]
    description: str


def env_name(cls: type[CommonSettings], field: str) -> str:
    """The environment variable pydantic-settings reads ``field`` of ``cls`` from."""
    prefix = cls.model_config.get("env_prefix") or ""
    return f"{prefix}{field}".upper()


def settings() -> list[Setting]:
    """Every setting of every service, in declaration order (the common ones first), then the gateway's."""
    found: dict[str, tuple[FieldInfo, list[str]]] = {}
    for service, cls in SERVICES.items():
        for field, info in cls.model_fields.items():
            name = env_name(cls, field)
            found.setdefault(name, (info, []))[1].append(service)
    return [
        *(Setting(name, _format_default(info), tuple(services), _describe(name, info))
          for name, (info, services) in found.items()),
        *(Setting(g.name, g.default, ("gateway",), g.description) for g in GATEWAY_SETTINGS),
    ]


def render() -> str:
    """The markdown table, one row per setting, ending with a newline."""
    lines = ["| name | default | services | description |", "| --- | --- | --- | --- |"]
    for s in settings():
        default = f"`{s.default}`" if s.default else "*(empty)*"
        services = ", ".join(s.services)
        lines.append(f"| `{s.name}` | {default} | {services} | {_cell(s.description)} |")
    return "\n".join(lines) + "\n"


def splice(text: str, table: str) -> str:
    """``text`` with everything between the two markers replaced by ``table``."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START_MARKER} and {END_MARKER} are missing or out of order")
    head = text[: start + len(START_MARKER)]
    return f"{head}\n{table}{text[end:]}"


def _describe(name: str, info: FieldInfo) -> str:
    text = info.description or ""
    if is_secret(info):
        text += f" Or from the file `{name}{FILE_SUFFIX}` names (a Docker or Kubernetes secret)."
    return text


def _format_default(info: FieldInfo) -> str:
    """The default as the environment would spell it; a default that depends on the host (the CPU
    count) is shown as the field's ``json_schema_extra["shown_default"]`` instead, the same everywhere."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    value: object = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, list | tuple):
        return ",".join(_scalar(item) for item in value)
    return _scalar(value)


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table, or with ``--write FILE`` splice it into FILE between the markers."""
    parser = argparse.ArgumentParser(prog="python -m deploy.settings_table", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="FILE", help="update FILE in place")
    args = parser.parse_args(argv)
    table = render()
    if args.write is None:
        sys.stdout.write(table)
        return 0
    path: Path = args.write
    path.write_text(splice(path.read_text(), table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
