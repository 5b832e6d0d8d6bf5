"""The authorisation matrix: every write route × every role × own facility / another facility /
the regional centre (and no session at all) gets the answer the table below says.

``SPEC`` is written by hand from the product's rules, not read from the handlers' declarations,
so a declaration (or a check in a handler) that admits too much fails here. It covers exactly the
app's write routes (POST, PUT, PATCH, DELETE; the pages have no form posts of their own, they
write through these): a new write route without a line in it fails
:func:`test_the_table_covers_exactly_the_write_routes`.

Outcomes: *allowed* is anything but 401, 403 and 404 (a 400 or 409 means the authorisation passed
and the request or the state was refused: bodies are valid wherever a handler checks rights
itself); *refused* is 403 with a JSON reason (an OperationOutcome under /fhir); *hidden* is 404
(a consultation outside the caller's scope does not exist for them); without a session every
non-public route answers 401.

Places are seen from the consultations of the fixtures, all of the township clinic: *own* is the
clinic's staff, *other* a county hospital's, *centre* the regional centre's. The clinic's requester
filed every consultation (a requester sees only what they filed). Routes that touch no
consultation use the same three callers (the centre's powers are what matters there).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from service.app import create_app
from service.clock import to_iso, utc_now
from service.http.access import allow
from service.http.auditing import audit_declaration
from service.intake.patient_merges import PatientIdentity, merge_patients
from service.settings import Settings
from service.storage import facilities as facility_store
from service.storage import hl7_outbox as hl7_store
from service.storage import notifications as notification_store
from service.storage import patient_candidates as candidate_store
from service.storage import patient_record as record_store
from service.storage import patients as patient_store
from service.storage import repeat_alerts as repeat_alert_store
from service.storage import reports as report_store
from service.storage import roster as roster_store
from service.storage import saved_filters as filter_store
from service.storage import signing_identities as identity_store
from service.storage import tokens as token_store
from service.storage import users as user_store
from service.storage.audit import audit_rows
from service.storage.scope import EVERYTHING

from .conftest import PASSWORD
from .consortium import CENTRE, OTHER, OWN, PLACES, ROLES, Caller, Consortium, consortium

__all__ = ["consortium"]  # the module-scoped fixture, imported for pytest

# The consortium fixture (tests/consortium.py) starts a real Orthanc.
pytestmark = pytest.mark.orthanc

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CLINIC = ("radiographer", "clinician", "requester")
READERS = ("specialist", "manager")
STAFF = (*CLINIC, *READERS)  # everyone with a worklist: all but administrators


@dataclass(frozen=True)
class Rule:
    """Who may call a route: ``allowed`` (role, place) pairs act, ``hidden`` ones get 404, every
    other user 403; without a session 401 unless the route is public."""

    allowed: frozenset[tuple[str, str]] = frozenset()
    hidden: frozenset[tuple[str, str]] = frozenset()
    public: bool = False

    def __or__(self, other: Rule) -> Rule:
        return Rule(
            self.allowed | other.allowed, self.hidden | other.hidden, self.public or other.public
        )

    def expected(self, caller: Caller | None) -> str:
        if caller is None:
            return "allowed" if self.public else "401"
        where = (caller.role, caller.place)
        if self.public or where in self.allowed:
            return "allowed"
        return "404" if where in self.hidden else "403"


def everywhere(*roles: str) -> Rule:
    """These roles, at any facility."""
    return Rule(frozenset((role, place) for role in roles for place in PLACES))


def at(place: str, *roles: str) -> Rule:
    """These roles, only at one kind of facility."""
    return Rule(frozenset((role, place) for role in roles))


def on_the_clinics_consultation(*roles: str) -> Rule:
    """A consultation of the clinic: these roles of the clinic act on it, and the regional
    centre's readers; to the same roles anywhere else it does not exist."""
    allowed = {(role, OWN) for role in roles} | {(r, CENTRE) for r in roles if r in READERS}
    every = {(role, place) for role in roles for place in PLACES}
    return Rule(frozenset(allowed), frozenset(every - allowed))


PUBLIC = Rule(public=True)
ANY_USER = everywhere(*ROLES)
CONSORTIUM_KEEPERS = everywhere("admin") | at(CENTRE, "manager")

PEER_REVIEWERS = Rule(
    frozenset({("specialist", OWN), ("manager", OWN), ("manager", CENTRE)}),
    frozenset((r, OTHER) for r in READERS),
)
"""Who may take a peer review of the report the centre's specialist signed: not that signer."""

