# PYTHON_ARGCOMPLETE_OK
"""``livefeed``: the command line for newsroom tools and ops.

Publish, correct and retract items, read a feed's history, and follow a feed live. The base
URL and the newsroom token come from --url/--token or LIVEFEED_URL/LIVEFEED_TOKEN; every
failure is one line on stderr and a distinct exit code (see ``livefeed --help``). A write whose
outcome is unknown says so, with the command that retries it safely (exit 9).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import quote

import argcomplete

from shared.models import valid_feed, valid_item_id, valid_tag

from . import credentials
from .client import Client, ReaderTokenSource, check_url
from .errors import EXIT_CODES_HELP, CliError, ExitCode, OutcomeUnknown
from .output import Printer
from .tail import Tail

__all__ = ["main"]

DEFAULT_URL = "http://127.0.0.1:8080"
BENCH = "livefeed-bench"

ENVIRONMENT_HELP = """environment:
  LIVEFEED_URL     the gateway's base URL (default http://127.0.0.1:8080)
  LIVEFEED_TOKEN   the newsroom token for post, edit, retract and reader-token (safer than
                   --token, which other users of the machine can see in the process list)
  LIVEFEED_TOKEN_FILE
                   a file holding the newsroom token (a Docker or Kubernetes secret)
  LIVEFEED_CREDENTIALS_FILE
                   the credentials file that `credentials` edits (on the ingest machine)
  LIVEFEED_READER_TOKEN, LIVEFEED_READER_TOKEN_FILE
                   a private feed's reader token for history and tail (safer than
                   --reader-token); the file is read again when the token expires"""

EXAMPLES = """examples:
  livefeed post --feed ukraine --breaking "Explosions heard in Kyiv" --body "..." --tag kyiv
  livefeed edit --feed ukraine 01m8cng7dqz8mzsg2ge1ydk21g --headline "Corrected headline" --if-match 1
  livefeed retract --feed ukraine 01m8cng7dqz8mzsg2ge1ydk21g
  livefeed history --feed ukraine --limit 5
  livefeed tail --feed ukraine --tags kyiv,odesa
  livefeed credentials add ana --role editor --feeds ukraine,world
  livefeed reader-token --feed wire-afp --ttl 3600
  livefeed bench --help"""

COMPLETION_HELP = """shell completion (bash, zsh; argcomplete):
  eval "$(register-python-argcomplete livefeed)"     # in ~/.bashrc or ~/.zshrc
  activate-global-python-argcomplete --user          # or once, for every argcomplete command"""

TAIL_GIVE_UP_S = 15.0
"""How long ``tail`` keeps trying a gateway it cannot reach before it exits 4."""


def _version() -> str:
    try:
        return importlib.metadata.version("livefeed")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run from a source checkout)"


def _feed(value: str) -> str:
    if not valid_feed(value):
        raise argparse.ArgumentTypeError("a feed is lowercase letters, digits and dashes, e.g. ukraine")
    return value


def _item_id(value: str) -> str:
    value = value.strip().lower()
    if not valid_item_id(value):
        raise argparse.ArgumentTypeError("an item id is the 26-character id that post printed")
    return value


def _tag(value: str) -> str:
    if not valid_tag(value):
        raise argparse.ArgumentTypeError("a tag is lowercase letters, digits and dashes, up to 40, e.g. kyiv")
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more (not {value!r})")
    return number


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more (not {value!r})")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < 86_400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, e.g. 15 (not {value!r})")
    return number


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--url", default=os.environ.get("LIVEFEED_URL", DEFAULT_URL),
                       help="gateway base URL (env LIVEFEED_URL; default %(default)s)")
    group.add_argument("--token", default=None, help="newsroom token (env LIVEFEED_TOKEN, preferred)")
    group.add_argument("--timeout", type=_seconds, default=15.0,
                       help="seconds per HTTP request (default %(default)s)")
    group.add_argument("--retries", type=_count, default=3,
                       help="retries after a timeout, 429 or 5xx; writes stay idempotent (default %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON (one object per line) instead of text")
    return common


def _item_fields(parser: argparse.ArgumentParser, *, editing: bool) -> None:
    parser.add_argument("--body", help="the item's text (plain text; newlines are kept)")
    parser.add_argument("--body-file", metavar="PATH", help="read the body from a file ('-' for stdin)")
    parser.add_argument("--tag", action="append", dest="tags", metavar="TAG", type=_tag,
                        help="a tag (repeat for several)" + ("; replaces the item's tags" if editing else ""))
    parser.add_argument("--byline", help="who wrote it")
    parser.add_argument("--link", metavar="URL", help="a source link (http or https)")
    _idempotency_key(parser)


