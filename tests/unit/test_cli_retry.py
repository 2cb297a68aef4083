"""The retry command the CLI prints for a write whose outcome is unknown: the same command, the same key, no token."""

from __future__ import annotations

import shlex

from clients.cli.main import retry_command


def test_the_retry_is_the_same_command_with_the_key() -> None:
    argv = ["post", "--feed", "ukraine", "Kyiv: sirens", "--body", "it's loud"]
    assert shlex.split(retry_command(argv, "cli-abc")) == ["livefeed", *argv, "--idempotency-key", "cli-abc"]


def test_the_retry_drops_the_timeout_and_retries_that_left_the_outcome_unknown() -> None:
    """Printed as given, 'post --timeout 0.001 --retries 0' only ended unknown again (outside review)."""
    argv = ["post", "--feed", "ukraine", "x", "--timeout", "0.001", "--retries=0", "--url", "http://gw"]
    assert shlex.split(retry_command(argv, "k")) == ["livefeed", "post", "--feed", "ukraine", "x", "--url", "http://gw",
                                                     "--idempotency-key", "k"]


def test_a_given_key_is_replaced_and_the_token_is_never_printed() -> None:
    argv = ["retract", "--feed", "x", "--token", "s3cret", "--idempotency-key", "old", "--token=s3cret2",
            "--idempotency-key=older", "01m8cng7dqz8mzsg2ge1ydk21g"]
    printed = retry_command(argv, "new")
    assert "s3cret" not in printed and "old" not in printed
    assert shlex.split(printed) == ["livefeed", "retract", "--feed", "x", "01m8cng7dqz8mzsg2ge1ydk21g",
                                    "--idempotency-key", "new"]
