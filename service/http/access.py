"""Deny by default, at the HTTP edge: every route declares who may call it.

A handler without a declaration is refused by the access middleware (service/http/middleware.py),
and a test walks the route table to make sure none is missing. Which consultations a caller may
then see is a domain rule (service/auth/access.py), applied in the storage query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..auth.access import REGIONAL
from ..auth.sessions import CurrentUser

ACCESS_ATTRIBUTE = "__teleread_access__"
PUBLIC = "public"
AUTHENTICATED = "authenticated"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
