"""Who may write and how fast: bearer tokens matched to an identity, and the per-caller token bucket."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.ingest.auth import RateLimiter, TokenCheck

TOKENS = [SecretStr("newsroom-one"), SecretStr("newsroom-two")]


def check() -> TokenCheck:
    return TokenCheck(TOKENS)


def allowed_at(limiter: RateLimiter, caller: str, now: float, times: int) -> int:
    """How many of ``times`` writes at ``now`` the limiter lets through."""
    return sum(limiter.allow(caller, now) == 0.0 for _ in range(times))


# Tokens


def test_a_configured_token_gets_a_short_hex_identity() -> None:
    identity = check().identify("Bearer newsroom-one")
    assert identity is not None
    assert len(identity) == 16
    int(identity, 16)


def test_the_identity_never_contains_the_token() -> None:
    identity = check().identify("Bearer newsroom-one")
    assert identity is not None
    assert "newsroom" not in identity


def test_each_token_has_its_own_identity_the_same_in_every_process() -> None:
    """Rate limits and idempotency scopes key on it, and a retry may reach another ingest process."""
    one, two = check().identify("Bearer newsroom-one"), check().identify("Bearer newsroom-two")
    assert one is not None and two is not None and one != two
    assert TokenCheck(list(reversed(TOKENS))).identify("Bearer newsroom-one") == one


def test_spaces_around_the_token_are_ignored() -> None:
    assert check().identify("Bearer   newsroom-two  ") == check().identify("Bearer newsroom-two")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "newsroom-one",
        "Basic newsroom-one",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "Bearer newsroom",
        "Bearer newsroom-one-and-more",
        "Bearer newsroom-one newsroom-two",
        "Bearer NEWSROOM-ONE",
        "Bearer newsroom-onë",
    ],
)
def test_anything_but_a_configured_bearer_token_is_refused(header: str | None) -> None:
    assert check().identify(header) is None


def test_with_no_tokens_configured_every_write_is_refused() -> None:
    assert TokenCheck([]).identify("Bearer newsroom-one") is None
    assert TokenCheck([]).identify("Bearer ") is None


# Rate limits


def test_a_burst_goes_through_at_once_and_the_next_write_waits() -> None:
    limiter = RateLimiter(rate=10.0, burst=5)
    assert allowed_at(limiter, "desk", 100.0, 5) == 5
    assert limiter.allow("desk", 100.0) == pytest.approx(0.1)


def test_the_wait_is_the_time_until_one_token_has_refilled() -> None:
    limiter = RateLimiter(rate=4.0, burst=1)
    assert limiter.allow("desk", 0.0) == 0.0
    assert limiter.allow("desk", 0.0) == pytest.approx(0.25)
    assert limiter.allow("desk", 0.1) == pytest.approx(0.15)


def test_after_the_wait_it_says_the_write_goes_through() -> None:
    limiter = RateLimiter(rate=4.0, burst=1)
    limiter.allow("desk", 0.0)
    wait = limiter.allow("desk", 0.0)
    assert limiter.allow("desk", 0.0 + wait) == 0.0
    assert limiter.allow("desk", 0.0 + wait) > 0.0


def test_a_refused_write_uses_up_nothing() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    limiter.allow("desk", 0.0)
    for _ in range(50):
        limiter.allow("desk", 0.5)
    assert limiter.allow("desk", 1.0) == 0.0


def test_a_slow_rate_waits_longer_than_a_second() -> None:
    limiter = RateLimiter(rate=0.5, burst=1)
    limiter.allow("desk", 0.0)
    assert limiter.allow("desk", 0.0) == pytest.approx(2.0)


def test_the_sustained_rate_is_the_configured_rate() -> None:
    """A write every 1/64 s for 16 s against 8 writes/s (steps exact in binary floating point)."""
    limiter = RateLimiter(rate=8.0, burst=1)
    granted = sum(limiter.allow("desk", step / 64) == 0.0 for step in range(1024))
    assert granted == 16 * 8


def test_an_idle_caller_saves_up_no_more_than_the_burst() -> None:
    limiter = RateLimiter(rate=10.0, burst=3)
    assert allowed_at(limiter, "desk", 0.0, 3) == 3
    assert allowed_at(limiter, "desk", 3600.0, 10) == 3


def test_each_caller_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    assert allowed_at(limiter, "desk-a", 0.0, 3) == 2
    assert allowed_at(limiter, "desk-b", 0.0, 3) == 2


def test_without_a_time_given_it_uses_the_monotonic_clock() -> None:
    limiter = RateLimiter(rate=0.001, burst=1)
    assert limiter.allow("desk") == 0.0
    assert limiter.allow("desk") > 900.0


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "beArer"])
def test_the_scheme_name_is_case_insensitive(scheme: str) -> None:
    """RFC 7235: the auth-scheme is a case-insensitive token."""
    assert check().identify(f"{scheme} newsroom-one") == check().identify("Bearer newsroom-one") is not None
