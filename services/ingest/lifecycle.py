"""An item's lifecycle as pure functions: each newsroom command becomes one event.

No I/O here: ``routes.py`` reads the current item, calls one of these, and publishes the result.
A command that does not apply to the item as it stands raises :class:`~shared.errors.ApiError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from shared.errors import ApiError
from shared.models import Item, ItemCreate, ItemUpdate, Status, Tombstone
from shared.wire import Event, EventType

__all__ = ["check_if_match", "edit", "new_item_id", "publish", "retract"]


_IF_MATCH = {"field": "If-Match", "message": "not the item's current version"}


def new_item_id(now: datetime) -> str:
    """A time-sortable id (a ULID): ids sort in publish order across feeds and processes."""
    return str(ULID.from_datetime(now)).lower()


def publish(
    feed: str, item_id: str, create: ItemCreate, now: datetime, op: str | None = None, *, by: str | None = None
) -> Event:
    """The first version of a new item, made by credential ``by``; ``op`` marks a publish with an Idempotency-Key."""
    item = Item(
        id=item_id,
        feed=feed,
        version=1,
        published_at=now,
        updated_at=now,
        created_by=by,
        updated_by=by,
        **create.model_dump(),
    )
    return Event(EventType.published, feed, _json_item(item), _ms(now), op=op)


def edit(current: dict[str, Any], update: ItemUpdate, now: datetime, *, by: str | None = None) -> Event:
    """The next version of ``current`` with the fields of ``update`` changed, made by credential ``by``.

    With a ``correction`` note the version becomes the item's latest correction (note and time),
    which later plain edits keep; readers tell the two apart.
    """
    _require_published(current)
    fields = update.model_dump(exclude_unset=True, mode="json")
    note = fields.pop("correction", None)
    changed = {**current, **fields}
    if note is not None:
        changed["correction"] = {"note": note, "corrected_at": now.isoformat()}
    changed["version"] = int(current["version"]) + 1
    changed["updated_at"] = now.isoformat()
    changed["updated_by"] = by
    item = Item.model_validate(changed)
    return Event(
        EventType.updated, item.feed, _json_item(item), _ms(now), prev_tags=tuple(current.get("tags", ()))
    )


def retract(current: dict[str, Any], now: datetime, *, by: str | None = None) -> Event:
    """A tombstone: the item's identity, one version up, who retracted it, and none of its words.

    Readers, history and resuming streams only learn that the item is gone; the retracted
    text stays in Kafka's earlier records for the audit trail. ``prev_tags`` lets readers
    that filter by tag remove it too.
    """
    _require_published(current)
    tombstone = Tombstone(
        id=current["id"], feed=current["feed"], version=int(current["version"]) + 1,
        published_at=current["published_at"], updated_at=now, updated_by=by,
    )
    return Event(
        EventType.retracted, tombstone.feed, tombstone.model_dump(mode="json"), _ms(now),
        prev_tags=tuple(current.get("tags", ())),
    )


def check_if_match(header: str | None, current: dict[str, Any]) -> None:
    """Optimistic concurrency: ``If-Match: 3`` (or ``"3"``) must name the current version."""
    if header is None:
        return
    wanted = header.strip().removeprefix("W/").strip('"')
    if wanted == "*":
        return
    if not (wanted.isascii() and wanted.isdigit()):
        raise ApiError(400, "bad_if_match", "If-Match must be the item's version number, e.g. If-Match: \"3\".",
                       fields=[_IF_MATCH])
    if int(wanted) != int(current["version"]):
        raise ApiError(
            412,
            "version_mismatch",
            f"The item is at version {current['version']}, not {wanted}: reload it and apply your edit again.",
            fields=[_IF_MATCH],
            extra={"version": current["version"]},
        )


def now_utc() -> datetime:
    return datetime.now(UTC)


def _require_published(current: dict[str, Any]) -> None:
    if current.get("status") == Status.retracted.value:
        raise ApiError(410, "retracted", "The item was retracted; it can no longer change.",
                       fields=[{"field": "id", "message": "retracted"}], extra={"version": current["version"]})


def _json_item(item: Item) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _ms(now: datetime) -> float:
    return round(now.timestamp() * 1000, 3)
