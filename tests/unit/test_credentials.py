"""The credentials file: records with a prefix and an argon2 hash, never a token, written atomically."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest

from shared import credentials as creds
from shared.credentials import Credential, CredentialsError, Role

TOKEN = "lf_abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(scope="module")
def record() -> Credential:
    return creds.make("ana", Role.editor, ["ukraine", "wire-*"], TOKEN)


def test_a_new_token_is_long_random_and_marked() -> None:
    tokens = {creds.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("lf_") and len(t) == 46 for t in tokens)


def test_a_record_keeps_the_prefix_and_an_argon2id_hash_never_the_token(record: Credential) -> None:
    assert record.prefix == TOKEN[: creds.PREFIX_CHARS] == "lf_abcdefghi"
    assert record.hash.startswith("$argon2id$")
    assert TOKEN not in creds.dump([record]).decode()
    assert creds.verify(record, TOKEN)
    assert not creds.verify(record, TOKEN + "x")
    assert not creds.verify(record.model_copy(update={"hash": "$argon2id$broken"}), TOKEN)


def test_the_file_round_trips(tmp_path: Path, record: Credential) -> None:
    other = record.model_copy(update={"name": "ben", "role": Role.admin, "feeds": ("*",)})
    creds.save(tmp_path / "c.json", [record, other])
    assert creds.load(tmp_path / "c.json") == [record, other]
    assert creds.parse(b'{"credentials": []}') == []


def test_the_file_is_written_atomically_and_for_its_owner_only(tmp_path: Path, record: Credential) -> None:
    path = tmp_path / "c.json"
    path.write_text("old")
    inode = path.stat().st_ino
    creds.save(path, [record])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != inode, "a new file renamed over the old one: a reader never sees half a file"
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def _file(**changes: object) -> bytes:
    base = {"name": "ana", "role": "editor", "feeds": ["*"], "prefix": TOKEN[:12], "hash": "$argon2id$v=19$x"}
    return orjson.dumps({"credentials": [{**base, **changes}]})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "Input should be"),
        (_file(role="owner"), "credentials.0.role"),
        (_file(name="Ana Smith"), "credentials.0.name"),
        (_file(feeds=["Not A Feed"]), "credentials.0.feeds.0"),
        (_file(feeds=[]), "credentials.0.feeds"),
        (_file(prefix="short"), "credentials.0.prefix"),
        (_file(hash="plaintext-token"), "credentials.0.hash"),
        (_file(token="lf_x"), "credentials.0.token: Extra inputs"),
        (orjson.dumps({"credentials": [orjson.loads(_file())["credentials"][0]] * 2}), "names must be unique: ana"),
        (b" " * (creds.MAX_FILE_BYTES + 1), "over"),
    ],
)
def test_a_broken_file_names_its_fault(content: bytes, problem: str) -> None:
    with pytest.raises(CredentialsError, match=problem.replace(".", r"\.")):
        creds.parse(content)


def test_a_short_token_or_bad_name_is_refused_when_made() -> None:
    with pytest.raises(CredentialsError, match="at least 16"):
        creds.make("ana", Role.admin, ["*"], "short")
    with pytest.raises(CredentialsError, match="name"):
        creds.make("Ana!", Role.admin, ["*"], TOKEN)
    with pytest.raises(CredentialsError, match="role"):
        creds.make("ana", "owner", ["*"], TOKEN)