SPEC: dict[str, Rule] = {
    # Logging in and public verification of a report file.
    "POST /api/login": PUBLIC,
    "POST /api/verify": PUBLIC,
    # One's own session, password, tokens, notifications and saved filters.
    "POST /api/logout": ANY_USER,
    "POST /api/me/password": ANY_USER,
    "POST /api/tokens": ANY_USER,
    "DELETE /api/tokens/{id}": ANY_USER,
    "POST /api/notifications/{id}/read": ANY_USER,
    "POST /api/worklist/filters": everywhere(*STAFF),
    "DELETE /api/worklist/filters/{id}": everywhere(*STAFF),
    # A facility sends its own studies and files its own requests.
    "POST /api/consultations": everywhere(*CLINIC),
    "POST /fhir/ServiceRequest": everywhere(*CLINIC),
    # A repeat-exam alert the clinic's request met: its own requesting staff withdraw it; to the
    # same roles elsewhere it does not exist.
    "POST /api/repeat-alerts/{id}/withdraw": Rule(
        frozenset((role, OWN) for role in CLINIC),
        frozenset((role, place) for role in CLINIC for place in (OTHER, CENTRE)),
    ),
    "PUT /fhir/ServiceRequest/{id}": on_the_clinics_consultation(*CLINIC),
    "POST /api/studies": everywhere("radiographer", "requester"),
    "POST /dicom-web/studies": everywhere("radiographer", "requester"),
    "POST /dicom-web/studies/{study}": everywhere("radiographer", "requester"),
    # Reading a consultation: its own facility's readers and the centre's.
    "POST /api/consultations/{id}/claim": on_the_clinics_consultation("specialist"),
    "POST /api/consultations/{id}/release": on_the_clinics_consultation(*READERS),
    "POST /api/consultations/{id}/reassign": on_the_clinics_consultation("manager"),
    "POST /api/consultations/{id}/preliminary": on_the_clinics_consultation("specialist"),
    "PUT /api/consultations/{id}/report/draft": on_the_clinics_consultation(*READERS),
    "POST /api/consultations/{id}/report/sign": on_the_clinics_consultation(*READERS),
    "POST /api/consultations/{id}/report/key-images": on_the_clinics_consultation(*READERS),
    "DELETE /api/consultations/{id}/report/key-images/{key}": on_the_clinics_consultation(*READERS),
    # Reviewing (two-level sign-off): the readers who claim, i.e. specialists.
    "POST /api/consultations/{id}/report/review/approve": on_the_clinics_consultation("specialist"),
    "POST /api/consultations/{id}/report/review/edit": on_the_clinics_consultation("specialist"),
    "POST /api/consultations/{id}/report/review/return": on_the_clinics_consultation("specialist"),
    # The report was signed at the centre: its readers correct it, the clinic's may not.
    "POST /api/consultations/{id}/report/correction": (
        at(CENTRE, *READERS) | Rule(hidden=frozenset((r, OTHER) for r in READERS))
    ),
    # The thread and printing: everyone who sees the consultation.
    "POST /api/consultations/{id}/messages": on_the_clinics_consultation(*STAFF),
    "POST /api/consultations/{id}/report/versions/{version}/print": (
        on_the_clinics_consultation(*STAFF)
    ),
    # Receiving the report: the clinic that asked.
    "POST /api/consultations/{id}/report/acknowledgement": on_the_clinics_consultation(*CLINIC),
    "POST /api/consultations/{id}/report/critical-acknowledgement": (
        on_the_clinics_consultation("clinician", "requester")
    ),
    # Accounts and facilities: administrators.
    "POST /api/admin/users": everywhere("admin"),
    "PATCH /api/admin/users/{id}": everywhere("admin"),
    "POST /api/admin/users/{id}/disable": everywhere("admin"),
    "POST /api/admin/users/{id}/enable": everywhere("admin"),
    "POST /api/admin/users/{id}/password": everywhere("admin"),
    "POST /api/admin/facilities": everywhere("admin"),
    "PATCH /api/admin/facilities/{id}": everywhere("admin"),
    "POST /api/admin/patient-merges/{id}/reverse": everywhere("admin"),
    "POST /api/admin/hl7-outbox/{id}/retry": everywhere("admin"),
    # Linking patients across facilities (issue 21): the centre's administrators only.
    "POST /api/admin/patients/candidates/{id}/link": at(CENTRE, "admin"),
    "POST /api/admin/patients/candidates/{id}/reject": at(CENTRE, "admin"),
    "POST /api/admin/patients/links": at(CENTRE, "admin"),
    "POST /api/admin/patients/identities/{id}/unlink": at(CENTRE, "admin"),
    "POST /api/admin/patients/changes/{id}/reverse": at(CENTRE, "admin"),
    # What the consortium shares is kept by the regional centre's managers and administrators.
    "POST /api/roster": CONSORTIUM_KEEPERS,
    # QC scores and the recognition list are the centre's managers' to recompute (issue 20).
    "POST /api/quality/recompute": at(CENTRE, "manager"),
    "DELETE /api/roster/{id}": CONSORTIUM_KEEPERS,
    "POST /api/report-templates": CONSORTIUM_KEEPERS,
    "PUT /api/report-templates/{id}": CONSORTIUM_KEEPERS,
    "DELETE /api/report-templates/{id}": CONSORTIUM_KEEPERS,
    # Peer review (issue 20 item 1) of the report the centre's specialist signed: the centre's
    # managers pick it; readers who see it take and score it, except its own signer (403
    # own_report); only its first reader answers the discrepancy; the centre's managers close it.
    "POST /api/consultations/{id}/peer-review": at(CENTRE, "manager"),
    "POST /api/peer-reviews/{id}/claim": PEER_REVIEWERS,
    "POST /api/peer-reviews/{id}/score": PEER_REVIEWERS,
    "POST /api/peer-reviews/{id}/release": on_the_clinics_consultation(*READERS),
    "POST /api/peer-reviews/{id}/answer": at(CENTRE, "specialist")
    | Rule(hidden=frozenset((r, OTHER) for r in READERS)),
    "POST /api/peer-reviews/{id}/close": at(CENTRE, "manager"),
    # The consortium record (issue 21 item 4): a doctor whose facility has a consultation for
    # the patient (the clinic's; the centre reads every facility's) states a reason; managers,
    # radiographers, administrators and a facility without a consultation are refused.
    "POST /api/patients/{id}/reasons": Rule(
        frozenset(
            {("clinician", OWN), ("requester", OWN), ("specialist", OWN), ("specialist", CENTRE)}
        )
    ),
    # One's own signing key; revoking a regional signer's certificate (see also the tests below).
    "POST /api/signing/identities/pkcs12": everywhere(*READERS),
    "POST /api/certificates/{serial}/revoke": CONSORTIUM_KEEPERS,
}


