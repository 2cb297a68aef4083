"""The topic's epoch: a short hash of its Kafka topic id, read with a Metadata v12 request.

Cursors carry the epoch so a cursor from a deleted and recreated topic is recognisably stale.
aiokafka 0.14 speaks Metadata up to v5, which has no topic ids (KIP-516 added them in v10), so
this module defines the v12 request and response on aiokafka's protocol classes, which are not
public API. That is why pyproject.toml pins aiokafka below 0.15 and tests/unit/test_topic_id.py
round-trips the wire format. Retire it once aiokafka's ``describe_topics`` returns ``topic_id``.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

__all__ = ["epoch_of", "metadata_request", "topic_epoch", "topic_id_in"]


class _Uuid(AbstractType[bytes]):  # type: ignore[misc]
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: Any) -> bytes:
        raw: bytes = data.read(16)
        return raw


class _MetadataResponse_v12(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _MetadataRequest_v12(RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 12
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = _MetadataResponse_v12
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields)),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicIdRequest(Request[_MetadataRequest_v12]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, struct: _MetadataRequest_v12) -> None:
        self._struct = struct

    def build(self, request_struct_class: type[_MetadataRequest_v12]) -> _MetadataRequest_v12:
        return self._struct


def metadata_request(topic: str) -> _TopicIdRequest:
    """A Metadata v12 request for ``topic`` alone (never creating it)."""
    return _TopicIdRequest(
        _MetadataRequest_v12(
            topics=[(bytes(16), topic, {})],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
            tags={},
        )
    )


def topic_id_in(response: Any, topic: str) -> uuid.UUID:
    """The id of ``topic`` in a Metadata v12 response; raises if the broker refused or lacks it."""
    for entry in response.topics:
        if entry[1] == topic:
            if entry[0] != 0:
                raise RuntimeError(f"Kafka refused metadata for {topic!r}: error {entry[0]}")
            return uuid.UUID(bytes=entry[2])
    raise RuntimeError(f"topic {topic!r} not found")


def epoch_of(topic_id: uuid.UUID) -> str:
    """The cursor epoch of a topic id: 8 hex digits, new whenever the topic is recreated."""
    return hashlib.sha256(topic_id.bytes).hexdigest()[:8]


async def topic_epoch(producer: AIOKafkaProducer, topic: str) -> str:
    """Ask a broker for ``topic``'s id over the producer's connection; return its epoch."""
    client = producer.client
    response = await client.send(client.get_random_node(), metadata_request(topic))
    return epoch_of(topic_id_in(response, topic))
