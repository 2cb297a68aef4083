"""``livefeed credentials``: add, list and remove the newsroom's named credentials in the credentials file.

An ops command on the machine that holds the file (``--file``, default LIVEFEED_CREDENTIALS_FILE),
not a call to the API: ingest re-reads the file within a second or two of a change. ``add``
prints the new token once, on stdout; the file keeps only its prefix and argon2 hash.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from shared import credentials as creds
from shared.credentials import Credential, CredentialsError, Role

from .errors import CliError, ExitCode
from .output import Printer

__all__ = ["add_parser", "run"]

FILE_ENV = "LIVEFEED_CREDENTIALS_FILE"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], epilog: str) -> None:
    """The ``credentials`` command and its ``add``, ``list`` and ``remove`` subcommands."""
    parser = commands.add_parser(
        "credentials", help="add, list or remove newsroom credentials (edits the credentials file)",
        description=__doc__, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    file_option = argparse.ArgumentParser(add_help=False)
    file_option.add_argument("--file", type=Path, default=None,
                             help=f"the credentials file (default: ${FILE_ENV})")
    file_option.add_argument("--json", action="store_true", help="print JSON instead of text")
    add = actions.add_parser("add", parents=[file_option], help="create a credential and print its token once")
    add.add_argument("name", help="who it is for, e.g. ana or desk-kyiv (lowercase letters, digits, . _ -)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="reporter: posts and edits its own items; editor: edits any item and pins; "
                          "admin: also retracts and mints reader tokens")
    add.add_argument("--feeds", default="*", metavar="A,B",
                     help="feeds it may write to: slugs, or prefix-* (default: every feed)")
    actions.add_parser("list", parents=[file_option], help="list the credentials (names, roles, feeds, prefixes)")
    remove = actions.add_parser("remove", parents=[file_option], help="remove a credential: its token stops working")
    remove.add_argument("name")


def run(args: argparse.Namespace, printer: Printer) -> int:
    """Run ``credentials add|list|remove``; raises :class:`CliError` for a usage or file problem."""
    path = args.file or (Path(os.environ[FILE_ENV]) if os.environ.get(FILE_ENV) else None)
    if path is None:
        raise CliError(ExitCode.usage, f"give --file PATH or set {FILE_ENV}")
    try:
        existing = creds.load(path) if args.action != "add" or path.exists() else []
        if args.action == "add":
            return _add(path, existing, args, printer)
        if args.action == "remove":
            return _remove(path, existing, args.name, printer)
    except CredentialsError as exc:
        raise CliError(ExitCode.refused, str(exc)) from None
    except OSError as exc:
        raise CliError(ExitCode.failed, f"cannot write {path}: {exc.strerror or exc}") from None
    for credential in existing:
        _show(printer, credential)
    if not existing and not printer.json_lines:
        printer.note(f"no credentials in {path}")
    return ExitCode.ok


def _add(path: Path, existing: list[Credential], args: argparse.Namespace, printer: Printer) -> int:
    if any(c.name == args.name for c in existing):
        raise CliError(ExitCode.conflict, f"{args.name} already has a credential; remove it first to replace it")
    token = creds.new_token()
    feeds = [part.strip() for part in args.feeds.split(",") if part.strip()]
    credential = creds.make(args.name, args.role, feeds, token)
    creds.save(path, [*existing, credential])
    if printer.json_lines:
        printer.json({"name": credential.name, "role": credential.role.value, "feeds": list(credential.feeds),
                      "prefix": credential.prefix, "token": token})
    else:
        printer.line(token)
        printer.note(f"added {credential.name} ({credential.role.value}, feeds {','.join(credential.feeds)}) to "
                     f"{path}; the token above is shown only now")
    return ExitCode.ok


def _remove(path: Path, existing: list[Credential], name: str, printer: Printer) -> int:
    kept = [c for c in existing if c.name != name]
    if len(kept) == len(existing):
        raise CliError(ExitCode.not_found, f"no credential named {name} in {path}")
    creds.save(path, kept)
    printer.note(f"removed {name}; its token stops working within a few seconds")
    return ExitCode.ok


def _show(printer: Printer, credential: Credential) -> None:
    if printer.json_lines:
        printer.json({"name": credential.name, "role": credential.role.value, "feeds": list(credential.feeds),
                      "prefix": credential.prefix})
        return
    printer.line(f"{credential.name:<24} {credential.role.value:<9} {credential.prefix}…  "
                 f"feeds {','.join(credential.feeds)}")
