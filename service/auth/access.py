"""Deny by default: every route declares who may call it; scopes become SQL conditions.

A handler without a declaration is refused by the middleware, and a test walks the route table to
make sure none is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..storage.scope import EVERYTHING, NO_ACCESS, Scope
from .sessions import CurrentUser

ACCESS_ATTRIBUTE = "__teleread_access__"
PUBLIC = "public"
AUTHENTICATED = "authenticated"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Roles whose reach is their own facility's consultations.
FACILITY_ROLES = {"radiographer", "clinician"}
# Roles that read for the region when they belong to the regional centre.
READER_ROLES = {"specialist", "manager"}
# The facility kind whose staff act for the whole consortium.
REGIONAL = "regional"


def at_centre(role: str) -> str:
    """A role that counts only at the regional centre, for :func:`allow` (``"manager@regional"``):
    a consortium-wide power (report templates, revoking certificates) must not be granted to every
    clinic's manager just because they share the role's name."""
    return f"{role}@{REGIONAL}"


def allow(*roles: str) -> Callable[[Handler], Handler]:
    """Declare the roles that may call a handler (``allow(AUTHENTICATED)`` for any user).

    A role qualified with :func:`at_centre` admits that role only at the regional centre.
    """

    def mark(handler: Handler) -> Handler:
        setattr(handler, ACCESS_ATTRIBUTE, frozenset(roles))
        return handler

    return mark


def public(handler: Handler) -> Handler:
    """Declare a handler open to anyone (login page, static files, health check)."""
    setattr(handler, ACCESS_ATTRIBUTE, frozenset({PUBLIC}))
    return handler


def declared_access(handler: Any) -> frozenset[str] | None:
    return getattr(handler, ACCESS_ATTRIBUTE, None)


def permits(declared: frozenset[str], user: CurrentUser | None) -> bool:
    if PUBLIC in declared:
        return True
    if user is None:
        return False
    return (
        AUTHENTICATED in declared
        or user.role in declared
        or f"{user.role}@{user.facility_kind}" in declared
    )


def may_revoke_certificate_of(user: CurrentUser, signer_facility_id: int) -> bool:
    """Administrators revoke any signer's certificate; the regional centre's managers only their
    own centre's signers (a compromised key elsewhere goes through an administrator)."""
    if user.role == "admin":
        return True
    return (
        user.role == "manager"
        and user.facility_kind == REGIONAL
        and user.facility_id == signer_facility_id
    )


def manages_readers_of(user: CurrentUser, facility_id: int) -> bool:
    """Whether ``user`` directs the work of ``facility_id``'s readers (releasing their claims,
    handing them consultations): a manager their own facility's, the regional centre's managers
    everyone's (the centre runs the consortium's reading). A county or township manager must not
    take a consultation from the centre's reader, nor hand the centre's readers work."""
    if user.role != "manager":
        return False
    return user.facility_kind == REGIONAL or user.facility_id == facility_id


def may_correct_report_signed_at(user: CurrentUser, signer_facility_id: int) -> bool:
    """A signed report is corrected by a reader of the facility whose reader signed it: the
    clinic that asked (or another hospital) must not supersede the centre's signed report with a
    version of its own."""
    return user.role in READER_ROLES and user.facility_id == signer_facility_id


def consultation_scope(user: CurrentUser) -> Scope:
    """Which consultations a user may see, by role and facility."""
    if user.role in FACILITY_ROLES:
        return Scope(facility_ids=(user.facility_id,))
    if user.role == "requester":
        return Scope(facility_ids=(user.facility_id,), requested_by=user.id)
    if user.role in READER_ROLES:
        return EVERYTHING if user.facility_kind == "regional" else Scope((user.facility_id,))
    return NO_ACCESS
