"""The Metadata v12 workaround without a broker: the request encodes, a response decodes to its epoch."""

from __future__ import annotations

import io
import uuid

import pytest

from shared import topic_id
from shared.topic_id import epoch_of, metadata_request, topic_id_in

TOPIC = "livefeed.events"
ID = uuid.UUID("0f6d1c2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5")


def response(*topics: tuple[int, str, bytes]) -> object:
    struct = topic_id._MetadataResponse_v12(
        throttle_time_ms=0, brokers=[(1, "127.0.0.1", 9092, None, {})], cluster_id="c", controller_id=1,
        topics=[(code, name, raw, False, [], 0, {}) for code, name, raw in topics], tags={},
    )
    return topic_id._MetadataResponse_v12.decode(io.BytesIO(struct.encode()))


def test_the_request_asks_for_one_topic_by_name_without_creating_it() -> None:
    struct = metadata_request(TOPIC).build(topic_id._MetadataRequest_v12)
    assert struct.API_VERSION == 12
    encoded = struct.encode()
    assert TOPIC.encode() in encoded
    assert struct.allow_auto_topic_creation is False


def test_a_response_gives_the_topic_id_and_its_epoch() -> None:
    decoded = response((0, "other", uuid.uuid4().bytes), (0, TOPIC, ID.bytes))
    assert topic_id_in(decoded, TOPIC) == ID
    assert epoch_of(ID) == epoch_of(uuid.UUID(str(ID)))
    assert len(epoch_of(ID)) == 8 and epoch_of(ID) != epoch_of(uuid.uuid4())


def test_a_refused_or_missing_topic_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="error 29"):
        topic_id_in(response((29, TOPIC, bytes(16))), TOPIC)
    with pytest.raises(RuntimeError, match="not found"):
        topic_id_in(response((0, "other", ID.bytes)), TOPIC)
