"""Who may write and how fast: named credentials found by a token's prefix, checked with argon2, and the
per-credential token bucket."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from services.ingest.auth import Credentials, RateLimiter
from shared import credentials as creds
from shared.credentials import Credential, CredentialsError, Role
from shared.errors import ApiError

ANA = "lf_ana-token-0123456789abcdefghij"
BEN = "lf_ben-token-0123456789abcdefghij"
ANA_TWIN = "lf_ana-tokenXX-same-prefix-other-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingVerifier:
    """The real argon2 check, counted: the caches are there to make it rare."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, credential: Credential, token: str) -> bool:
        self.calls += 1
        return creds.verify(credential, token)


@pytest.fixture(scope="module")
def records() -> dict[str, Credential]:
    return {
        "ana": creds.make("ana", Role.editor, ["ukraine", "wire-*"], ANA),
        "ben": creds.make("ben", Role.reporter, ["*"], BEN),
        "ana-twin": creds.make("ana-twin", Role.admin, ["*"], ANA_TWIN),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier() -> CountingVerifier:
    return CountingVerifier()


def open_file(path: Path, records: list[Credential], clock: Clock, verifier: CountingVerifier) -> Credentials:
    creds.save(path, records)
    return Credentials.open(path, clock=clock, verifier=verifier)


def rewrite(path: Path, records: list[Credential], clock: Clock) -> None:
    """Save ``records`` and let the reload interval pass."""
    creds.save(path, records)
    clock.now += Credentials.RELOAD_EVERY_S


def identify(registry: Credentials, header: str | None) -> str | None:
    principal = asyncio.run(registry.identify(header))
    return None if principal is None else principal.name


# Finding the credential


def test_a_token_is_its_credential_with_its_role_and_feeds(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"], records["ben"]], clock, verifier)
    principal = asyncio.run(registry.identify(f"Bearer {ANA}"))
    assert principal is not None
    assert (principal.name, principal.role) == ("ana", Role.editor)
    assert "ukraine" in principal.feeds and "wire-afp" in principal.feeds and "world" not in principal.feeds
    assert identify(registry, f"Bearer {BEN}") == "ben"


def test_two_credentials_with_one_prefix_are_both_tried(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    assert records["ana"].prefix == records["ana-twin"].prefix
    registry = open_file(tmp_path / "c.json", [records["ana"], records["ana-twin"]], clock, verifier)
    assert identify(registry, f"Bearer {ANA_TWIN}") == "ana-twin"
    assert identify(registry, f"Bearer {ANA}") == "ana"


@pytest.mark.parametrize(
    "header",
    [None, "", ANA, f"Basic {ANA}", "Bearer", "Bearer ", f"Bearer {ANA}x", f"Bearer {ANA[:-1]}",
     f"Bearer {ANA} {BEN}", f"Bearer {ANA.upper()}", "Bearer lf_unknown-prefix-0123456789", f"Bearer {ANA[:12]}"],
)
def test_anything_but_a_credential_token_is_refused(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier, header: str | None
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    assert identify(registry, header) is None


def test_an_unknown_prefix_costs_no_argon2(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    for n in range(20):
        assert identify(registry, f"Bearer lf_other{n:04d}-0123456789abcdef") is None
    assert verifier.calls == 0


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "beArer"])
def test_the_scheme_name_is_case_insensitive(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier, scheme: str
) -> None:
    """RFC 7235: the auth-scheme is a case-insensitive token; spaces around the token are ignored."""
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    assert identify(registry, f"{scheme}   {ANA}  ") == "ana"


# The caches


def test_a_checked_token_costs_no_argon2_for_a_minute(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    for _ in range(50):
        assert identify(registry, f"Bearer {ANA}") == "ana"
        clock.now += 0.5
    assert verifier.calls == 1
    clock.now += Credentials.OK_TTL_S
    assert identify(registry, f"Bearer {ANA}") == "ana"
    assert verifier.calls == 2


def test_a_burst_of_first_writes_with_one_token_waits_for_one_check(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    """35 writes at once from a tool that just started: one argon2 check, not 35 in a queue."""
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)

    async def burst() -> list[object]:
        return await asyncio.gather(*(registry.identify(f"Bearer {ANA}") for _ in range(35)))

    answers = asyncio.run(burst())
    assert [getattr(a, "name", None) for a in answers] == ["ana"] * 35
    assert verifier.calls == 1


def test_a_flood_of_made_up_tokens_from_one_address_gets_429s_without_argon2(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    """Someone who knows a prefix cannot spend ingest's argon2 slots: only CHECK_BURST checks, then 429."""
    registry = open_file(tmp_path / "c.json", [records["ana"], records["ben"]], clock, verifier)
    refused = 0
    for n in range(50):
        try:
            asyncio.run(registry.identify(f"Bearer {ANA[:12]}-flood-{n:06d}-abcdef", "203.0.113.9"))
        except ApiError as exc:
            assert (exc.status, exc.code, exc.headers) == (429, "auth_rate_limited", {"Retry-After": "1"})
            refused += 1
    assert verifier.calls == Credentials.CHECK_BURST and refused == 50 - Credentials.CHECK_BURST
    assert asyncio.run(registry.identify(f"Bearer {BEN}", "198.51.100.7")) is not None


def test_a_token_in_use_stays_trusted_without_argon2(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    """Each use extends the minute, so a steady writer never has to queue behind a flood's checks."""
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    for _ in range(10):
        assert identify(registry, f"Bearer {ANA}") == "ana"
        clock.now += Credentials.OK_TTL_S - 1
    assert verifier.calls == 1


def test_a_repeated_wrong_token_with_a_known_prefix_is_checked_once(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    wrong = ANA[:12] + "-guess-0123456789abcdef"
    for _ in range(30):
        assert identify(registry, f"Bearer {wrong}") is None
    assert verifier.calls == 1
    clock.now += Credentials.BAD_TTL_S
    assert identify(registry, f"Bearer {wrong}") is None
    assert verifier.calls == 2


def test_the_caches_never_hold_a_token(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    registry = open_file(tmp_path / "c.json", [records["ana"]], clock, verifier)
    identify(registry, f"Bearer {ANA}")
    identify(registry, f"Bearer {ANA[:12]}-guess-0123456789abcdef")
    held = repr(vars(registry))
    assert ANA not in held and "guess" not in held


def test_checks_past_the_queue_limit_are_refused_at_once(
    tmp_path: Path, records: dict[str, Credential], clock: Clock
) -> None:
    """A flood of distinct wrong tokens with a known prefix queues at most MAX_WAITING argon2 checks."""
    started = 0

    def slow(credential: Credential, token: str) -> bool:
        nonlocal started
        started += 1
        return False

    creds.save(tmp_path / "c.json", [records["ana"]])
    registry = Credentials.open(tmp_path / "c.json", clock=clock, verifier=slow)

    async def flood() -> list[object]:
        flood_size = Credentials.MAX_WAITING + 20
        calls = [registry.identify(f"Bearer {ANA[:12]}-flood-{n:06d}-abcdef", f"10.0.{n // 250}.{n % 250}")
                 for n in range(flood_size)]
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(flood())
    busy = [a for a in answers if isinstance(a, ApiError)]
    assert len(busy) == 20 and all(a.status == 503 and a.code == "auth_busy" for a in busy)
    assert busy[0].headers == {"Retry-After": "1"}
    assert started == Credentials.MAX_WAITING


# Reloading the file


def test_a_credential_added_to_the_file_works_after_the_reload_interval(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    path = tmp_path / "c.json"
    registry = open_file(path, [records["ana"]], clock, verifier)
    assert identify(registry, f"Bearer {BEN}") is None
    creds.save(path, [records["ana"], records["ben"]])
    assert identify(registry, f"Bearer {BEN}") is None, "the file is looked at no more than once a second"
    clock.now += Credentials.RELOAD_EVERY_S
    assert identify(registry, f"Bearer {BEN}") == "ben"


def test_a_removed_credential_stops_working_at_once_even_when_cached(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    path = tmp_path / "c.json"
    registry = open_file(path, [records["ana"], records["ben"]], clock, verifier)
    assert identify(registry, f"Bearer {BEN}") == "ben"
    assert identify(registry, f"Bearer {ANA}") == "ana"
    rewrite(path, [records["ben"]], clock)
    assert identify(registry, f"Bearer {ANA}") is None
    assert identify(registry, f"Bearer {BEN}") == "ben"
    assert registry.names == ["ben"]


def test_a_changed_role_applies_at_once(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier
) -> None:
    path = tmp_path / "c.json"
    registry = open_file(path, [records["ana"]], clock, verifier)
    assert asyncio.run(registry.identify(f"Bearer {ANA}")).role == Role.editor  # type: ignore[union-attr]
    rewrite(path, [records["ana"].model_copy(update={"role": Role.reporter})], clock)
    assert asyncio.run(registry.identify(f"Bearer {ANA}")).role == Role.reporter  # type: ignore[union-attr]


def test_a_broken_file_keeps_the_last_good_credentials_and_says_so(
    tmp_path: Path, records: dict[str, Credential], clock: Clock, verifier: CountingVerifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "c.json"
    registry = open_file(path, [records["ana"]], clock, verifier)
    path.write_text('{"credentials": [')
    clock.now += Credentials.RELOAD_EVERY_S
    with caplog.at_level(logging.ERROR, "livefeed.ingest.auth"):
        assert identify(registry, f"Bearer {ANA}") == "ana"
    assert [r.getMessage() for r in caplog.records] == ["credentials file unusable; keeping the last good credentials"]
    os.unlink(path)
    clock.now += Credentials.RELOAD_EVERY_S
    assert identify(registry, f"Bearer {ANA}") == "ana"
    rewrite(path, [records["ben"]], clock)
    assert identify(registry, f"Bearer {BEN}") == "ben"
    assert identify(registry, f"Bearer {ANA}") is None


def test_a_missing_or_broken_file_at_start_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read"):
        Credentials.open(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"credentials": [{"name": "x"}]}')
    with pytest.raises(CredentialsError, match=r"bad.json: credentials\.0\.role: Field required"):
        Credentials.open(tmp_path / "bad.json")


# Rate limits


def allowed_at(limiter: RateLimiter, caller: str, now: float, times: int) -> int:
    """How many of ``times`` writes at ``now`` the limiter lets through."""
    return sum(limiter.allow(caller, now) == 0.0 for _ in range(times))


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


def test_the_buckets_kept_are_bounded_and_only_full_ones_are_forgotten() -> None:
    limiter = RateLimiter(rate=1.0, burst=2, max_callers=3)
    assert limiter.allow("busy", now=0.0) == 0.0
    limiter.allow("busy", now=0.0)
    for caller in ("a", "b"):
        limiter.allow(caller, now=0.0)
    limiter.allow("newcomer", now=1.5)
    assert limiter.allow("busy", now=1.5) == 0.0
    assert limiter.allow("busy", now=1.5) > 0, "busy's bucket was kept: it had not refilled"
