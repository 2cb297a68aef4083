"""Settings for every livefeed process, read from ``LIVEFEED_*`` environment variables.

Each service builds its own settings object; the names are one flat set so that
docker-compose.yml, the local runner (deploy/stack.py) and the README table agree.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .workers import MAX_WORKERS, default_workers

__all__ = [
    "FILE_SUFFIX",
    "CommonSettings",
    "FanoutSettings",
    "HistorySettings",
    "IngestSettings",
    "is_secret",
]


FILE_SUFFIX = "_FILE"
"""``LIVEFEED_<NAME>_FILE=/run/secrets/x`` sets a secret setting ``<NAME>`` from that file's content."""


class SecretFilesSource(PydanticBaseSettingsSource):
    """Reads each ``SecretStr`` setting from the file ``LIVEFEED_<NAME>_FILE`` names (Docker and Kubernetes secrets).

    One trailing newline is dropped. Setting both the variable and its ``_FILE`` twin is an error,
    as is a file that cannot be read: a secret must never silently fall back to a default.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        values: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            if not is_secret(info):
                continue
            env = f"{prefix}{name}".upper()
            path = os.environ.get(env + FILE_SUFFIX)
            if not path:
                continue
            if os.environ.get(env):
                raise ValueError(f"set {env} or {env}{FILE_SUFFIX}, not both")
            try:
                content = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{env}{FILE_SUFFIX}: cannot read {path} ({exc.strerror})") from None
            values[name] = content.removesuffix("\n").removesuffix("\r")
        return values


def is_secret(info: FieldInfo) -> bool:
    """Whether a setting holds a secret: it is never printed, and may come from a ``_FILE``."""
    return "SecretStr" in repr(info.annotation)


_ORIGIN = re.compile(r"https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
"""A serialized origin: lower-case scheme and host, an optional port, nothing after."""
_PATH_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")
"""A public URL's optional path prefix: plain segments, no trailing slash."""


def _split_list(value: object) -> object:
    """A comma-separated environment value as a list; blank entries dropped."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_CPU_COUNT: JsonDict = {"shown_default": "CPU count"}
"""How the settings table shows a default that is the host's CPU count (at most MAX_WORKERS)."""


