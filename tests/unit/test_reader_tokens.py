"""Reader tokens for private feeds: which feeds are private, and what each token opens."""

from __future__ import annotations

import jwt
import pytest
from pydantic import SecretStr

from shared.errors import ApiError
from shared.models import FeedSet
from shared.reader_tokens import MAX_TOKEN_LENGTH, ReadAccess, ReaderTokens, bearer_token
from shared.settings import HistorySettings

KEY = SecretStr("0123456789abcdef0123456789abcdef")
NOW = 1_800_000_000.0


@pytest.fixture
def access() -> ReadAccess:
    return ReadAccess(FeedSet(["wire-*", "embargo"]), ReaderTokens(KEY))


def _refusal(access: ReadAccess, feed: str, token: str | None, now: float = NOW) -> ApiError:
    with pytest.raises(ApiError) as caught:
        access.check(feed, token, now=now)
    assert caught.value.fields == [{"field": "token", "message": caught.value.code}]
    return caught.value


def test_exact_names_and_prefixes_are_private() -> None:
    private = FeedSet(["wire-*", "embargo"])
    assert "wire-afp" in private and "embargo" in private
    assert "embargoed" not in private and "news" not in private and "wir" not in private
    assert not FeedSet([])


def test_a_public_feed_needs_no_token(access: ReadAccess) -> None:
    assert access.check("news", None, now=NOW) is None


def test_a_good_token_opens_its_feed_until_it_expires(access: ReadAccess) -> None:
    assert access.tokens is not None
    token, expires = access.tokens.mint("wire-afp", 60, now=NOW)
    assert expires == NOW + 60
    assert access.check("wire-afp", token, now=NOW + 59) == NOW + 60
    expired = _refusal(access, "wire-afp", token, now=NOW + 60)
    assert (expired.status, expired.code) == (401, "reader_token_expired")


def test_each_refusal_has_its_status_and_code(access: ReadAccess) -> None:
    assert access.tokens is not None
    other, _ = access.tokens.mint("embargo", 60, now=NOW)
    missing = _refusal(access, "wire-afp", None)
    assert (missing.status, missing.code) == (401, "reader_token_required")
    assert missing.headers == {"WWW-Authenticate": "Bearer"}
    wrong = _refusal(access, "wire-afp", other)
    assert (wrong.status, wrong.code) == (403, "reader_token_wrong_feed")
    assert _refusal(access, "wire-afp", "not.a.token").code == "reader_token_invalid"


def test_tokens_signed_otherwise_are_refused(access: ReadAccess) -> None:
    claims = {"feed": "wire-afp", "exp": int(NOW) + 60}
    forged = jwt.encode(claims, "another-key-another-key-another-key", algorithm="HS256")
    assert _refusal(access, "wire-afp", forged).code == "reader_token_invalid"
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert _refusal(access, "wire-afp", unsigned).code == "reader_token_invalid"
    no_expiry = jwt.encode({"feed": "wire-afp"}, KEY.get_secret_value(), algorithm="HS256")
    assert _refusal(access, "wire-afp", no_expiry).code == "reader_token_invalid"


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ReaderTokens(SecretStr("short"))


def test_private_feeds_without_a_key_fail_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEFEED_PRIVATE_FEEDS", "wire-*")
    with pytest.raises(ValueError, match="LIVEFEED_READER_TOKEN_KEY"):
        ReadAccess.from_settings(HistorySettings())


def test_the_header_wins_over_the_query() -> None:
    assert bearer_token("Bearer from-header", "from-query") == "from-header"
    assert bearer_token("bearer  spaced ", None) == "spaced"
    assert bearer_token(None, "from-query") == "from-query"
    assert bearer_token("Basic abc", "") is None


def test_an_over_long_token_is_refused_before_it_is_decoded(access: ReadAccess) -> None:
    assert access.tokens is not None
    token, _ = access.tokens.mint("wire-afp", 60, now=NOW, subject="x" * 100)
    assert len(token) < MAX_TOKEN_LENGTH and access.check("wire-afp", token, now=NOW) == NOW + 60
    padded = jwt.encode({"feed": "wire-afp", "exp": int(NOW) + 60, "pad": "x" * MAX_TOKEN_LENGTH},
                        KEY.get_secret_value(), algorithm="HS256")
    assert _refusal(access, "wire-afp", padded).code == "reader_token_invalid"


def test_a_mistyped_private_feed_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """'Wire-*' would match no feed and leave the wire public: refused, not ignored."""
    monkeypatch.setenv("LIVEFEED_PRIVATE_FEEDS", "Wire-*,embargo")
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY", KEY.get_secret_value())
    with pytest.raises(ValueError, match=r"LIVEFEED_PRIVATE_FEEDS: .*'Wire-\*'"):
        ReadAccess.from_settings(HistorySettings())