# ---- how each route is called ----------------------------------------------------------------

Call = tuple[str, dict[str, Any]]
"""The path and the request's keyword arguments (json, data, headers to add or replace)."""
Builder = Callable[[Consortium, Caller | None], Awaitable[Call]]
REQUESTS: dict[str, Builder] = {}
SERIAL = itertools.count(1)


def calls(route: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        REQUESTS[route] = builder
        return builder

    return register


def _user_id(caller: Caller | None, world: Consortium) -> int:
    """Whose own resource to prepare (anyone's will do for a caller without a session)."""
    return caller.user_id if caller else world.caller("clinician", OWN).user_id


def _consultation(path: str, which: str, **kwargs: Any) -> Builder:
    """A call on one of the clinic's consultations: ``open``, ``claim`` or ``signed``."""

    async def build(world: Consortium, caller: Caller | None) -> Call:
        ids = {"open": world.open_id, "claim": world.claim_id, "signed": world.signed_id}
        return path.format(id=ids[which], version=1), dict(kwargs)

    return build


@calls("POST /api/login")
async def _login(world: Consortium, caller: Caller | None) -> Call:
    username = caller.username if caller else "nobody"
    return "/api/login", {"json": {"username": username, "password": ""}}


@calls("POST /api/verify")
async def _verify(world: Consortium, caller: Caller | None) -> Call:
    return "/api/verify", {"data": b"not a report"}


@calls("POST /api/logout")
async def _logout(world: Consortium, caller: Caller | None) -> Call:
    """A session of its own: the caller's main one serves the other routes."""
    headers = await world.new_session(caller.user_id) if caller else {}
    return "/api/logout", {"headers": headers}


@calls("POST /api/me/password")
async def _own_password(world: Consortium, caller: Caller | None) -> Call:
    return "/api/me/password", {"json": {"current_password": PASSWORD, "new_password": "short"}}


@calls("POST /api/tokens")
async def _new_token(world: Consortium, caller: Caller | None) -> Call:
    return "/api/tokens", {"json": {"name": f"matrix {next(SERIAL)}"}}


@calls("DELETE /api/tokens/{id}")
async def _revoke_token(world: Consortium, caller: Caller | None) -> Call:
    now = utc_now()
    token_id = await world.service.database.write(
        token_store.create_token,
        user_id=_user_id(caller, world),
        name=f"matrix {next(SERIAL)}",
        token_hash=f"matrix-{next(SERIAL)}",
        created_at=to_iso(now),
        expires_at=to_iso(now + timedelta(days=1)),
    )
    return f"/api/tokens/{token_id}", {}


@calls("POST /api/notifications/{id}/read")
async def _read_notification(world: Consortium, caller: Caller | None) -> Call:
    row = {
        "user_id": _user_id(caller, world),
        "kind": "stat",
        "title": "matrix",
        "created_at": to_iso(utc_now()),
    }
    [notification_id] = await world.service.database.write(
        notification_store.add_notifications, [row]
    )
    return f"/api/notifications/{notification_id}/read", {}


@calls("POST /api/worklist/filters")
async def _save_filter(world: Consortium, caller: Caller | None) -> Call:
    return "/api/worklist/filters", {"json": {"name": f"matrix {next(SERIAL)}", "filters": {}}}


@calls("DELETE /api/worklist/filters/{id}")
async def _delete_filter(world: Consortium, caller: Caller | None) -> Call:
    saved = await world.service.database.write(
        filter_store.add_filter,
        _user_id(caller, world),
        f"matrix {next(SERIAL)}",
        {},
        to_iso(utc_now()),
    )
    return f"/api/worklist/filters/{saved['id']}", {}


@calls("POST /api/consultations")
async def _request(world: Consortium, caller: Caller | None) -> Call:
    body = {"accession_number": f"MATRIX-{next(SERIAL)}", "priority": "routine"}
    return "/api/consultations", {"json": body}


@calls("POST /api/repeat-alerts/{id}/withdraw")
async def _withdraw_repeat(world: Consortium, caller: Caller | None) -> Call:
    """A pending alert of the clinic's for each call (a second withdrawal would be 409)."""
    row = {
        "facility_id": world.facilities[OWN],
        "patient_id": "MATRIX-PATIENT",
        "modality": "CT",
        "body_part": "HEAD",
        "window_days": 7,
        "matches": [],
        "source": "web",
        "decision": "pending",
        "created_at": to_iso(utc_now()),
    }
    alert_id = await world.service.database.write(repeat_alert_store.insert_alert, row)
    return f"/api/repeat-alerts/{alert_id}/withdraw", {}


@calls("POST /fhir/ServiceRequest")
async def _fhir_order(world: Consortium, caller: Caller | None) -> Call:
    accession = {"type": {"coding": [{"code": "ACSN"}]}, "value": f"MATRIX-F{next(SERIAL)}"}
    body = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"identifier": {"value": "MATRIX-PATIENT"}},
        "identifier": [accession],
    }
    return "/fhir/ServiceRequest", {"json": body}


