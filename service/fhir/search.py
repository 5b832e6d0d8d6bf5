"""A FHIR search's query string, checked against what teleread implements, as a storage match.

Parameters not in the CapabilityStatement (service/fhir/capability.py) are refused with a 400
that names them, rather than ignored: a client that filters on something teleread cannot match
must not take an unfiltered answer for a filtered one. A well-formed value that names nothing
teleread could hold (another system, an id it never made) is a search with no match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..storage.fhir import Match
from .capability import COMMON_PARAMS, DEFAULT_COUNT, MAX_COUNT, SEARCH_PARAMS
from .identity import (
    ACCESSION_SYSTEM,
    PATIENT_ID_SYSTEM,
    PLACER_SYSTEM,
    aet_of_system,
    consultation_id_of,
    parse_patient_logical_id,
)
from .resources import STATUSES_OF

REQUEST_STATUSES = {
    "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"
}  # fmt: skip


class InvalidSearch(ValueError):
    """A parameter teleread does not implement, given twice, or with a malformed value."""


@dataclass(frozen=True)
class Search:
    match: Match
    limit: int
    nothing: bool = False
    """The query names nothing teleread holds: answer an empty Bundle without asking."""


def parse_search(resource_type: str, query: Iterable[tuple[str, str]]) -> Search:
    allowed = SEARCH_PARAMS[resource_type]
    given: dict[str, str] = {}
    for name, value in query:
        if name not in allowed and name not in COMMON_PARAMS:
            names = ", ".join([*allowed, "_count"])
            raise InvalidSearch(f"{resource_type} cannot be searched by {name!r} (only {names})")
        if name in given:
            raise InvalidSearch(f"give {name} once")
        given[name] = value
    search = Search(Match(), _count(given.get("_count")))
    for name, value in given.items():
        if name not in COMMON_PARAMS:
            search = _apply(search, resource_type, name, value.strip())
    return search


def _count(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit() or not 0 < int(value) <= MAX_COUNT:
        raise InvalidSearch(f"_count must be a number from 1 to {MAX_COUNT}")
    return int(value)


def _narrow(search: Search, **fields: object) -> Search:
    """The search with these fields set; one set already to another value matches nothing."""
    current = search.match
    for key, value in fields.items():
        if value is None:
            return replace(search, nothing=True)
        before = getattr(current, key)
        if before not in (None, ()) and before != value:
            return replace(search, nothing=True)
    return replace(search, match=replace(current, **fields))


def _apply(search: Search, resource_type: str, name: str, value: str) -> Search:
    if name == "_id" and resource_type == "Patient":
        named = parse_patient_logical_id(value)
        if named is None:
            return replace(search, nothing=True)
        return _narrow(search, facility_id=named[0], patient_id=named[1])
    if name in ("_id", "based-on"):
        prefix = "" if name == "_id" else "ServiceRequest/"
        if prefix and "/" in value and not value.startswith(prefix):
            raise InvalidSearch(f"{name} must name a ServiceRequest")
        return _narrow(search, consultation_id=consultation_id_of(value.removeprefix(prefix)))
    if name == "patient":
        if "/" in value and not value.startswith("Patient/"):
            raise InvalidSearch("patient must be Patient/<id>")
        named = parse_patient_logical_id(value.removeprefix("Patient/"))
        if named is None:
            return replace(search, nothing=True)
        return _narrow(search, facility_id=named[0], patient_id=named[1])
    if name == "identifier":
        return _identifier(search, resource_type, value)
    if name == "status":
        return _status(search, value)
    if name == "requester":
        if "/" in value and not value.startswith("Organization/"):
            raise InvalidSearch("requester must be Organization/<facility id>")
        return _narrow(search, facility_id=consultation_id_of(value.removeprefix("Organization/")))
    raise InvalidSearch(f"{name} is not implemented")  # pragma: no cover (SEARCH_PARAMS)


def _identifier(search: Search, resource_type: str, value: str) -> Search:
    system, bar, code = value.rpartition("|")
    if not bar:
        system, code = "", value
    if not code:
        raise InvalidSearch("identifier needs a value (system|value)")
    if resource_type == "Patient":
        if not system:
            return _narrow(search, patient_id=code)
        aet = aet_of_system(PATIENT_ID_SYSTEM, system)
        return _narrow(search, facility_aet=aet, patient_id=code)
    for prefix in (PLACER_SYSTEM, ACCESSION_SYSTEM):
        if (aet := aet_of_system(prefix, system)) is not None:
            return _narrow(search, facility_aet=aet, order_number=code)
    return _narrow(search, order_number=code) if not system else replace(search, nothing=True)


def _status(search: Search, value: str) -> Search:
    codes = [c.strip() for c in value.split(",") if c.strip()]
    unknown = sorted(set(codes) - REQUEST_STATUSES)
    if not codes or unknown:
        raise InvalidSearch(f"status must be request-status codes, not {', '.join(unknown)}")
    statuses = tuple(sorted(s for c in codes for s in STATUSES_OF.get(c, ())))
    if not statuses:
        return replace(search, nothing=True)
    return _narrow(search, statuses=statuses)
