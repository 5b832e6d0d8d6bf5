"""The consortium record, queried with care (issue 21 item 4).

Who may open a person's record: a doctor (clinician, requesting physician, specialist) whose
facility has a consultation for that person under any of their linked local identities — a
*care relationship*. The regional centre's specialists read every facility's consultations
(service/auth/access.py), so any consultation of the person gives them one. Radiographers,
managers and administrators read no record (managers read its access log).

What shows at once is what the caller's facility already sees (its own consultations; all of
them for the centre's readers); the studies, reports and identities of other facilities show
only after the caller states a reason (category + text), which covers that identity for that
session (or API token) for :data:`REASON_MINUTES`. Every open, query, print, reason and report
download is audited by the web layer with the identities this module names; national
identifiers leave here masked only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from ..auth.access import REGIONAL
from ..auth.sessions import CurrentUser
from ..clock import from_iso, to_iso
from ..identity_numbers import mask
from ..storage import patient_record as store
from ..storage import patients as patient_store
from ..storage.database import RecordNotFound
from ..storage.scope import EVERYTHING, NO_ACCESS, Scope

DOCTORS = ("clinician", "requester", "specialist")
"""The roles that read a patient's record (a care relationship still required)."""
LOG_READERS = ("manager",)
"""The roles that read and export a patient's access log."""
REASON_MINUTES = 30
REASON_CATEGORIES = ("treatment", "referral", "emergency", "comparison", "other")
"""Why a doctor looks beyond their facility: treating the patient now, a referral received,
an emergency, comparing with a prior exam, or another reason (the text says which)."""


class RecordRefused(Exception):
    """The caller may not do this with the record: ``status`` 403 (no right or no care
    relationship) or 400 (a reason is missing or unusable), ``code`` for the answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Subject:
    """The identity asked for and every identity linked to it (itself first)."""

    identity: dict[str, Any]
    identities: list[dict[str, Any]]

    def pairs(self) -> list[tuple[int, str]]:
        return [(i["facility_id"], i["patient_id"]) for i in self.identities]

    def audit_detail(self) -> dict[str, Any]:
        """What every audit entry of the record carries: each linked (facility, Patient ID),
        so the entry shows in each identity's access log, and the Patient IDs for the trail's
        patient index."""
        return {
            "identities": [{"facility_id": f, "patient_id": p} for f, p in self.pairs()],
            "patients": sorted({p for _, p in self.pairs()}),
        }


@dataclass(frozen=True)
class PatientRecord:
    subject: Subject
    complete: bool
    """True when everything shows (a reason in force, or nothing lies beyond the caller's
    facility); False when only the caller's facility's part shows."""
    consultations: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    hidden_consultations: int
    hidden_facilities: int
    reason: dict[str, Any] | None = None
    shown_ids: list[int] = field(default_factory=list)


def subject(db: sqlite_utils.Database, identity_id: int) -> Subject:
    """The identity and its linked identities (RecordNotFound when there is no such identity)."""
    me = store.identity_by_id(db, identity_id)
    linked = patient_store.linked_identities(db, me["facility_id"], me["patient_id"])
    return Subject(me, linked or [me])


def care_scope(user: CurrentUser) -> Scope:
    """The consultations through which the caller has a care relationship, and which they see
    at once: their facility's; every facility's for the regional centre's specialists."""
    if user.role not in DOCTORS:
        return NO_ACCESS
    if user.role == "specialist" and user.facility_kind == REGIONAL:
        return EVERYTHING
    return Scope(facility_ids=(user.facility_id,))


def check_care(db: sqlite_utils.Database, who: Subject, user: CurrentUser) -> Scope:
    """The caller's care scope, or RecordRefused (403) without a care relationship."""
    if user.role not in DOCTORS:
        raise RecordRefused(403, "not_a_doctor", "only doctors read a patient's record")
    scope = care_scope(user)
    me = who.identity
    if not store.has_consultation_in(db, me["facility_id"], me["patient_id"], scope):
        raise RecordRefused(
            403,
            "no_care_relationship",
            "your facility has no consultation for this patient",
        )
    return scope


def reason_in_force(
    db: sqlite_utils.Database, who: Subject, user: CurrentUser, now: datetime
) -> dict[str, Any] | None:
    """The caller's reason for this identity in force now (this session or token), or None."""
    return store.reason_in_force(
        db, who.identity["id"], user.id, _session(user), user.api_token_id, to_iso(now)
    )


def _session(user: CurrentUser) -> int | None:
    return None if user.api_token_id is not None else user.session_id