@calls("PUT /fhir/ServiceRequest/{id}")
async def _fhir_order_update(world: Consortium, caller: Caller | None) -> Call:
    """A change teleread refuses (400) once the caller may reach the order: nothing changes."""
    body = {
        "resourceType": "ServiceRequest",
        "id": str(world.open_id),
        "status": "on-hold",
        "intent": "order",
        "subject": {"reference": "Patient/unknown"},
    }
    return f"/fhir/ServiceRequest/{world.open_id}", {"json": body}


@calls("POST /api/studies")
async def _upload(world: Consortium, caller: Caller | None) -> Call:
    form = aiohttp.FormData()
    form.add_field("files", b"not dicom", filename="x.dcm", content_type="application/dicom")
    return "/api/studies", {"data": form}


def _stow(path: str) -> Builder:
    async def build(world: Consortium, caller: Caller | None) -> Call:
        writer = aiohttp.MultipartWriter("related")
        writer.append(b"not dicom", {"Content-Type": "application/dicom"})
        content_type = f'multipart/related; type="application/dicom"; boundary="{writer.boundary}"'
        uid = f"1.2.826.0.1.3680043.10.77.{next(SERIAL)}"
        return path.format(study=uid), {"data": writer, "headers": {"Content-Type": content_type}}

    return build


REQUESTS["POST /dicom-web/studies"] = _stow("/dicom-web/studies")
REQUESTS["POST /dicom-web/studies/{study}"] = _stow("/dicom-web/studies/{study}")

CONSULTATION = "/api/consultations/{id}"
REQUESTS |= {
    # Images arrived, unclaimed: one specialist's claim wins, the next ones are told who holds it.
    "POST /api/consultations/{id}/claim": _consultation(CONSULTATION + "/claim", "claim"),
    # Never claimed: releasing, answering and writing are refused as state (409), not as rights.
    "POST /api/consultations/{id}/release": _consultation(CONSULTATION + "/release", "open"),
    "POST /api/consultations/{id}/preliminary": _consultation(
        CONSULTATION + "/preliminary", "open", json={"text": "No bleed."}
    ),
    "PUT /api/consultations/{id}/report/draft": _consultation(
        CONSULTATION + "/report/draft", "open", json={"findings": "Normal."}
    ),
    "POST /api/consultations/{id}/report/sign": _consultation(
        CONSULTATION + "/report/sign", "open", json={"password": PASSWORD}
    ),
    "POST /api/consultations/{id}/messages": _consultation(
        CONSULTATION + "/messages", "open", json={"body": "Any prior films?"}
    ),
    # Not claimed: marking and unmarking key images are refused as state (409), not as rights.
    "POST /api/consultations/{id}/report/key-images": _consultation(
        CONSULTATION + "/report/key-images",
        "open",
        json={
            "series_instance_uid": "1.2.3",
            "sop_instance_uid": "1.2.3.4",
            "frame": 1,
            "caption": "",
            "view": {"viewport": [600, 400], "window": {"center": 40, "width": 80}},
        },
    ),
    "DELETE /api/consultations/{id}/report/key-images/{key}": _consultation(
        CONSULTATION + "/report/key-images/1", "open"
    ),
    # Nothing awaits review: refused as state (409 not_awaiting_review), not as rights.
    "POST /api/consultations/{id}/report/review/approve": _consultation(
        CONSULTATION + "/report/review/approve", "open", json={"password": PASSWORD}
    ),
    "POST /api/consultations/{id}/report/review/edit": _consultation(
        CONSULTATION + "/report/review/edit", "open", json={"password": PASSWORD}
    ),
    "POST /api/consultations/{id}/report/review/return": _consultation(
        CONSULTATION + "/report/review/return", "open", json={"comment": "Add the mediastinum."}
    ),
    # Signed with a critical finding: corrections, printing, acknowledgements.
    "POST /api/consultations/{id}/report/correction": _consultation(
        CONSULTATION + "/report/correction", "signed"
    ),
    "POST /api/consultations/{id}/report/versions/{version}/print": _consultation(
        CONSULTATION + "/report/versions/{version}/print", "signed"
    ),
    "POST /api/consultations/{id}/report/acknowledgement": _consultation(
        CONSULTATION + "/report/acknowledgement", "signed"
    ),
    "POST /api/consultations/{id}/report/critical-acknowledgement": _consultation(
        CONSULTATION + "/report/critical-acknowledgement", "signed"
    ),
}


