"""What each role may do, and in which feeds: pure rules the write routes ask before they act.

A route names the permission its action needs and calls :func:`require` (or one of the item
helpers); a refusal is an :class:`~shared.errors.ApiError` 403 that names the permission, so a
tool can tell its user what to ask an admin for. No I/O: the routes pass what they know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.credentials import Role
from shared.errors import ApiError
from shared.models import FeedSet

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "require",
    "require_edit",
    "require_edit_of",
    "require_publish",
]


class Permission(StrEnum):
    publish = "items:publish"
    edit_own = "items:edit-own"
    edit = "items:edit"
    pin = "items:pin"
    retract = "items:retract"
    feeds_manage = "feeds:manage"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.reporter: frozenset({Permission.publish, Permission.edit_own}),
    Role.editor: frozenset({Permission.publish, Permission.edit_own, Permission.edit, Permission.pin}),
    Role.admin: frozenset(Permission),
}
"""reporter: posts and corrects its own items; editor: any item, and pins; admin: also retracts and manages feeds."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a credential's name (what events record as ``created_by``/``updated_by``), role and feeds."""

    name: str
    role: Role
    feeds: FeedSet

    @classmethod
    def of(cls, name: str, role: Role, feeds: Sequence[str]) -> Principal:
        return cls(name, role, FeedSet(feeds))

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def require(principal: Principal, permission: Permission, feed: str) -> None:
    """Raise the 403 unless ``principal`` has ``permission`` and ``feed`` is one of its feeds."""
    if not principal.can(permission):
        raise _forbidden(permission, f"The {principal.role} credential {principal.name!r} may not do this: "
                                     f"it needs {permission}.", "Authorization", f"needs {permission}")
    if feed not in principal.feeds:
        raise _forbidden(permission, f"The credential {principal.name!r} may not write to feed {feed}.",
                         "feed", "not one of this credential's feeds")


def require_publish(principal: Principal, feed: str, *, pinned: bool) -> None:
    """Publishing needs ``items:publish``, and publishing pinned needs ``items:pin`` too."""
    require(principal, Permission.publish, feed)
    if pinned:
        require(principal, Permission.pin, feed)


def require_edit(principal: Principal, feed: str, *, pins: bool) -> None:
    """What an edit needs before the item is read: some edit permission, and ``items:pin`` if it sends ``pinned``."""
    require(principal, Permission.edit if principal.can(Permission.edit) else Permission.edit_own, feed)
    if pins:
        require(principal, Permission.pin, feed)


def require_edit_of(principal: Principal, created_by: str | None) -> None:
    """An edit of an item created by ``created_by``: ``items:edit``, or ``items:edit-own`` if it is the caller's."""
    if principal.can(Permission.edit) or (principal.can(Permission.edit_own) and created_by == principal.name):
        return
    raise _forbidden(Permission.edit, f"The credential {principal.name!r} may only edit its own items; "
                                      f"editing another's needs {Permission.edit}.",
                     "Authorization", f"needs {Permission.edit}")


def _forbidden(permission: Permission, message: str, field: str, why: str) -> ApiError:
    return ApiError(403, "forbidden", message, fields=[{"field": field, "message": why}],
                    extra={"permission": permission.value})
