"""What each role may do, in which feeds, and the 403 that names what is missing."""

from __future__ import annotations

import pytest

from services.ingest import permissions
from services.ingest.permissions import Permission, Principal
from shared.credentials import Role
from shared.errors import ApiError
from shared.models import FeedSet

REPORTER = Principal.of("rita", Role.reporter, ["ukraine", "wire-*"])
EDITOR = Principal.of("ed", Role.editor, ["*"])
ADMIN = Principal.of("ada", Role.admin, ["*"])


def refusal(call: object) -> ApiError:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    ("principal", "granted"),
    [
        (REPORTER, {Permission.publish, Permission.edit_own}),
        (EDITOR, {Permission.publish, Permission.edit_own, Permission.edit, Permission.pin}),
        (ADMIN, set(Permission)),
    ],
)
def test_each_role_has_its_permissions_and_no_other(principal: Principal, granted: set[Permission]) -> None:
    assert {p for p in Permission if principal.can(p)} == granted


def test_the_permission_names_are_the_documented_ones() -> None:
    assert [p.value for p in Permission] == [
        "items:publish", "items:edit-own", "items:edit", "items:pin", "items:retract", "feeds:manage"]


def test_a_missing_permission_is_a_403_naming_it() -> None:
    error = refusal(lambda: permissions.require(EDITOR, Permission.retract, "world"))
    assert error.status == 403
    assert error.body() == {
        "error": "forbidden",
        "message": "The editor credential 'ed' may not do this: it needs items:retract.",
        "fields": [{"field": "Authorization", "message": "needs items:retract"}],
        "permission": "items:retract",
    }


def test_a_feed_outside_the_credential_is_a_403_naming_the_feed_and_the_permission() -> None:
    error = refusal(lambda: permissions.require(REPORTER, Permission.publish, "world"))
    assert error.status == 403
    assert error.body()["fields"] == [{"field": "feed", "message": "not one of this credential's feeds"}]
    assert error.body()["permission"] == "items:publish"


@pytest.mark.parametrize(
    ("patterns", "feed", "inside"),
    [
        (("*",), "anything", True),
        (("ukraine",), "ukraine", True),
        (("ukraine",), "ukraine-2", False),
        (("wire-*",), "wire-afp", True),
        (("wire-*",), "wire", False),
        (("a", "b-*"), "b-1", True),
        ((), "a", False),
    ],
)
def test_feed_scopes_match_exactly_or_by_prefix(patterns: tuple[str, ...], feed: str, inside: bool) -> None:
    assert (feed in FeedSet(patterns)) is inside


def test_a_reporter_publishes_in_its_feeds_but_not_pinned() -> None:
    permissions.require_publish(REPORTER, "wire-afp", pinned=False)
    assert refusal(lambda: permissions.require_publish(REPORTER, "ukraine", pinned=True)).body()["permission"] == (
        "items:pin")
    permissions.require_publish(EDITOR, "world", pinned=True)


def test_a_reporter_edits_its_own_items_only() -> None:
    permissions.require_edit(REPORTER, "ukraine", pins=False)
    permissions.require_edit_of(REPORTER, "rita")
    error = refusal(lambda: permissions.require_edit_of(REPORTER, "ed"))
    assert error.body()["permission"] == "items:edit"
    assert error.body()["fields"] == [{"field": "Authorization", "message": "needs items:edit"}]


def test_an_item_from_before_credentials_had_names_is_no_reporters_own() -> None:
    refusal(lambda: permissions.require_edit_of(REPORTER, None))
    permissions.require_edit_of(EDITOR, None)


def test_a_reporter_may_not_send_pinned_in_an_edit() -> None:
    assert refusal(lambda: permissions.require_edit(REPORTER, "ukraine", pins=True)).body()["permission"] == (
        "items:pin")


def test_a_reporters_edit_outside_its_feeds_names_edit_own() -> None:
    assert refusal(lambda: permissions.require_edit(REPORTER, "world", pins=False)).body()["permission"] == (
        "items:edit-own")


def test_an_editor_edits_and_pins_anything_but_may_not_retract_or_manage_feeds() -> None:
    permissions.require_edit(EDITOR, "world", pins=True)
    permissions.require_edit_of(EDITOR, "rita")
    permissions.require(EDITOR, Permission.pin, "world")
    for permission in (Permission.retract, Permission.feeds_manage):
        assert refusal(lambda p=permission: permissions.require(EDITOR, p, "world")).status == 403


def test_an_admin_may_do_everything_in_its_feeds_only() -> None:
    narrow = Principal.of("ops", Role.admin, ["ops-*"])
    for permission in Permission:
        permissions.require(ADMIN, permission, "world")
        permissions.require(narrow, permission, "ops-1")
        error = refusal(lambda p=permission: permissions.require(narrow, p, "world"))
        assert error.body()["fields"][0]["field"] == "feed"
