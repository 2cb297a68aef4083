"""The CLI's exit codes and the one error type every command raises to report a failure."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EXIT_CODES_HELP", "CliError", "ExitCode", "OutcomeUnknown"]


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
    outcome_unknown = 9
    interrupted = 130


EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected failure (e.g. `bench` without the livefeed-bench command)
  2    usage error: bad arguments, or a --url that is not an http(s) URL
  3    no newsroom token, the gateway refused it (401), or its credential may not do this (403)
  4    the gateway could not be reached (connection refused, DNS, timeout); a write was not sent
  5    no such item, or it was retracted (404, 410); `history` of a feed history does not list
  6    conflict: the item moved on (If-Match, 412), is busy, or --external-id names another item (409)
  7    the request was refused as invalid (400, 413, 422); the message names the field
  8    the service is unavailable or rate-limiting (429, 5xx) after retries; a write was not applied
  9    a write's outcome is unknown (a timeout or a dropped connection after it was sent, a 502/504,
       or Kafka did not acknowledge it in time): it may have been applied. stderr prints the
       Idempotency-Key it used and the command that retries it safely (the same command with
       --idempotency-key KEY: a retry with that key cannot apply it twice)
  130  interrupted (Ctrl-C)"""


class CliError(Exception):
    """A failure to report as one line on stderr and an exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class OutcomeUnknown(CliError):
    """A write that may have been applied: it was sent, and no answer says whether it was.

    ``key`` is the Idempotency-Key it carried: a retry with the same key cannot apply it twice.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(ExitCode.outcome_unknown, f"the write may have been applied: {reason}")
        self.key = key
        self.reason = reason