@calls("POST /api/patients/{id}/reasons")
async def _record_reason(world: Consortium, caller: Caller | None) -> Call:
    """A reason to see the whole record of the signed consultation's patient (by identity)."""
    identity = await world.service.database.read(
        record_store.identity_of_consultation, world.signed_id, EVERYTHING
    )
    body = {"category": "treatment", "text": "Seeing the patient today"}
    return f"/api/patients/{identity}/reasons", {"json": body}


@calls("POST /api/consultations/{id}/reassign")
async def _reassign(world: Consortium, caller: Caller | None) -> Call:
    """To a radiographer: refused as an assignee (400) once the caller may reassign at all."""
    return f"/api/consultations/{world.open_id}/reassign", {
        "json": {"user_id": world.spare_user_id}
    }


@calls("POST /api/admin/users")
async def _create_user(world: Consortium, caller: Caller | None) -> Call:
    body = {
        "username": f"matrix{next(SERIAL)}",
        "role": "clinician",
        "facility_id": world.spare_facility_id,
        "password": "matrix-password-1",
    }
    return "/api/admin/users", {"json": body}


def _spare_user(tail: str, **kwargs: Any) -> Builder:
    async def build(world: Consortium, caller: Caller | None) -> Call:
        return f"/api/admin/users/{world.spare_user_id}{tail}", kwargs

    return build


REQUESTS |= {
    "PATCH /api/admin/users/{id}": _spare_user("", json={"display_name": "Spare"}),
    "POST /api/admin/users/{id}/disable": _spare_user("/disable"),
    "POST /api/admin/users/{id}/enable": _spare_user("/enable"),
    "POST /api/admin/users/{id}/password": _spare_user(
        "/password", json={"password": "matrix-password-2"}
    ),
}


@calls("POST /api/admin/facilities")
async def _create_facility(world: Consortium, caller: Caller | None) -> Call:
    n = next(SERIAL)
    body = {"name": f"Matrix Clinic {n}", "kind": "township", "aet": f"MATRIX_{n}"}
    return "/api/admin/facilities", {"json": body}


@calls("PATCH /api/admin/facilities/{id}")
async def _change_facility(world: Consortium, caller: Caller | None) -> Call:
    body = {"contact": f"0571-{next(SERIAL)}"}
    return f"/api/admin/facilities/{world.spare_facility_id}", {"json": body}


@calls("POST /api/admin/patient-merges/{id}/reverse")
async def _reverse_merge(world: Consortium, caller: Caller | None) -> Call:
    """A merge of its own for each call (a second reversal of one would be 409, also allowed)."""
    n = next(SERIAL)
    merge = await world.service.database.write(
        merge_patients,
        facility_id=world.spare_facility_id,
        surviving=PatientIdentity(f"MATRIX-NEW-{n}"),
        prior=PatientIdentity(f"MATRIX-OLD-{n}"),
        source="matrix",
        actor_user_id=None,
        now=utc_now(),
    )
    return f"/api/admin/patient-merges/{merge.id}/reverse", {}


@dataclass(frozen=True)
class _Pair:
    """Two fresh local identities of the spare clinic, proposed as a likely match."""

    one: int
    two: int
    candidate: int
    change: int | None


def _pair(db, linked: bool) -> _Pair:
    """A new pair for each call (linked by an administrator, with that change, when asked)."""
    facility = facility_store.facility_by_aet(db, "SPARE_CLINIC")["id"]
    n = next(SERIAL)
    one, two = (
        patient_store.record_local_identity(
            db, patient_store.LocalPatient(facility, f"MATRIX-{side}-{n}", "Matrix^Pat")
        ).identity_id
        for side in "AB"
    )
    candidate = candidate_store.propose(db, one, two, 0.9, ["matrix"], to_iso(utc_now()))
    change = (
        patient_store.merge_persons(db, one, two, "administrator", None, "m") if linked else None
    )
    return _Pair(one, two, candidate or 0, change)


REASON = {"json": {"reason": "matrix"}}


@calls("POST /api/admin/patients/candidates/{id}/link")
async def _link_candidate(world: Consortium, caller: Caller | None) -> Call:
    pair = await world.service.database.write(_pair, False)
    return f"/api/admin/patients/candidates/{pair.candidate}/link", dict(REASON)


@calls("POST /api/admin/patients/candidates/{id}/reject")
async def _reject_candidate(world: Consortium, caller: Caller | None) -> Call:
    pair = await world.service.database.write(_pair, False)
    return f"/api/admin/patients/candidates/{pair.candidate}/reject", dict(REASON)


@calls("POST /api/admin/patients/links")
async def _link_identities(world: Consortium, caller: Caller | None) -> Call:
    pair = await world.service.database.write(_pair, False)
    body = {"identity_id": pair.one, "other_identity_id": pair.two, "reason": "matrix"}
    return "/api/admin/patients/links", {"json": body}


@calls("POST /api/admin/patients/identities/{id}/unlink")
async def _unlink_identity(world: Consortium, caller: Caller | None) -> Call:
    pair = await world.service.database.write(_pair, True)
    return f"/api/admin/patients/identities/{pair.two}/unlink", dict(REASON)


