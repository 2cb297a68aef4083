"""When the fanout has caught up with Kafka, without Kafka: where the warm-up starts, and when the ports may open."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.fanout.pump import CatchUp, warmup_start


def catch_up(begins: dict[int, int], ends: dict[int, int], warmup: int) -> CatchUp:
    """A CatchUp as the pump builds it from each partition's beginning and end offsets."""
    return CatchUp({p: warmup_start(begins[p], ends[p], warmup) for p in ends}, ends)


# Where the warm-up starts


def test_the_warm_up_reads_back_that_many_events_before_the_end() -> None:
    assert warmup_start(0, 10_000, 5_000) == 5_000


def test_the_warm_up_never_starts_before_the_partition_begins() -> None:
    assert warmup_start(0, 30, 5_000) == 0
    assert warmup_start(900, 1_000, 5_000) == 900


def test_no_warm_up_starts_at_the_end() -> None:
    assert warmup_start(0, 10_000, 0) == 10_000


# When the pump has caught up


def test_an_empty_topic_is_caught_up_at_once() -> None:
    assert catch_up({0: 0, 1: 0}, {0: 0, 1: 0}, 5_000).done


def test_no_warm_up_is_caught_up_at_once() -> None:
    assert catch_up({0: 0, 1: 0}, {0: 40, 1: 7}, 0).done


def test_caught_up_only_once_every_partition_reached_its_end() -> None:
    state = catch_up({0: 0, 1: 0, 2: 0}, {0: 10, 1: 5, 2: 0}, 100)
    assert not state.done
    state.advance(0, 9)
    assert not state.done, "partition 1 is still behind"
    state.advance(1, 3)
    assert not state.done
    state.advance(1, 4)
    assert state.done


def test_a_batch_reaching_past_the_end_counts() -> None:
    state = catch_up({0: 0}, {0: 10}, 100)
    state.advance(0, 25)
    assert state.done


def test_reading_a_partition_that_was_not_behind_changes_nothing() -> None:
    state = catch_up({0: 0, 1: 0}, {0: 10, 1: 0}, 100)
    state.advance(1, 0)
    assert not state.done
    state.advance(0, 9)
    assert state.done
    state.advance(0, 30)
    assert state.done


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=4),
       st.integers(0, 60), st.integers(1, 20))
def test_caught_up_exactly_when_the_last_record_present_at_start_is_read(
    spans: list[tuple[int, int]], warmup: int, batch: int
) -> None:
    """Read every partition in batches, past its end as new records arrive: done right after the last old one."""
    begins = {p: begin for p, (begin, _) in enumerate(spans)}
    ends = {p: begin + extra for p, (begin, extra) in enumerate(spans)}
    state = catch_up(begins, ends, warmup)
    last_needed = {p: end - 1 for p, end in ends.items() if end > warmup_start(begins[p], end, warmup)}
    assert state.done == (not last_needed)
    read_up_to: dict[int, int] = {}
    for p in ends:
        start = warmup_start(begins[p], ends[p], warmup)
        for first in range(start, ends[p] + 2 * batch, batch):
            state.advance(p, first + batch - 1)
            read_up_to[p] = first + batch - 1
            expected = all(read_up_to.get(q, -1) >= last for q, last in last_needed.items())
            assert state.done == expected
