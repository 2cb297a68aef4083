"""Secret settings read from ``LIVEFEED_<NAME>_FILE`` (Docker and Kubernetes secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import FanoutSettings, HistorySettings, IngestSettings


def test_a_secret_comes_from_its_file_without_the_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "key"
    secret.write_text("k" * 40 + "\n")
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY_FILE", str(secret))
    for cls in (IngestSettings, HistorySettings, FanoutSettings):
        key = cls().reader_token_key
        assert key is not None and key.get_secret_value() == "k" * 40


def test_the_variable_and_its_file_together_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-the-file")
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY_FILE", str(secret))
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY", "from-the-variable")
    with pytest.raises(ValueError, match="not both"):
        HistorySettings()


def test_an_unreadable_file_stops_the_process_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="LIVEFEED_READER_TOKEN_KEY_FILE: cannot read"):
        FanoutSettings()


def test_a_secret_file_is_never_in_the_settings_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "key"
    secret.write_text("do-not-print-me-0123456789abcdef0123")
    monkeypatch.setenv("LIVEFEED_READER_TOKEN_KEY_FILE", str(secret))
    settings = HistorySettings()
    assert "do-not-print-me" not in repr(settings)
    assert "do-not-print-me" not in str(settings.model_dump())


def test_plain_settings_ignore_a_file_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only secrets read files: a stray LIVEFEED_TOPIC_FILE changes nothing."""
    other = tmp_path / "topic"
    other.write_text("elsewhere")
    monkeypatch.setenv("LIVEFEED_TOPIC_FILE", str(other))
    assert HistorySettings().topic == "livefeed.events"