def _idempotency_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idempotency-key", metavar="KEY",
                        help="make a retried command safe across invocations (default: a new key per command; "
                             "exit 9 prints the one it used)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livefeed",
        description="Newsroom and ops command line for livefeed: post, correct and retract items, "
                    "read history, follow a feed live.",
        epilog=f"{ENVIRONMENT_HELP}\n\n{EXIT_CODES_HELP}\n\n{EXAMPLES}\n\n{COMPLETION_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"livefeed {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common],
                                   epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)

    post = command("post", "publish an item to a feed")
    post.add_argument("--feed", required=True, type=_feed)
    post.add_argument("headline", help="the headline (1 to 300 characters)")
    post.add_argument("--breaking", action="store_true", help="mark it BREAKING")
    post.add_argument("--pin", action="store_true", help="pin it on top of the feed")
    post.add_argument("--key-event", action="store_true", help="list it among the feed's key events")
    post.add_argument("--external-id", metavar="ID",
                      help="your CMS's id for it (printable ASCII, up to 200): posting the same id and body to the "
                           "feed again answers the existing item instead of publishing a second one")
    _item_fields(post, editing=False)

    edit = command("edit", "edit or correct an item: only the fields given change")
    edit.add_argument("--feed", required=True, type=_feed)
    edit.add_argument("id", type=_item_id, help="the item's id")
    edit.add_argument("--headline")
    _item_fields(edit, editing=True)
    edit.add_argument("--no-tags", action="store_true", help="remove every tag")
    edit.add_argument("--breaking", dest="urgency", action="store_const", const="breaking", help="mark it BREAKING")
    edit.add_argument("--normal", dest="urgency", action="store_const", const="normal", help="remove BREAKING")
    edit.add_argument("--pin", dest="pinned", action="store_const", const=True, help="pin it on top")
    edit.add_argument("--unpin", dest="pinned", action="store_const", const=False, help="unpin it")
    edit.add_argument("--key-event", action=argparse.BooleanOptionalAction, default=None,
                      help="list it among the key events (or not)")
    edit.add_argument("--correction", metavar="NOTE",
                      help="a correction note: readers see 'Corrected HH:MM: NOTE' on the item (one line, 500 max)")
    edit.add_argument("--if-match", metavar="VERSION", help="refuse (exit 6) unless the item is at this version")

    retract = command("retract", "retract an item: readers' pages remove it")
    retract.add_argument("--feed", required=True, type=_feed)
    retract.add_argument("id", type=_item_id, help="the item's id")
    retract.add_argument("--if-match", metavar="VERSION", help="refuse (exit 6) unless the item is at this version")
    _idempotency_key(retract)

    history = command("history", "print a feed's current items, newest first")
    history.add_argument("--feed", required=True, type=_feed)
    history.add_argument("--limit", type=_positive, default=20, help="items to print, up to 200 (default %(default)s)")
    history.add_argument("--before", metavar="CURSOR", help="page back: the cursor the previous page printed")
    history.add_argument("--tag", type=_tag, help="only items with this tag")
    history.add_argument("--key-events", action="store_true", help="only key events, however far back")
    history.add_argument("--reader-token", help="a private feed's reader token (env LIVEFEED_READER_TOKEN[_FILE])")

    command("feeds", "list the feeds, most recently changed first")

    tail = command("tail", "print a feed's events as they happen, resuming after drops")
    tail.add_argument("--feed", required=True, type=_feed)
    tail.add_argument("--since", metavar="CURSOR", help="resume after this cursor (default: from now)")
    tail.add_argument("--tags", metavar="A,B", help="only events of items with one of these tags")
    tail.add_argument("--count", type=_positive, help="exit after printing this many events")
    tail.add_argument("--give-up", type=_seconds, default=TAIL_GIVE_UP_S, metavar="SECONDS",
                      help="exit 4 once the gateway has been unreachable this long (default %(default)g); "
                           "drops and restarts behind a reachable gateway are always resumed")
    tail.add_argument("--reader-token", help="a private feed's reader token (env LIVEFEED_READER_TOKEN[_FILE])")

    reader = command("reader-token", "mint a reader token for a private feed (needs an admin's feeds:manage)")
    reader.add_argument("--feed", required=True, type=_feed)
    reader.add_argument("--ttl", type=_positive, default=3600, metavar="SECONDS",
                        help="how long it lasts (default %(default)s; the server caps it)")

    credentials.add_parser(commands, EXIT_CODES_HELP)

    commands.add_parser("bench", help=f"run the benchmarks: the same as {BENCH} (every argument goes to it)",
                        add_help=False)
    return parser


# -- commands ------------------------------------------------------------------------------------