@calls("POST /api/admin/patients/changes/{id}/reverse")
async def _reverse_link(world: Consortium, caller: Caller | None) -> Call:
    pair = await world.service.database.write(_pair, True)
    return f"/api/admin/patients/changes/{pair.change}/reverse", dict(REASON)


@calls("POST /api/admin/hl7-outbox/{id}/retry")
async def _retry_hl7_result(world: Consortium, caller: Caller | None) -> Call:
    """The signed report's HL7 result, queued once for an HIS that never answers."""
    outbox_id = await world.service.database.write(_hl7_result, world.signed_id)
    return f"/api/admin/hl7-outbox/{outbox_id}/retry", {}


def _hl7_result(db, consultation_id: int) -> int:
    queued = [r for r in hl7_store.list_messages(db) if r["consultation_id"] == consultation_id]
    if queued:
        return queued[0]["id"]
    facility = facility_store.facility_of_consultation(db, consultation_id)
    facility_store.update_facility(db, facility["id"], hl7_endpoint="127.0.0.1:1")
    report = report_store.report_for(db, consultation_id)
    version = report_store.versions_of(db, report["id"])[0]
    return hl7_store.enqueue_result(db, consultation_id, version["id"], 1, to_iso(utc_now()))


@calls("POST /api/quality/recompute")
async def _recompute_quality(world: Consortium, caller: Caller | None) -> Call:
    return "/api/quality/recompute", {"json": {"month": "2020-01"}}


def _peer_review_row(db: Any, facility_id: int, signer_id: int) -> int:
    """A peer review of a report the centre's specialist signed on a consultation of the clinic
    of its own (a stand-in version: no other test signs or corrects it), scored 3b with its
    discrepancy open; made once."""
    stamp = to_iso(utc_now())
    found = db.execute(
        "SELECT p.id FROM peer_reviews p JOIN consultations c ON c.id = p.consultation_id"
        " WHERE c.accession_number = 'ACC-PEER'"
    ).fetchone()
    if found:
        return found[0]
    cid = db.execute(
        "INSERT INTO consultations (facility_id, accession_number, status, due_at, created_at,"
        " updated_at, received_at) VALUES (?, 'ACC-PEER', 'signed', ?, ?, ?, ?)",
        [facility_id, stamp, stamp, stamp, stamp],
    ).lastrowid
    report = db.execute(
        "INSERT INTO reports (consultation_id, state, author_id, signed_versions, created_at,"
        " updated_at) VALUES (?, 'signed', ?, 1, ?, ?)",
        [cid, signer_id, stamp, stamp],
    ).lastrowid
    version = db.execute(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf)"
        " VALUES (?, 1, 'Normal.', 'Normal.', '', 0, 0, ?, 'Li', '1', ?, 'MATRIX-PEER',"
        " 'http://x/verify', x'00', x'00', x'00')",
        [report, signer_id, stamp],
    ).lastrowid
    return db.execute(
        "INSERT INTO peer_reviews (report_version_id, consultation_id, facility_id, reader_id,"
        " queue, origin, assigned_at, score, significance, comment, scored_at, discrepancy)"
        " VALUES (?, ?, ?, ?, 'general', 'sampled', ?, 3, 'b', 'missed', ?, 'open')",
        [version, cid, facility_id, signer_id, stamp, stamp],
    ).lastrowid


def _peer_review(tail: str, **kwargs: Any) -> Builder:
    async def build(world: Consortium, caller: Caller | None) -> Call:
        rid = await world.service.database.write(
            _peer_review_row, world.facilities[OWN], world.caller("specialist", CENTRE).user_id
        )
        return f"/api/peer-reviews/{rid}/{tail}", dict(kwargs)

    return build


REQUESTS |= {
    "POST /api/consultations/{id}/peer-review": _consultation(
        CONSULTATION + "/peer-review", "signed"
    ),
    "POST /api/peer-reviews/{id}/claim": _peer_review("claim"),
    "POST /api/peer-reviews/{id}/score": _peer_review("score", json={"score": 1}),
    "POST /api/peer-reviews/{id}/release": _peer_review("release"),
    "POST /api/peer-reviews/{id}/answer": _peer_review("answer", json={"answer": "Agreed."}),
    "POST /api/peer-reviews/{id}/close": _peer_review("close", json={"outcome": "Corrected."}),
}


@calls("POST /api/roster")
async def _add_shift(world: Consortium, caller: Caller | None) -> Call:
    starts = utc_now() + timedelta(days=next(SERIAL))
    body = {
        "user_id": world.caller("specialist", CENTRE).user_id,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=8)).isoformat(),
        "role_on_duty": "reader",
    }
    return "/api/roster", {"json": body}


@calls("DELETE /api/roster/{id}")
async def _delete_shift(world: Consortium, caller: Caller | None) -> Call:
    starts = utc_now() + timedelta(days=next(SERIAL))
    entry_id = await world.service.database.write(
        roster_store.add_entry,
        user_id=world.caller("specialist", CENTRE).user_id,
        starts_at=to_iso(starts),
        ends_at=to_iso(starts + timedelta(hours=8)),
        role_on_duty="reader",
        created_by=None,
        created_at=to_iso(utc_now()),
    )
    return f"/api/roster/{entry_id}", {}


