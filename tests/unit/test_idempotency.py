"""The pure parts of Idempotency-Key support: the event's op id and the answers kept while Redis is away."""

from __future__ import annotations

import re

import pytest

from services.ingest.idempotency import Claim, LocalAnswers, op_id

SCOPE = "5e884898da280471"
BODY = b'{"item":{"id":"01m8cng7dqz8mzsg2ge1ydk21g"}}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answers(*, ttl_s: float = 60.0, limit: int = 100) -> tuple[LocalAnswers, Clock]:
    clock = Clock()
    return LocalAnswers(ttl_s=ttl_s, limit=limit, clock=clock), clock


def keep(store: LocalAnswers, key: str, fingerprint: str = "fp", scope: str = SCOPE) -> None:
    store.keep(scope, key, fingerprint, f"item-{key}", 201, BODY + key.encode())


def kept_keys(store: LocalAnswers) -> list[str]:
    return [key for (_, key), _ in store.items()]


# op_id


def test_op_id_is_32_hex_characters_and_the_same_for_the_same_caller_and_key() -> None:
    op = op_id(SCOPE, "7f3c9e")
    assert re.fullmatch(r"[0-9a-f]{32}", op)
    assert op_id(SCOPE, "7f3c9e") == op


def test_op_id_differs_by_caller_and_by_key() -> None:
    ops = {op_id(SCOPE, "k1"), op_id(SCOPE, "k2"), op_id("another-caller", "k1")}
    assert len(ops) == 3


def test_op_id_keeps_caller_and_key_apart() -> None:
    assert op_id("ab", "c") != op_id("a", "bc")


# LocalAnswers: what a retry gets


def test_a_key_never_kept_has_no_answer_here() -> None:
    store, _ = answers()
    assert store.claim(SCOPE, "k", "fp") is None


def test_a_retry_with_the_same_body_gets_the_first_answer() -> None:
    store, _ = answers()
    keep(store, "k")
    assert store.claim(SCOPE, "k", "fp") == Claim("done", item_id="item-k", status=201, body=BODY + b"k")


def test_the_same_key_with_another_body_is_a_mismatch_and_the_answer_stays() -> None:
    store, _ = answers()
    keep(store, "k")
    assert store.claim(SCOPE, "k", "other") == Claim("mismatch", item_id="item-k")
    claim = store.claim(SCOPE, "k", "fp")
    assert claim is not None and claim.kind == "done"


def test_keys_are_scoped_to_the_caller() -> None:
    store, _ = answers()
    keep(store, "k", scope="caller-a")
    assert store.claim("caller-b", "k", "fp") is None
    assert store.claim("caller-a", "k", "fp") is not None


# LocalAnswers: expiry and bounds


def test_an_answer_lasts_its_ttl_then_is_forgotten() -> None:
    store, clock = answers(ttl_s=60.0)
    keep(store, "k")
    clock.now += 60.0
    assert store.claim(SCOPE, "k", "fp") is not None
    clock.now += 0.001
    assert store.claim(SCOPE, "k", "fp") is None
    assert len(store) == 0


def test_past_the_limit_the_oldest_answer_is_forgotten() -> None:
    store, _ = answers(limit=2)
    for key in ("k1", "k2", "k3"):
        keep(store, key)
    assert len(store) == 2
    assert store.claim(SCOPE, "k1", "fp") is None
    assert kept_keys(store) == ["k2", "k3"]


def test_items_are_the_answers_oldest_first_for_writing_to_redis() -> None:
    store, _ = answers()
    for key in ("b", "a", "c"):
        keep(store, key)
    assert kept_keys(store) == ["b", "a", "c"]
    (scope, key), answer = store.items()[0]
    assert (scope, key, answer.fingerprint, answer.item_id, answer.status) == (SCOPE, "b", "fp", "item-b", 201)


def test_forget_drops_one_answer_and_ignores_unknown_keys() -> None:
    store, _ = answers()
    keep(store, "k1")
    keep(store, "k2")
    store.forget(SCOPE, "k1")
    store.forget(SCOPE, "never-kept")
    assert kept_keys(store) == ["k2"]


def test_items_is_a_copy_so_forgetting_while_iterating_is_safe() -> None:
    store, _ = answers()
    for key in ("k1", "k2", "k3"):
        keep(store, key)
    for (scope, key), _ in store.items():
        store.forget(scope, key)
    assert len(store) == 0


@pytest.mark.parametrize("kind", ["new", "done", "mismatch", "busy", "unrecorded"])
def test_a_claim_of_any_kind_starts_empty(kind: str) -> None:
    claim = Claim(kind)  # type: ignore[arg-type]
    assert (claim.owner, claim.item_id, claim.status, claim.body) == ("", "", 0, b"")
