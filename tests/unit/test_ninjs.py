"""The IPTC ninjs 3.1 export, without servers: every kind of item is valid by IPTC's published schema
(``tests/data/ninjs/``) and carries the mapping ``services/history/formats/ninjs.py`` documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.history.formats.ninjs import NINJS_URGENCY, image_associations, ninjs_item, ninjs_tombstone
from shared.models import Image, Item, Tombstone, Urgency
from tests.utils.exports import check_ninjs

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def make_item(**fields: Any) -> Item:
    values: dict[str, Any] = {"id": "01jn0000000000000000000001", "feed": "ukraine", "version": 1,
                              "headline": "Drone attack on Kyiv", "body": "Air defences were active.",
                              "published_at": NOW - timedelta(minutes=5), "updated_at": NOW - timedelta(minutes=5)}
    return Item.model_validate(values | fields)


PICTURES = [Image(url="https://img.example/kyiv.jpg", alt="Smoke over a Kyiv street", caption="Kyiv, 08:10",
                    credit="Photo: Ana Desk / Example", width=1200, height=800),
            Image(url="https://img.example/map.png", alt="Map of the strikes")]

EXPORTS = {
    "published": make_item(),
    "breaking": make_item(urgency="breaking"),
    "edited": make_item(version=3, headline="Drone attack on Kyiv: two hurt", updated_at=NOW),
    "tagged": make_item(tags=["kyiv", "air-defence"]),
    "with a byline": make_item(byline="Ana Desk, Kyiv"),
    "with a source and no body": make_item(url="https://example.org/r", body=""),
    "with markup in its text": make_item(headline="<b>not bold</b> & <i>", body="<script>alert(1)</script>"),
    "with images": make_item(images=PICTURES),
    "corrected": make_item(version=2, correction={"note": "The attack was on Kyiv, not Lviv.", "corrected_at": NOW}),
    "from a CMS": make_item(external_id="cms:4711"),
}


@pytest.mark.parametrize("item", EXPORTS.values(), ids=EXPORTS.keys())
def test_every_exported_item_is_valid_ninjs_3_1(item: Item) -> None:
    check_ninjs(ninjs_item(item))


def test_a_retracted_item_is_valid_ninjs_and_canceled_without_content() -> None:
    tombstone = Tombstone(id="01jn0000000000000000000001", feed="ukraine", version=4,
                          published_at=NOW - timedelta(hours=1), updated_at=NOW)
    obj = ninjs_tombstone(tombstone)
    check_ninjs(obj)
    assert obj["pubStatus"] == "canceled" and obj["version"] == "4"
    assert obj["uri"] == "urn:livefeed:ukraine:01jn0000000000000000000001"
    assert not {"headlines", "bodies", "by", "subjects"} & obj.keys()


def test_the_mapping_of_a_published_item() -> None:
    obj = ninjs_item(make_item(version=2, tags=["kyiv"], byline="Ana", updated_at=NOW))
    assert obj["uri"] == "urn:livefeed:ukraine:01jn0000000000000000000001"
    assert (obj["type"], obj["pubStatus"], obj["version"]) == ("text", "usable", "2")
    assert (obj["firstCreated"], obj["versionCreated"]) == ("2026-11-27T09:25:00Z", "2026-11-27T09:30:00Z")
    assert obj["headlines"] == [{"contentType": "text/plain", "value": "Drone attack on Kyiv"}]
    assert obj["bodies"] == [{"contentType": "text/plain", "charCount": 25, "value": "Air defences were active."}]
    assert obj["by"] == "Ana" and obj["subjects"] == [{"name": "kyiv", "literal": "kyiv"}]
    assert "associations" not in obj


def test_urgency_is_high_for_breaking_and_middling_for_normal() -> None:
    assert {Urgency.breaking: 2, Urgency.normal: 5} == NINJS_URGENCY
    assert ninjs_item(make_item(urgency="breaking"))["urgency"] == 2
    assert ninjs_item(make_item())["urgency"] == 5


def test_images_become_picture_associations_with_alt_caption_and_credit() -> None:
    obj = ninjs_item(EXPORTS["with images"])
    assert obj["type"] == "composite"
    first, second = obj["associations"]
    assert (first["name"], first["type"], first["uri"]) == ("picture1", "picture", "https://img.example/kyiv.jpg")
    assert first["renditions"] == [{"name": "original", "href": "https://img.example/kyiv.jpg",
                                    "width": 1200, "height": 800}]
    assert first["descriptions"] == [{"role": "alt", "contentType": "text/plain", "value": "Smoke over a Kyiv street"},
                                     {"role": "caption", "contentType": "text/plain", "value": "Kyiv, 08:10"}]
    assert first["by"] == "Photo: Ana Desk / Example"
    assert second["name"] == "picture2" and "by" not in second and "width" not in second["renditions"][0]
    assert image_associations([], NOW) == []


def test_a_correction_is_an_editorial_note_and_a_cms_id_an_alternative_id() -> None:
    assert ninjs_item(EXPORTS["corrected"])["edNote"] == "Correction: The attack was on Kyiv, not Lviv."
    assert ninjs_item(EXPORTS["from a CMS"])["altIds"] == [{"role": "external", "value": "cms:4711"}]
    assert not {"edNote", "altIds"} & ninjs_item(make_item()).keys()


def test_the_vendored_schema_rejects_what_ninjs_forbids() -> None:
    obj = ninjs_item(make_item())
    for broken in ({**obj, "urgency": 10}, {**obj, "pubStatus": "retracted"}, {**obj, "headline": "x"},
                   {k: v for k, v in obj.items() if k != "uri"}, {**obj, "versionCreated": "yesterday"}):
        with pytest.raises(AssertionError):
            check_ninjs(broken)