TEMPLATE = {"name": "CT head normal", "modality": "CT", "body_part": "HEAD", "findings": "Normal."}


@calls("POST /api/report-templates")
async def _new_template(world: Consortium, caller: Caller | None) -> Call:
    return "/api/report-templates", {"json": TEMPLATE | {"name": f"Matrix {next(SERIAL)}"}}


@calls("PUT /api/report-templates/{id}")
async def _change_template(world: Consortium, caller: Caller | None) -> Call:
    return f"/api/report-templates/{world.template_id}", {"json": TEMPLATE}


@calls("DELETE /api/report-templates/{id}")
async def _delete_template(world: Consortium, caller: Caller | None) -> Call:
    template_id = await world.service.database.write(
        report_store.save_template,
        TEMPLATE | {"name": f"Matrix {next(SERIAL)}"},
        None,
        to_iso(utc_now()),
    )
    return f"/api/report-templates/{template_id}", {}


@calls("POST /api/signing/identities/pkcs12")
async def _import_key(world: Consortium, caller: Caller | None) -> Call:
    """The caller's right password with a file that is no PKCS#12: 400 once rights passed."""
    junk = base64.b64encode(b"not a pkcs12 file").decode()
    return "/api/signing/identities/pkcs12", {
        "json": {"pkcs12": junk, "pkcs12_password": "", "password": PASSWORD}
    }


@calls("POST /api/certificates/{serial}/revoke")
async def _revoke(world: Consortium, caller: Caller | None) -> Call:
    """The certificate of a specialist of the regional centre."""
    path = f"/api/certificates/{world.centre_signer_serial}/revoke"
    return path, {"json": {"reason": "key compromise"}}


# ---- the matrix -----------------------------------------------------------------------------


def write_routes(app: Any) -> set[str]:
    """``METHOD /path`` of every write route the app serves."""
    return {
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method in WRITE_METHODS and route.resource is not None
    }


def test_the_roles_are_the_products_roles():
    """A new role must join the matrix (and its table) before it ships."""
    assert set(ROLES) == set(user_store.ROLES)


async def test_the_table_covers_exactly_the_write_routes(consortium):
    """Every write route has a rule and a way to call it; no rule names a route that is gone."""
    assert set(SPEC) == write_routes(consortium.app)
    assert set(REQUESTS) == set(SPEC)


def test_a_new_write_route_without_a_rule_fails_the_coverage_check(tmp_path):
    """What the test above catches: a write route added with a declaration but no table line."""

    @allow("admin", "manager")
    async def purge(request):
        raise AssertionError("never called")

    app = create_app(Settings(data_dir=tmp_path))
    app.router.add_post("/api/everything/purge", purge)
    assert write_routes(app) - set(SPEC) == {"POST /api/everything/purge"}


def _callers(world: Consortium) -> list[Caller | None]:
    """No session first, then the clinic's, the county hospital's and the centre's staff."""
    return [None, *(world.caller(role, place) for place in PLACES for role in ROLES)]


def _agrees(expected: str, status: int) -> bool:
    if expected == "allowed":
        return status not in (401, 403, 404) and status < 500
    return status == int(expected)


async def _audit_records(world: Consortium) -> list[dict[str, Any]]:
    return await world.service.database.read(lambda db: list(audit_rows(db)))


def _action(world: Consortium, route: str) -> str:
    """The audit action the route's handler records (every write route records one)."""
    method, path = route.split(" ", 1)
    [handler] = [
        r.handler
        for r in world.app.router.routes()
        if r.method == method and r.resource is not None and r.resource.canonical == path
    ]
    declaration = audit_declaration(handler)
    assert isinstance(declaration, tuple), f"{route} records no audit action"
    return declaration[0]


@pytest.mark.parametrize("route", list(SPEC))
async def test_a_write_route_admits_exactly_whom_the_table_says(consortium, route):
    """Each caller's answer is the table's (a wrong one is listed with the body that came back),
    and every refusal is in the audit trail as denied, with who tried."""
    method = route.split(" ", 1)[0]
    wrong = []
    refused: list[int | None] = []
    before = max((r["id"] for r in await _audit_records(consortium)), default=0)
    for caller in _callers(consortium):
        path, kwargs = await REQUESTS[route](consortium, caller)
        headers = (caller.headers if caller else {}) | kwargs.pop("headers", {})
        response = await consortium.client.request(method, path, headers=headers, **kwargs)
        body = await response.text()
        expected = SPEC[route].expected(caller)
        who = f"{caller.role}@{caller.place}" if caller else "no session"
        if not _agrees(expected, response.status):
            wrong.append(f"{who}: expected {expected}, got {response.status} {body[:160]}")
        elif response.status in (401, 403, 404) and path.startswith("/fhir/"):
            assert response.content_type == "application/fhir+json", (who, body)
            assert (await response.json())["issue"][0]["diagnostics"], (who, body)
            refused.append(caller.user_id if caller else None)
        elif response.status in (401, 403, 404):
            assert response.content_type == "application/json", (who, body)
            assert (await response.json())["detail"], (who, body)
            refused.append(caller.user_id if caller else None)
    assert wrong == []
    action = _action(consortium, route)
    denied = [
        r["user_id"]
        for r in await _audit_records(consortium)
        if r["id"] > before and r["action"] == action and r["outcome"] == "denied"
    ]
    assert sorted(denied, key=str) == sorted(refused, key=str)