def _read_body(args: argparse.Namespace) -> str | None:
    if args.body_file is None:
        return cast(str | None, args.body)
    if args.body is not None:
        raise CliError(ExitCode.usage, "give --body or --body-file, not both")
    try:
        if args.body_file == "-":
            return sys.stdin.read()
        with open(args.body_file, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise CliError(ExitCode.usage, f"cannot read --body-file: {exc}") from None


def _items_path(feed: str, suffix: str = "") -> str:
    return f"/v1/feeds/{quote(feed)}/items{suffix}"


def _written(printer: Printer, client: Client, answer: dict[str, Any], verb: str) -> None:
    if printer.json_lines:
        printer.json(answer)
        return
    item = answer["item"]
    printer.item(item, verb)
    printer.line(f"    cursor {answer.get('cursor')}  {client.base_url}/feeds/{item['feed']}#item-{item['id']}")


async def _post(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "headline": args.headline,
        "body": _read_body(args) or "",
        "tags": args.tags or [],
        "urgency": "breaking" if args.breaking else "normal",
        "pinned": args.pin,
        "key_event": args.key_event,
    }
    if args.byline is not None:
        body["byline"] = args.byline
    if args.link is not None:
        body["url"] = args.link
    if args.external_id is not None:
        body["external_id"] = args.external_id
    answer = await client.write("POST", _items_path(args.feed), body, key=args.idempotency_key)
    _written(printer, client, answer, "published")
    return ExitCode.ok


async def _edit(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("headline", args.headline), ("body", _read_body(args)), ("byline", args.byline), ("url", args.link),
            ("urgency", args.urgency), ("pinned", args.pinned), ("key_event", args.key_event),
            ("correction", args.correction),
        )
        if value is not None
    }
    if args.no_tags:
        changes["tags"] = []
    elif args.tags is not None:
        changes["tags"] = args.tags
    if not changes:
        raise CliError(ExitCode.usage, "nothing to change: give --headline, --body, --tag, --breaking, --pin, ...")
    answer = await client.write("PATCH", _items_path(args.feed, f"/{args.id}"), changes,
                                if_match=args.if_match, key=args.idempotency_key)
    _written(printer, client, answer, "updated")
    return ExitCode.ok


