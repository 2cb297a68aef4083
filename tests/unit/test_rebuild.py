"""The shared rebuild state as one read of Redis gives it: is the store intact, which partitions rebuild."""

from __future__ import annotations

from services.history.rebuild import Ledger


def test_a_store_with_this_epoch_and_a_generation_is_intact() -> None:
    assert Ledger("e1", "g1").intact("e1")


def test_a_store_without_a_generation_or_of_another_epoch_must_be_emptied() -> None:
    assert not Ledger("e1", None).intact("e1"), "emptied and not yet adopted"
    assert not Ledger(None, None).intact("e1"), "Redis lost everything"
    assert not Ledger("e0", "g1").intact("e1"), "another topic's data"


def test_redis_answers_parse_into_partitions_and_targets() -> None:
    ledger = Ledger.parse(b"e1", b"g7", {b"0": b"120", b"2": b"4"})
    assert ledger == Ledger("e1", "g7", {0: 120, 2: 4})