class CommonSettings(BaseSettings):
    """What every service needs: where Kafka and Redis are, and how to log."""

    model_config = SettingsConfigDict(env_prefix="LIVEFEED_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFilesSource(settings_cls), dotenv_settings, file_secret_settings

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic: str = Field("livefeed.events", description="Kafka topic that carries every feed's events.")
    topic_partitions: int = Field(3, ge=1, description="Partitions when livefeed creates the topic.")
    topic_replication_factor: int = Field(
        1, ge=1,
        description="Replicas of each partition when livefeed creates the topic (3 on a cluster of 3 or more "
        "brokers); the topic's min.insync.replicas is then a majority of them (2 of 3), so an acknowledged write "
        "survives the loss of a broker.",
    )
    redis_url: str = Field("redis://127.0.0.1:6380/0", description="Redis URL for history and idempotency keys.")
    log_level: str = Field("INFO", description="Python log level.")
    retention_items: int = Field(1_000, ge=10, description="Items history keeps per feed (key events are kept apart).")
    retention_age_s: int = Field(7 * 86_400, ge=60, description="Seconds history keeps an item.")
    redis_timeout_s: float = Field(
        0.5, gt=0, le=5, description="Seconds a Redis call may take before the answer degrades (503 or skipped)."
    )
    idempotency_ttl_s: int = Field(
        86_400, ge=60, description="How long an Idempotency-Key is remembered, by ingest and by the consumers."
    )
    private_feeds: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated private feeds (`wire-*` matches by prefix): reading them needs a reader token.",
    )
    reader_token_key: SecretStr | None = Field(
        None,
        description="Key (32+ bytes) that signs reader tokens for private feeds; required when there are any.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address of each service's Prometheus metrics port (never behind the gateway)."
    )
    embed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated publisher origins (`https://news.example`) that may embed public feeds: "
        "CORS on public reads, streams, framing the fragment.",
    )

    _split_private_feeds = field_validator("private_feeds", mode="before")(_split_list)
    _split_embed_origins = field_validator("embed_origins", mode="before")(_split_list)

    @field_validator("embed_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        """Each an exact origin as browsers send it (no path, no ``*``): a typo must fail at start, not never match."""
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://news.example or http://host:8080")
        return origins


class IngestSettings(CommonSettings):
    """The newsroom's write API."""

    ingest_host: str = Field("127.0.0.1", description="Address ingest listens on.")
    ingest_port: int = Field(8001, description="Port ingest listens on.")
    credentials_file: Path | None = Field(
        None,
        description="The newsroom credentials file (`livefeed credentials add` writes it); ingest refuses to "
        "start without one. Re-read when it changes.",
    )
    reader_token_max_ttl_s: int = Field(
        86_400, ge=60, description="Longest lifetime, in seconds, of a reader token minted by ingest."
    )
    kafka_timeout_s: float = Field(
        5.0, gt=0, le=10, description="Seconds a write waits for Kafka's acknowledgement before a 503."
    )
    max_feeds: int = Field(
        1_000, ge=1, description="Feeds that may exist at once; a post to a new feed past it is refused."
    )
    write_rate_per_s: float = Field(
        200.0, gt=0, description="Sustained writes per second per credential, counted in Redis across every ingest "
        "process and worker; while Redis is unreachable each process counts its own.",
    )
    write_burst: int = Field(
        400, ge=1, description="Writes a credential may burst above the rate, across every ingest process."
    )
    ingest_metrics_port: int = Field(
        9101, description="Prometheus metrics port of ingest's first worker; worker i serves on this plus i."
    )
    ingest_workers: int = Field(
        default_factory=default_workers, ge=1, le=MAX_WORKERS, json_schema_extra=_CPU_COUNT,
        description="Ingest worker processes sharing its port; 1 runs it in one process.",
    )


class HistorySettings(CommonSettings):
    """The read API over Redis and the consumer that fills it."""

    history_host: str = Field("127.0.0.1", description="Address history listens on.")
    history_port: int = Field(8002, description="Port history listens on.")
    history_group: str = Field("livefeed-history", description="Kafka consumer group of the history service.")
    history_instance_id: str = Field(
        "", description="Static Kafka group member id, unique per instance and the same across its restarts (a "
        "StatefulSet pod's name): a restarted member takes its partitions back at once. Empty: a dynamic member, "
        "which leaves the group when it stops (a container's or pod's generated name would leave a ghost member "
        "holding partitions for the session timeout after every redeploy).",
    )

    history_metrics_port: int = Field(
        9201, description="Prometheus metrics port of history's first worker; worker i serves on this plus i."
    )
    history_workers: int = Field(
        default_factory=default_workers, ge=1, le=MAX_WORKERS, json_schema_extra=_CPU_COUNT,
        description="History worker processes sharing its port (worker 0 alone consumes Kafka); 1 runs it "
        "in one process.",
    )
    public_url: str = Field(
        "http://localhost:8080",
        description="The gateway's public URL (an http(s) origin, optionally with a path prefix): every absolute "
        "link history serves (JSON-LD, canonical, feeds, the CSP's stream origin) starts with it, never with "
        "the request's Host. The default suits a local gateway only.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        """Lower-case scheme and host, no trailing slash; anything else fails at start rather than being served."""
        parts = urlsplit(value.strip())
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        prefix = parts.path.rstrip("/")
        try:
            port_ok = parts.port != 0
        except ValueError:
            port_ok = False
        valid = port_ok and _ORIGIN.fullmatch(origin) and _PATH_PREFIX.fullmatch(prefix)
        if not valid or "?" in value or "#" in value:
            raise ValueError(
                f"{value!r} is not a public URL such as https://news.example or https://news.example/live "
                "(http or https, a host, an optional port and path prefix; no query or fragment)"
            )
        return origin + prefix

    def instance_id(self) -> str:
        """This instance's name, for its status key: the configured id, or this host's name and history's port."""
        return self.history_instance_id or f"{socket.gethostname()}:{self.history_port}"

    def static_member_id(self) -> str | None:
        """The Kafka static member id, only when one is configured (see ``history_instance_id``)."""
        return self.history_instance_id or None


class FanoutSettings(CommonSettings):
    """The WebSocket and SSE push service."""

    fanout_host: str = Field("127.0.0.1", description="Address fanout listens on.")
    fanout_port: int = Field(8003, description="WebSocket port of fanout.")
    fanout_sse_port: int = Field(8004, description="Server-Sent Events port of fanout.")
    fanout_buffer: int = Field(1_000, ge=10, description="Recent events kept per feed for resuming readers.")
    fanout_warmup: int = Field(5_000, ge=0, description="Events per partition read back at start to fill the buffer.")
    fanout_max_clients: int = Field(19_000, ge=1, description="Concurrent readers one fanout process accepts.")
    fanout_queue_limit: int = Field(
        1_000_000, ge=1024, description="Bytes a slow reader may have pending before it is dropped."
    )
    heartbeat_s: float = Field(20.0, gt=0, description="Seconds between heartbeats on idle streams.")
    fanout_metrics_port: int = Field(
        9301, description="Prometheus metrics port of fanout's first worker; worker i serves on this plus i."
    )
    fanout_workers: int = Field(
        default_factory=default_workers, ge=1, le=MAX_WORKERS, json_schema_extra=_CPU_COUNT,
        description="Fanout worker processes sharing its ports, each reading Kafka itself; 1 runs it in one "
        "process.",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8080", "http://localhost:8080"],
        description="Comma-separated Origins allowed to open a stream; requests without Origin (non-browsers) pass.",
    )

    _split_origins = field_validator("allowed_origins", mode="before")(_split_list)
