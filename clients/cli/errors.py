"""The CLI's exit codes and the one error type every command raises to report a failure."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CliError", "ExitCode"]


class ExitCode(IntEnum):
    """Distinct codes so scripts can tell what went wrong without parsing messages."""

    ok = 0
    failed = 1
    usage = 2
    auth = 3
    unreachable = 4
    not_found = 5
    conflict = 6
    refused = 7
    unavailable = 8
    interrupted = 130


EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected failure (e.g. `bench` without the livefeed-bench command)
  2    usage error: bad arguments, or a --url that is not an http(s) URL
  3    no newsroom token, the gateway refused it (401), or its credential may not do this (403)
  4    the gateway could not be reached (connection refused, DNS, timeout)
  5    no such item, or it was retracted (404, 410)
  6    conflict: the item moved on (If-Match, 412) or is busy (409)
  7    the request was refused as invalid (400, 413, 422); the message names the field
  8    the service is unavailable or rate-limiting (429, 5xx) after retries
  130  interrupted (Ctrl-C)"""


class CliError(Exception):
    """A failure to report as one line on stderr and an exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