def open_record(
    db: sqlite_utils.Database,
    who: Subject,
    user: CurrentUser,
    now: datetime,
    beyond: bool = False,
) -> PatientRecord:
    """The record as the caller may see it now. ``beyond`` asks for everything: RecordRefused
    (400 ``reason_required``) unless a reason is in force."""
    scope = check_care(db, who, user)
    reason = reason_in_force(db, who, user, now)
    if beyond and reason is None:
        raise RecordRefused(400, "reason_required", "state a reason to see other facilities'")
    me = who.identity
    rows = store.record_consultations(db, me["facility_id"], me["patient_id"], scope)
    complete = reason is not None or all(r["in_scope"] for r in rows)
    shown = rows if complete else [r for r in rows if r["in_scope"]]
    visible = _visible_identities(who, scope, complete)
    hidden_facilities = {r["facility_id"] for r in rows} - {r["facility_id"] for r in shown}
    identifiers = patient_store.identifiers_of(db, [i["id"] for i in visible])
    return PatientRecord(
        subject=who,
        complete=complete,
        consultations=shown,
        identities=[_with_identifiers(i, identifiers) for i in visible],
        hidden_consultations=len(rows) - len(shown),
        hidden_facilities=len(hidden_facilities),
        reason=reason,
        shown_ids=[r["consultation_id"] for r in shown],
    )


def _visible_identities(who: Subject, scope: Scope, complete: bool) -> list[dict[str, Any]]:
    if complete or scope.facility_ids is None:
        return who.identities
    return [i for i in who.identities if i["facility_id"] in scope.facility_ids]


def _with_identifiers(identity: dict[str, Any], identifiers: list[dict]) -> dict[str, Any]:
    """The identity with its national identifiers, masked (never the full number here)."""
    own = [
        {"system": x["system"], "value": mask(x["value"]), "disputed": bool(x["disputed"])}
        for x in identifiers
        if x["identity_id"] == identity["id"]
    ]
    keep = ("id", "facility_id", "facility_name", "patient_id", "name", "birth_date", "sex")
    return {k: identity[k] for k in keep} | {"identifiers": own}


def state_reason(
    db: sqlite_utils.Database,
    who: Subject,
    user: CurrentUser,
    category: str,
    text: str,
    now: datetime,
) -> dict[str, Any]:
    """Keep the caller's reason to see the whole record; it covers this identity for this
    session for :data:`REASON_MINUTES`. Call in a write transaction."""
    check_care(db, who, user)
    text = " ".join(text.split())
    if category not in REASON_CATEGORIES:
        raise RecordRefused(400, "reason_category", "choose why you look")
    if not text:
        raise RecordRefused(400, "reason_required", "say why you look, in a few words")
    expires = now + timedelta(minutes=REASON_MINUTES)
    reason = {
        "user_id": user.id,
        "session_id": _session(user),
        "api_token_id": user.api_token_id,
        "identity_id": who.identity["id"],
        "category": category,
        "text": text,
        "stated_at": to_iso(now),
        "expires_at": to_iso(expires),
    }
    reason_id = store.add_reason(db, reason)
    return {"id": reason_id, "category": category, "text": text, "expires_at": reason["expires_at"]}


def report_pdf(
    db: sqlite_utils.Database, who: Subject, user: CurrentUser, consultation_id: int, now: datetime
) -> tuple[int, bytes]:
    """A signed report's PDF from the record: a consultation the caller sees at once, or any
    of the person's while a reason is in force (RecordNotFound otherwise)."""
    record = open_record(db, who, user, now)
    if consultation_id not in record.shown_ids:
        raise RecordNotFound(f"consultation {consultation_id} in this record")
    me = who.identity
    return store.signed_pdf(db, me["facility_id"], me["patient_id"], consultation_id)


def check_log_reader(who: Subject, user: CurrentUser) -> None:
    """The regional centre's managers read every patient's access log; a county or township
    manager only their facility's patients' (one linked identity there)."""
    if user.role not in LOG_READERS:
        raise RecordRefused(403, "not_a_manager", "only managers read a patient's access log")
    if user.facility_kind == REGIONAL:
        return
    if not any(i["facility_id"] == user.facility_id for i in who.identities):
        raise RecordRefused(403, "not_your_patient", "this patient is not your facility's")


def access_log(db: sqlite_utils.Database, who: Subject, user: CurrentUser) -> list[dict[str, Any]]:
    """Who looked at the record, when (UTC and in the manager's facility zone), what they did
    and why, newest first."""
    check_log_reader(who, user)
    rows = store.access_log(db, who.pairs())
    return [_log_entry(row, user.facility_timezone) for row in rows]


def _log_entry(row: dict[str, Any], zone: str) -> dict[str, Any]:
    detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    reason = detail.get("reason") or {}
    return {
        "at": row["at"],
        "at_local": local_time(row["at"], zone),
        "timezone": zone,
        "user": row["display_name"] or row["username"],
        "username": row["username"],
        "role": row["role"],
        "facility": row["facility_name"],
        "action": row["action"],
        "outcome": row["outcome"],
        "reason_category": reason.get("category", ""),
        "reason": reason.get("text", ""),
        "client_ip": row["client_ip"],
    }


def local_time(iso: str, zone: str) -> str:
    """A stored UTC time in ``zone`` ("2026-03-01 16:30"); the zone is labelled by the caller."""
    try:
        return from_iso(iso).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    except (ValueError, ZoneInfoNotFoundError):
        return iso
