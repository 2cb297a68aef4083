"""The newsroom credentials file: named tokens with a role and the feeds they may write, stored hashed.

Ingest reads the file (``LIVEFEED_CREDENTIALS_FILE``) and checks tokens against it;
``livefeed credentials`` and the local runner write it. The file never holds a token: only the
token's first :data:`PREFIX_CHARS` characters (a public lookup key, like the visible start of a
GitHub or Stripe key) and an argon2id hash of the whole token. The shape::

    {"credentials": [{"name": "ana", "role": "editor", "feeds": ["ukraine", "wire-*"],
                      "prefix": "lf_x1Y2z3A4b", "hash": "$argon2id$v=19$..."}]}
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from .models import FEED_SET_PATTERN

__all__ = [
    "MAX_FILE_BYTES",
    "MIN_TOKEN_CHARS",
    "PREFIX_CHARS",
    "Credential",
    "CredentialsError",
    "Role",
    "dump",
    "load",
    "make",
    "new_token",
    "parse",
    "save",
    "verify",
]

PREFIX_CHARS = 12
"""How much of a token the file keeps in clear: "lf_" and 9 random characters (54 bits) to find its record."""
MIN_TOKEN_CHARS = 16
"""Shorter tokens are refused: the part after the prefix must still be worth guessing."""
MAX_FILE_BYTES = 1024 * 1024
"""A credentials file is a few hundred bytes a person; a bigger one is a mistake, not a newsroom."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

_HASHER = PasswordHasher()


class Role(StrEnum):
    """What a credential may do; services/ingest/permissions.py maps each to its permissions."""

    reporter = "reporter"
    editor = "editor"
    admin = "admin"


class CredentialsError(ValueError):
    """The credentials file cannot be read or is not valid; the message says where."""


FeedScope = Annotated[str, StringConstraints(pattern=FEED_SET_PATTERN)]


class Credential(BaseModel):
    """One named credential as the file stores it: no token, only its prefix and hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    role: Role
    feeds: tuple[FeedScope, ...] = Field(default=("*",), min_length=1, max_length=100)
    prefix: Annotated[str, StringConstraints(min_length=PREFIX_CHARS, max_length=PREFIX_CHARS)]
    hash: Annotated[str, StringConstraints(pattern=r"^\$argon2(id|i|d)\$", max_length=512)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credentials: list[Credential] = Field(max_length=10_000)

    @field_validator("credentials")
    @classmethod
    def _unique_names(cls, credentials: list[Credential]) -> list[Credential]:
        names = [c.name for c in credentials]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names must be unique: {', '.join(duplicates)}")
        return credentials


def new_token() -> str:
    """A new newsroom token: ``lf_`` and 43 URL-safe characters (256 random bits)."""
    return "lf_" + secrets.token_urlsafe(32)


def make(name: str, role: Role | str, feeds: Sequence[str], token: str) -> Credential:
    """The record of ``token`` (hashed with argon2id: about 0.1 s of CPU, on purpose)."""
    if len(token) < MIN_TOKEN_CHARS:
        raise CredentialsError(f"a token must be at least {MIN_TOKEN_CHARS} characters")
    try:
        return Credential(name=name, role=role, feeds=tuple(feeds) or ("*",), prefix=token[:PREFIX_CHARS],
                          hash=_HASHER.hash(token))
    except (ValidationError, ValueError) as exc:
        raise CredentialsError(_describe(exc)) from None


def verify(credential: Credential, token: str) -> bool:
    """Whether ``token`` is the credential's token. Blocking (argon2): run it off the event loop."""
    try:
        return _HASHER.verify(credential.hash, token)
    except (VerificationError, InvalidHashError):
        return False


def parse(data: bytes) -> list[Credential]:
    """The credentials in a file's content; :class:`CredentialsError` naming the fault if it is not valid."""
    if len(data) > MAX_FILE_BYTES:
        raise CredentialsError(f"the file is over {MAX_FILE_BYTES} bytes")
    try:
        return _File.model_validate(orjson.loads(data)).credentials
    except orjson.JSONDecodeError as exc:
        raise CredentialsError(f"not JSON: {exc}") from None
    except ValidationError as exc:
        raise CredentialsError(_describe(exc)) from None


def dump(credentials: Sequence[Credential]) -> bytes:
    """The file's content for ``credentials``, one record a line for readable diffs."""
    records = b",\n  ".join(orjson.dumps(c.model_dump(mode="json")) for c in credentials)
    return b'{"credentials": [\n  ' + records + b"\n]}\n" if credentials else b'{"credentials": []}\n'


def load(path: Path) -> list[Credential]:
    """The credentials in ``path``; :class:`CredentialsError` if it cannot be read or is not valid."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return parse(data)
    except CredentialsError as exc:
        raise CredentialsError(f"{path}: {exc}") from None


def save(path: Path, credentials: Sequence[Credential]) -> None:
    """Write ``path`` atomically (a temporary file renamed over it), readable by its owner only."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(dump(credentials))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors())
    return str(exc)
