"""Issue 12 without servers: image references and correction notes in the models, the lifecycle and the markup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.history import render as rendering
from services.ingest.lifecycle import edit, publish
from shared.models import Item, ItemCreate, ItemUpdate

T0 = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
ITEM_ID = "01jgjb4ds3f4qdxm2yc0gb4mrr"
PHOTO = {"url": "https://img.example/quake.jpg", "alt": "A cracked road", "caption": "Route 1 at dawn",
         "credit": "A. Photographer", "width": 1200, "height": 800}


def fields_at_fault(error: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in error.errors()]


# Models


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:image/png;base64,AAAA", "http://img.example/a.jpg",
                                 "https://", "https://img.example/a b.jpg", "//img.example/a.jpg",
                                 "https://user@img.example/a.jpg"])
def test_an_image_url_must_be_https(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ItemCreate(headline="h", images=[PHOTO, {**PHOTO, "url": url}])
    assert fields_at_fault(caught.value) == ["images.1.url"]


@pytest.mark.parametrize("alt", [None, "", "   ", "two\nlines"])
def test_an_image_needs_its_alt_text(alt: str | None) -> None:
    image = {key: value for key, value in PHOTO.items() if key != "alt"} | ({} if alt is None else {"alt": alt})
    with pytest.raises(ValidationError) as caught:
        ItemCreate(headline="h", images=[image])
    assert fields_at_fault(caught.value) == ["images.0.alt"]


def test_an_item_carries_a_few_images_at_most() -> None:
    assert len(ItemCreate(headline="h", images=[PHOTO] * 4).images) == 4
    with pytest.raises(ValidationError) as caught:
        ItemCreate(headline="h", images=[PHOTO] * 5)
    assert fields_at_fault(caught.value) == ["images"]


@pytest.mark.parametrize("note", ["", "  ", "x" * 501, "line\nbreak", "bell\x07"])
def test_a_correction_note_is_one_short_line(note: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ItemUpdate(correction=note)
    assert fields_at_fault(caught.value) == ["correction"]


def test_neither_images_nor_a_correction_can_be_sent_as_null() -> None:
    for name in ("images", "correction"):
        with pytest.raises(ValidationError):
            ItemUpdate.model_validate({name: None})


# Lifecycle


def published(**fields: Any) -> dict[str, Any]:
    return publish("world", ITEM_ID, ItemCreate(headline="Quake hits the coast", **fields), T0).item


def test_a_correction_note_becomes_the_items_latest_correction_and_outlives_plain_edits() -> None:
    corrected = edit(published(), ItemUpdate(body="Magnitude 6.1.", correction="The magnitude was 6.1, not 7.1."),
                     T0 + timedelta(minutes=5)).item
    assert corrected["correction"] == {"note": "The magnitude was 6.1, not 7.1.",
                                       "corrected_at": "2025-03-01T12:35:00Z"}
    assert "correction" not in {k for k, v in published().items() if v is not None}
    pinned = edit(corrected, ItemUpdate(pinned=True), T0 + timedelta(minutes=9)).item
    assert pinned["correction"] == corrected["correction"] and pinned["version"] == 3
    again = edit(pinned, ItemUpdate(correction="Second fix."), T0 + timedelta(minutes=12)).item
    assert again["correction"]["note"] == "Second fix."


def test_images_are_published_and_edited_like_any_field() -> None:
    item = published(images=[PHOTO])
    assert item["images"] == [PHOTO]
    assert edit(item, ItemUpdate(images=[]), T0).item["images"] == []


# Markup


def item(**changes: Any) -> Item:
    values: dict[str, Any] = {"id": ITEM_ID, "feed": "world", "version": 1, "headline": "Quake",
                              "published_at": T0, "updated_at": T0}
    return Item.model_validate(values | changes)


def test_a_correction_shows_corrected_with_its_note_and_a_plain_edit_shows_updated() -> None:
    later = T0 + timedelta(minutes=5)
    correction = {"note": "Magnitude <6.1>, not 7.1.", "corrected_at": later}
    html = rendering.render_item(item(version=2, updated_at=later, correction=correction), T0)
    assert ('<p class="item-correction">Corrected <time datetime="2025-03-01T12:35:00Z">12:35 UTC</time>: '
            '<span class="item-correction-note">Magnitude &lt;6.1&gt;, not 7.1.</span></p>') in html
    assert "item-updated" not in html
    assert f'href="/v1/feeds/world/items/{ITEM_ID}/revisions"' in html
    plain = rendering.render_item(item(version=2, updated_at=later), T0)
    assert "Updated <time" in plain and "item-correction" not in plain
    pinned_later = rendering.render_item(item(version=3, updated_at=later + timedelta(minutes=1),
                                              correction=correction), T0)
    assert "Corrected <time" in pinned_later and "Updated <time" in pinned_later
    assert "item-revisions" not in rendering.render_item(item(), T0)


def test_images_render_lazily_with_their_box_reserved() -> None:
    html = rendering.render_item(item(images=[PHOTO, {"url": "https://img.example/b.jpg", "alt": "B \"quoted\""}]), T0)
    assert ('<figure class="item-image"><img src="https://img.example/quake.jpg" alt="A cracked road"'
            ' width="1200" height="800" loading="lazy" decoding="async" referrerpolicy="no-referrer">'
            '<figcaption><span class="item-image-caption">Route 1 at dawn</span>'
            '<span class="item-image-credit">A. Photographer</span></figcaption></figure>') in html
    assert ('<figure class="item-image is-unsized"><img src="https://img.example/b.jpg" alt="B &quot;quoted&quot;"'
            ' loading="lazy"') in html


def test_the_item_template_holds_every_new_part_for_the_live_render() -> None:
    template = rendering.item_template()
    for part in ('class="item-image"', 'class="item-image-caption"', 'class="item-image-credit"',
                 'class="item-correction"', 'class="item-correction-note"', 'class="item-revisions"'):
        assert part in template


def test_items_from_an_earlier_day_show_their_date_and_another_years_its_year() -> None:
    assert ">12:00 UTC<" in rendering.render_item(item(published_at=T0 - timedelta(minutes=30)), T0)
    assert ">28 Feb, 12:30 UTC<" in rendering.render_item(item(published_at=T0 - timedelta(days=1)), T0)
    assert ">1 Mar 2024, 12:30 UTC<" in rendering.render_item(item(published_at=T0 - timedelta(days=365)), T0)


def test_json_ld_carries_images_and_the_correction() -> None:
    later = T0 + timedelta(minutes=5)
    corrected = item(version=2, updated_at=later, images=[PHOTO],
                     correction={"note": "Fixed the magnitude.", "corrected_at": later})
    update = rendering.live_blog_json_ld("world", "https://news.example/feeds/world", [corrected], [])[
        "liveBlogUpdate"][0]
    assert update["correction"] == {"@type": "CorrectionComment", "text": "Fixed the magnitude.",
                                    "datePublished": "2025-03-01T12:35:00Z"}
    assert update["image"] == [{"@type": "ImageObject", "url": PHOTO["url"], "contentUrl": PHOTO["url"],
                                "description": "A cracked road", "caption": "Route 1 at dawn",
                                "creditText": "A. Photographer", "width": 1200, "height": 800}]