# ---- certificate revocation, beyond the matrix ---------------------------------------------


async def _revoked_at(world: Consortium, serial: str) -> str | None:
    signer = await world.service.database.read(identity_store.signer_of, serial)
    rows = await world.service.database.read(identity_store.identities_of, signer["user_id"])
    return next(r["revoked_at"] for r in rows if r["serial"] == serial)


async def test_the_centres_manager_may_not_revoke_another_facilitys_signer(consortium):
    """403 with the reason; the certificate stays valid; the refusal is in the audit trail."""
    serial = consortium.county_signer_serial
    manager = consortium.caller("manager", CENTRE)
    response = await consortium.client.post(
        f"/api/certificates/{serial}/revoke",
        headers=manager.headers,
        json={"reason": "key compromise"},
    )
    assert response.status == 403
    body = await response.json()
    assert body["error"] == "not_your_signer" and "administrator" in body["detail"]
    assert await _revoked_at(consortium, serial) is None
    records = await consortium.service.database.read(lambda db: list(audit_rows(db)))
    denied = [r for r in records if r["action"] == "signing.revoke" and r["resource_id"] == serial]
    assert denied and denied[-1]["outcome"] == "denied"
    assert denied[-1]["user_id"] == manager.user_id


async def test_a_county_manager_may_not_revoke_even_its_own_signer(consortium):
    """Only the regional centre's managers revoke (their own centre's signers)."""
    serial = consortium.county_signer_serial
    response = await consortium.client.post(
        f"/api/certificates/{serial}/revoke",
        headers=consortium.caller("manager", OTHER).headers,
        json={"reason": "left the hospital"},
    )
    assert response.status == 403
    assert await _revoked_at(consortium, serial) is None


async def test_an_administrator_revokes_any_signers_certificate(consortium):
    """Even a county hospital's signer, and the date is recorded."""
    serial = consortium.county_signer_serial
    response = await consortium.client.post(
        f"/api/certificates/{serial}/revoke",
        headers=consortium.caller("admin", OWN).headers,
        json={"reason": "left the hospital"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["revoked_at"]
    assert await _revoked_at(consortium, serial) is not None


# ---- report templates, beyond the matrix -----------------------------------------------------


@pytest.mark.parametrize(("place", "editor"), [(OWN, False), (OTHER, False), (CENTRE, True)])
async def test_every_manager_reads_templates_but_only_the_centres_edits_them(
    consortium, place, editor
):
    """The report editor lists templates for any reader; the Templates page and its link in the
    navigation are the regional centre's (a clinic's manager would only meet 403s there)."""
    headers = consortium.caller("manager", place).headers
    listed = await consortium.client.get("/api/report-templates", headers=headers)
    assert listed.status == 200
    assert any(t["id"] == consortium.template_id for t in (await listed.json())["items"])
    page = await consortium.client.get("/report-templates", headers=headers)
    assert page.status == (200 if editor else 403)
    account = await consortium.client.get("/account", headers=headers)
    assert ('href="/report-templates"' in await account.text()) is editor


# ---- directing readers, beyond the matrix ----------------------------------------------------


async def test_a_clinics_manager_directs_only_its_own_readers(consortium):
    """The centre's reader holds the clinic's consultation: the clinic's manager can neither take
    it back nor hand it on, nor hand work to the centre's readers, and is offered only its own
    readers; the centre's manager hands it to the clinic's reader, whose claim the clinic's
    manager may then release."""
    client, cid = consortium.client, consortium.held_id
    own_boss = consortium.caller("manager", OWN).headers
    own_reader = consortium.caller("specialist", OWN).user_id
    centre_reader = consortium.caller("specialist", CENTRE).user_id
    url = f"/api/consultations/{cid}"

    released = await client.post(f"{url}/release", headers=own_boss)
    assert released.status == 403 and (await released.json())["error"] == "not_holder"
    for target in (own_reader, centre_reader):
        handed = await client.post(f"{url}/reassign", headers=own_boss, json={"user_id": target})
        assert handed.status == 403 and (await handed.json())["error"] == "not_your_reader"
    offered = await (await client.get(f"{url}/assignees", headers=own_boss)).json()
    assert [a["id"] for a in offered["items"]] == [own_reader]

    centre_boss = consortium.caller("manager", CENTRE).headers
    handed = await client.post(f"{url}/reassign", headers=centre_boss, json={"user_id": own_reader})
    assert handed.status == 200 and (await handed.json())["claimed_by_id"] == own_reader
    released = await client.post(f"{url}/release", headers=own_boss)
    assert released.status == 200 and (await released.json())["claimed_by_id"] is None


async def test_only_the_signing_facilitys_readers_correct_a_report(consortium):
    """The clinic's reader may not supersede the centre's signed report (403 with the reason)."""
    response = await consortium.client.post(
        f"/api/consultations/{consortium.signed_id}/report/correction",
        headers=consortium.caller("specialist", OWN).headers,
    )
    assert response.status == 403
    assert (await response.json())["error"] == "not_signers_facility"