async def _retract(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    answer = await client.write("DELETE", _items_path(args.feed, f"/{args.id}"),
                                if_match=args.if_match, key=args.idempotency_key)
    _written(printer, client, answer, "retracted")
    return ExitCode.ok


async def _history(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    params: dict[str, str | int] = {"limit": min(args.limit, 1000 if args.key_events else 200)}
    if args.key_events:
        path = f"/v1/feeds/{quote(args.feed)}/key-events"
    else:
        path = _items_path(args.feed)
        if args.before:
            params["before"] = args.before
        if args.tag:
            params["tag"] = args.tag
    page = await client.get(path, params)
    if printer.json_lines:
        printer.json(page)
        return ExitCode.ok
    if not page.get("items"):
        await _require_known_feed(client, args.feed)
    for item in page.get("items", []):
        printer.item(item)
    if not page.get("items"):
        printer.note(f"{args.feed} has no items" + (" before that cursor" if args.before else " that match"))
    if page.get("next_before") and not args.key_events:
        printer.note(f"older items: livefeed history --feed {args.feed} --before {page['next_before']}")
    since = f" --since {page['cursor']}" if page.get("cursor") else ""
    printer.note(f"live from here: livefeed tail --feed {args.feed}{since}")
    return ExitCode.ok


async def _require_known_feed(client: Client, feed: str) -> None:
    """A feed is known when history lists it (it has an item in retention); an empty page of any other is an error.

    History answers an empty page for any well-formed slug, so only its feed list tells a typo from a quiet feed.
    Private feeds are never listed: an empty one is reported as unknown too.
    """
    listed = (await client.get("/v1/feeds")).get("feeds", [])
    if any(isinstance(entry, dict) and entry.get("feed") == feed for entry in listed):
        return
    raise CliError(ExitCode.not_found, f"no feed {feed}: it has no items in retention (a typo?). "
                   "`livefeed feeds` lists the public feeds")


async def _feeds(client: Client, printer: Printer, _: argparse.Namespace) -> int:
    answer = await client.get("/v1/feeds")
    if printer.json_lines:
        printer.json(answer)
        return ExitCode.ok
    for feed in answer.get("feeds", []):
        printer.line(str(feed.get("feed")))
    return ExitCode.ok


async def _tail(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    tail = Tail(client, printer, args.feed, since=args.since, tags=args.tags, count=args.count,
                give_up_s=args.give_up)
    try:
        return await tail.run()
    except asyncio.CancelledError:
        if tail.cursor:
            printer.note(f"stopped; resume with: livefeed tail --feed {args.feed} --since {tail.cursor}")
        raise


async def _reader_token(client: Client, printer: Printer, args: argparse.Namespace) -> int:
    answer = await client.write("POST", f"/v1/feeds/{quote(args.feed)}/reader-tokens", {"ttl_s": args.ttl})
    if printer.json_lines:
        printer.json(answer)
        return ExitCode.ok
    printer.line(str(answer.get("token")))
    printer.note(f"reader token for {answer.get('feed')}, valid until {answer.get('expires_at')}")
    return ExitCode.ok


COMMANDS: dict[str, Callable[[Client, Printer, argparse.Namespace], Any]] = {
    "post": _post, "edit": _edit, "retract": _retract, "history": _history, "feeds": _feeds, "tail": _tail,
    "reader-token": _reader_token,
}


def _newsroom_token(args: argparse.Namespace) -> str | None:
    """--token, else LIVEFEED_TOKEN, else the content of the file LIVEFEED_TOKEN_FILE names."""
    token = args.token or os.environ.get("LIVEFEED_TOKEN")
    if token:
        return str(token)
    path = os.environ.get("LIVEFEED_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError as exc:
        raise CliError(ExitCode.usage, f"LIVEFEED_TOKEN_FILE: cannot read {path} ({exc.strerror})") from None


async def _run(args: argparse.Namespace, printer: Printer) -> int:
    url = check_url(args.url)
    token = _newsroom_token(args)
    reader_token = ReaderTokenSource.from_args(getattr(args, "reader_token", None))
    async with Client(url, token, timeout=args.timeout, retries=max(0, args.retries),
                      reader_token=reader_token) as client:
        result: int = await COMMANDS[args.command](client, printer, args)
        return result


def _bench_executable() -> str | None:
    """Where ``livefeed-bench`` is: on PATH, else beside this ``livefeed`` (a venv used without activating it)."""
    beside = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    search = os.pathsep.join(part for part in (os.environ.get("PATH", os.defpath), beside) if part)
    return shutil.which(BENCH, path=search)


def _bench(argv: list[str]) -> int:
    """Replaces this process with ``livefeed-bench argv...``, so its exit code and signals are the bench's own.

    The CLI never imports the benchmarks: they are a separate program that ships with a source checkout.
    Returns only when ``livefeed-bench`` cannot be run, with the failure exit code.
    """
    executable = _bench_executable()
    if executable is None:
        print(f"livefeed: bench runs the {BENCH} command, which is not installed (not on PATH, nor beside "
              "livefeed); install it from a source checkout with: pip install -e '.[bench]'", file=sys.stderr)
        return ExitCode.failed
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(executable, [BENCH, *argv])
    except OSError as exc:
        print(f"livefeed: cannot run {executable}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.failed


_NOT_REPEATED = ("--idempotency-key", "--token", "--timeout", "--retries")
"""Options the retry command leaves out: the key is replaced, the token never printed, and the
timeout and retries that left the outcome unknown would only leave it unknown again."""


def retry_command(argv: Sequence[str], key: str) -> str:
    """``livefeed argv...`` with ``--idempotency-key key``, without the options of ``_NOT_REPEATED``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _NOT_REPEATED:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in _NOT_REPEATED)):
            kept.append(arg)
    return shlex.join(["livefeed", *kept, "--idempotency-key", key])


def _tell_unknown(printer: Printer, exc: OutcomeUnknown, argv: Sequence[str], *, retryable: bool) -> None:
    printer.note(f"{exc.message}. It was sent with Idempotency-Key: {exc.key}")
    if not retryable:
        printer.note("running the command again is safe: it makes nothing that the first attempt could duplicate")
        return
    token = " (give the token as before: LIVEFEED_TOKEN, not shown here)" if any(
        a == "--token" or a.startswith("--token=") for a in argv) else ""
    printer.note(f"retry it safely with this command (the same key cannot apply the write twice){token}:")
    printer.err.write(f"{retry_command(argv, exc.key)}\n")
    printer.err.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns (and, as a script, exits with) its exit code.

    ``bench`` does not return: the process becomes ``livefeed-bench`` (unless that cannot run).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return _bench(args_list[1:])
    parser = build_parser()
    argcomplete.autocomplete(parser)
    args = parser.parse_args(args_list)
    printer = Printer(json_lines=args.json)
    try:
        code = credentials.run(args, printer) if args.command == "credentials" else asyncio.run(_run(args, printer))
    except OutcomeUnknown as exc:
        _tell_unknown(printer, exc, args_list, retryable="idempotency_key" in args)
        code = exc.code
    except CliError as exc:
        printer.note(exc.message)
        code = exc.code
    except KeyboardInterrupt:
        code = ExitCode.interrupted
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
