"""Turning arrivals into consultations: stable studies from ingest and requests from users.

Both halves of a consultation (the images and the clinical request) may come in either order;
each function here runs inside one write transaction (``Database.write``) and is idempotent where
replays can happen (the change feed, a study received twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import sqlite_utils

from worklists.priorities import Priority
from worklists.routing import RoutingPolicy, age_in_years
from worklists.rules import WorklistRules
from worklists.sla import DEFAULT_RULE, SlaPolicy
from worklists.status import FINISHED_STATUSES, intake_status

from ..clock import from_iso, to_iso
from ..identity_numbers import Identifier
from ..patients.identify import identify
from ..storage import Conflict
from ..storage import consultations as store
from ..storage import facilities as facility_store
from ..storage import ingest as ingest_store

NON_IMAGE_MODALITIES = {"SR", "DOC", "PR", "KO", "OT", "REG", "SEG"}


@dataclass(frozen=True)
class InstanceOrigin:
    """Where instances of a study came from, as Orthanc recorded it."""

    origin: str  # DicomProtocol | RestApi | Plugins | Lua | ...
    remote_aet: str = ""
    remote_ip: str = ""
    http_username: str = ""
    instances: int = 1
    # Stored by the service itself (REST with its own Orthanc user): uploads, which attributions
    # credit, and the service's own objects (reports), which are never evidence of a sender.
    own: bool = False
    # Orthanc's ids of these instances (what is moved out when they are quarantined) and the
    # earliest of their ``ReceptionDate`` (Orthanc's metadata): who sent first owns the study.
    instance_ids: tuple[str, ...] = ()
    first_received: str = ""


@dataclass(frozen=True)
class ReceivedStudy:
    """A stable study's main tags, decoded to text."""

    orthanc_id: str
    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    modalities: tuple[str, ...] = ()
    body_part: str = ""
    series_count: int = 0
    instances_count: int = 0
    origins: tuple[InstanceOrigin, ...] = field(default_factory=tuple)
    # Instances that arrived by C-STORE and failed the file check uploads pass (Orthanc id,
    # reason), and the checks done for this processing, to remember: (id, reception, reason).
    malformed: tuple[tuple[str, str], ...] = ()
    checks: tuple[tuple[str, str, str], ...] = ()
    # The patient's checked national identifiers (service/patients/dicom_identifiers.py).
    identifiers: tuple[Identifier, ...] = ()

    @property
    def primary_modality(self) -> str:
        images = [m for m in self.modalities if m not in NON_IMAGE_MODALITIES]
        return (images or list(self.modalities) or [""])[0]


@dataclass(frozen=True)
class IngestOutcome:
    consultation_ids: list[int]
    created: list[int]
    quarantined: list[str]
    moved_out: int = 0
    """Instances marked to be moved out of Orthanc into the quarantine."""
    study_instance_uid: str = ""
    orthanc_id: str = ""
    """The study processed (listeners build its viewer layout, service/app.py)."""


OWNED_ELSEWHERE = "the study belongs to another facility"
SECOND_PATIENT_ID = "the Study UID is already held under another Patient ID"


@dataclass
class _Credit:
    """Who a study's instances are credited to, and what is kept out of it."""

    senders: dict[int, str] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    held: dict[tuple[str, str], str] = field(default_factory=dict)  # (origin, AE) -> reason
    excluded: int = 0  # instances that are not the senders' images (own objects, quarantined)
    moved_out: int = 0


def receive_study(
    db: sqlite_utils.Database,
    study: ReceivedStudy,
    *,
    now: datetime,
    sla: SlaPolicy,
    seq: int | None = None,
) -> IngestOutcome:
    """Record a stable study and create or complete the consultation of the facility it belongs
    to; instances another facility sent into it, or a second Orthanc study of the same Study UID
    (another Patient ID), and instances whose file failed the check uploads pass, are
    quarantined and marked to be moved out of Orthanc; the checks done are remembered."""
    stamp = to_iso(now)
    if study.checks:
        ingest_store.record_checks(db, list(study.checks), stamp)
    credit = _credit(db, study, stamp)
    if credit.moved_out < study.instances_count:  # what stays in Orthanc (own objects too)
        kept = study.instances_count - credit.moved_out
        _record_study(db, replace(study, instances_count=kept), stamp)
    if credit.excluded:  # the senders' images only
        study = replace(study, instances_count=study.instances_count - credit.excluded)
    outcome = IngestOutcome(
        [], [], credit.quarantined, credit.moved_out, study.study_instance_uid, study.orthanc_id
    )
    for facility_id, via in credit.senders.items():
        consultation_id, created = _attach_images(db, facility_id, via, study, now, sla)
        identify(db, consultation_id, study.identifiers, "dicom")
        outcome.consultation_ids.append(consultation_id)
        if created:
            outcome.created.append(consultation_id)
    if seq is not None:
        ingest_store.set_cursor(db, seq)
    return outcome


def _record_study(db: sqlite_utils.Database, study: ReceivedStudy, stamp: str) -> None:
    ingest_store.upsert_study(
        db,
        {
            "orthanc_id": study.orthanc_id,
            "study_instance_uid": study.study_instance_uid,
            "patient_id": study.patient_id,
            "patient_name": study.patient_name,
            "patient_birth_date": study.patient_birth_date,
            "patient_sex": study.patient_sex,
            "accession_number": study.accession_number,
            "study_date": study.study_date,
            "study_description": study.study_description,
            "modalities": "\\".join(study.modalities),
            "body_part": study.body_part,
            "series_count": study.series_count,
            "instances_count": study.instances_count,
            "stable_at": stamp,
            "updated_at": stamp,
        },
    )


def _credit(db: sqlite_utils.Database, study: ReceivedStudy, stamp: str) -> _Credit:
    """Credit the study to the facility it belongs to (the first one credited with its Study
    UID, else its earliest sender), and quarantine every other origin.

    Instances are moved out of Orthanc whenever the study (or its UID) already has an owner, so
    the owner's study stays as the owner sent it and an intruder gets nothing of it; a study no
    facility can be credited with (unknown AE title) stays in Orthanc for the administrator.
    Malformed files (``study.malformed``) are quarantined and moved out in any case, and credit
    nobody: a study that is all malformed files gives no consultation.
    """
    credit = _Credit()
    sound, malformed = _split_malformed(study)
    _credit_sound(db, replace(study, origins=sound), stamp, credit)
    for origin, bad in malformed:
        _hold_malformed(db, study, origin, bad, stamp, credit)
    return credit


def _split_malformed(
    study: ReceivedStudy,
) -> tuple[tuple[InstanceOrigin, ...], list[tuple[InstanceOrigin, dict[str, str]]]]:
    """Each origin without its malformed instances (an origin left empty is dropped), and the
    malformed instances of each origin (id -> reason)."""
    reasons = dict(study.malformed)
    if not reasons:
        return study.origins, []
    sound: list[InstanceOrigin] = []
    malformed: list[tuple[InstanceOrigin, dict[str, str]]] = []
    for origin in study.origins:
        bad = {i: reasons[i] for i in origin.instance_ids if i in reasons}
        if not bad:
            sound.append(origin)
            continue
        malformed.append((origin, bad))
        kept = tuple(i for i in origin.instance_ids if i not in bad)
        if kept:
            sound.append(replace(origin, instances=len(kept), instance_ids=kept))
    return tuple(sound), malformed


def _hold_malformed(
    db: sqlite_utils.Database,
    study: ReceivedStudy,
    origin: InstanceOrigin,
    bad: dict[str, str],
    stamp: str,
    credit: _Credit,
) -> None:
    """Quarantine an origin's malformed instances, each with the reason an upload of the file
    would have been refused for, and mark them to be moved out of Orthanc (whoever owns the
    study: nobody should open a file the service would not have stored). The origin's entry
    also names the reason its other instances were held for, if they were."""
    distinct = list(dict.fromkeys(bad.values()))
    reason = f"malformed file ({len(bad)}): " + "; ".join(distinct)
    instances = len(bad)
    if (held := credit.held.get((origin.origin, origin.remote_aet))) is not None:
        reason = f"{held}; {reason}"
        instances = origin.instances
    quarantine_id = ingest_store.quarantine_study(
        db,
        {
            "orthanc_study_id": study.orthanc_id,
            "study_instance_uid": study.study_instance_uid,
            "patient_id": study.patient_id,
            "patient_name": study.patient_name,
            "origin": origin.origin,
            "remote_aet": origin.remote_aet,
            "remote_ip": origin.remote_ip,
            "instances": instances,
            "reason": reason,
            "seen_at": stamp,
        },
    )
    if held is None:
        credit.quarantined.append(origin.remote_aet or origin.origin)
    ingest_store.hold_instances(db, quarantine_id, list(bad), bad)
    credit.excluded += len(bad)
    credit.moved_out += len(bad)


def _credit_sound(
    db: sqlite_utils.Database, study: ReceivedStudy, stamp: str, credit: _Credit
) -> None:
    """Credit the study's sound instances (see ``_credit``)."""
    uid = study.study_instance_uid
    if ingest_store.credited_orthanc_study(db, uid, study.orthanc_id) is not None:
        for origin in study.origins:
            _hold(db, study, origin, SECOND_PATIENT_ID, stamp, credit, move=True)
        return
    owner = ingest_store.study_owner(db, uid)
    attributions = ingest_store.attributions_for(db, uid)
    refused: list[tuple[InstanceOrigin, str]] = []
    for origin in sorted(study.origins, key=lambda o: (o.own, o.first_received)):
        if origin.origin == "DicomProtocol":
            facility = facility_store.facility_by_aet(db, origin.remote_aet)
            if facility is None:
                refused.append((origin, "unknown AE title"))
            elif owner is None or facility["id"] == owner:
                owner = facility["id"]
                credit.senders.setdefault(owner, "dicom")
            else:
                refused.append((origin, OWNED_ELSEWHERE))
        elif credited := [a for a in attributions if owner in (None, a["facility_id"])]:
            owner = credited[0]["facility_id"]
            credit.senders.setdefault(owner, credited[0]["via"])
        elif origin.own and credit.senders:
            credit.excluded += origin.instances  # the service's own objects are nobody's images
        elif origin.own:
            refused.append((origin, "stored by teleread into a study no facility sent"))
        elif attributions:
            refused.append((origin, OWNED_ELSEWHERE))
        else:
            refused.append((origin, "stored in Orthanc without going through teleread"))
    move = owner is not None
    for origin, reason in refused:
        _hold(db, study, origin, reason, stamp, credit, move=move)


def _hold(
    db: sqlite_utils.Database,
    study: ReceivedStudy,
    origin: InstanceOrigin,
    reason: str,
    stamp: str,
    credit: _Credit,
    *,
    move: bool,
) -> None:
    """Quarantine one origin's instances (and mark them to be moved out of Orthanc)."""
    quarantine_id = ingest_store.quarantine_study(
        db,
        {
            "orthanc_study_id": study.orthanc_id,
            "study_instance_uid": study.study_instance_uid,
            "patient_id": study.patient_id,
            "patient_name": study.patient_name,
            "origin": origin.origin,
            "remote_aet": origin.remote_aet,
            "remote_ip": origin.remote_ip,
            "instances": origin.instances,
            "reason": reason,
            "seen_at": stamp,
        },
    )
    credit.quarantined.append(origin.remote_aet or origin.origin)
    credit.held[(origin.origin, origin.remote_aet)] = reason
    if move:
        ingest_store.hold_instances(db, quarantine_id, list(origin.instance_ids))
        credit.excluded += origin.instances
        credit.moved_out += origin.instances


def _attach_images(
    db: sqlite_utils.Database,
    facility_id: int,
    via: str,
    study: ReceivedStudy,
    now: datetime,
    sla: SlaPolicy,
) -> tuple[int, bool]:
    stamp = to_iso(now)
    existing = store.find_for_study(
        db, facility_id, study.study_instance_uid, study.accession_number
    )
    image_fields = {
        "study_instance_uid": study.study_instance_uid,
        "orthanc_study_id": study.orthanc_id,
        "instances": study.instances_count,
        "updated_at": stamp,
    }
    described = {
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "accession_number": study.accession_number,
        "modality": study.primary_modality,
        "body_part": study.body_part,
    }
    kind = _facility_kind(db, facility_id)
    age = age_in_years(study.patient_birth_date, _study_day(study, now))
    if existing is None:
        priority = Priority.ROUTINE
        due_at, rule = _deadline(sla, priority, now, None, kind, described)
        values = (
            image_fields
            | described
            | {
                "facility_id": facility_id,
                "priority": priority.value,
                "priority_rank": priority.rank,
                "received_at": stamp,
                "received_via": via,
                "status": intake_status(has_images=True, has_request=False).value,
                "due_at": due_at,
                "queue": _queue(sla, described, age),
                "created_at": stamp,
            }
        )
        consultation_id = store.insert_consultation(db, values)
        _images_received(db, consultation_id, stamp, study.instances_count, via, rule)
        return consultation_id, True
    consultation_id = existing["id"]
    if existing["received_at"] is not None:
        store.update_consultation(db, consultation_id, image_fields)
        return consultation_id, False
    priority = Priority(existing["priority"])
    requested_at = from_iso(existing["requested_at"]) if existing["requested_at"] else None
    filled = {k: v for k, v in described.items() if not existing.get(k)}
    merged = {k: existing.get(k) or v for k, v in described.items()}
    due_at, rule = _deadline(sla, priority, now, requested_at, kind, merged)
    store.update_consultation(
        db,
        consultation_id,
        image_fields
        | filled
        | {
            "received_at": stamp,
            "received_via": via,
            "status": intake_status(True, existing["requested_at"] is not None).value,
            "due_at": due_at,
            "queue": _queue(sla, merged, age),
        },
    )
    _images_received(db, consultation_id, stamp, study.instances_count, via, rule)
    return consultation_id, False


def _images_received(
    db: sqlite_utils.Database,
    consultation_id: int,
    stamp: str,
    instances: int,
    via: str,
    sla_rule: str,
) -> None:
    detail = _with_rule({"instances": instances, "via": via}, sla_rule)
    store.append_event(db, consultation_id, "images_received", stamp, detail=detail)


def _with_rule(detail: dict[str, Any], sla_rule: str) -> dict[str, Any]:
    """Name the SLA rule in the event when one applied (absent: the priority's default target)."""
    return detail if sla_rule == DEFAULT_RULE else detail | {"sla_rule": sla_rule}


def _facility_kind(db: sqlite_utils.Database, facility_id: int) -> str:
    return str(facility_store.get_facility(db, facility_id)["kind"])


def _study_day(study: ReceivedStudy, now: datetime) -> date:
    """The day the study was taken (for the patient's age), else today."""
    try:
        return datetime.strptime(study.study_date.strip(), "%Y%m%d").date()
    except ValueError:
        return now.date()


def _deadline(
    sla: SlaPolicy,
    priority: Priority,
    received_at: datetime | None,
    requested_at: datetime | None,
    facility_kind: str,
    described: dict[str, Any],
) -> tuple[str, str]:
    """The due time (ISO) and the name of the SLA rule that set it."""
    target, rule = sla.target(
        priority,
        facility_kind=facility_kind,
        modality=described.get("modality") or "",
        body_part=described.get("body_part") or "",
    )
    return to_iso(sla.clock_start(received_at, requested_at) + target), rule


def _queue(sla: SlaPolicy, described: dict[str, Any], age: int | None) -> str:
    """The subspecialty queue, by the rules loaded with the SLA policy (``general`` without)."""
    routing = sla.routing if isinstance(sla, WorklistRules) else RoutingPolicy()
    return routing.queue_for(described.get("modality"), described.get("body_part"), age)


@dataclass(frozen=True)
class ConsultationRequest:
    """What a clinic asks: validated at the HTTP edge, plain values here."""

    priority: Priority
    study_instance_uid: str | None = None
    accession_number: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    modality: str | None = None
    body_part: str | None = None
    clinical_history: str | None = None
    clinical_question: str | None = None
    callback_phone: str | None = None
    # What an order from a hospital system (HL7 v2, FHIR) carries beyond a clinic's form: the
    # worklist items sent to modalities need them before any image exists.
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    requested_procedure: str | None = None
    requested_procedure_code: str | None = None
    placer_order_number: str | None = None
    via: str = "web"  # web | api | hl7 | fhir
    identifiers: tuple[Identifier, ...] = ()
    """The patient's checked national identifiers (the form's, PID-3's, Patient.identifier's)."""


def file_request(
    db: sqlite_utils.Database,
    request: ConsultationRequest,
    *,
    facility_id: int,
    user_id: int | None,
    now: datetime,
    sla: SlaPolicy,
) -> tuple[int, bool]:
    """File a consultation request; completes the consultation when its images are already here.

    Returns the consultation id and whether a new consultation was created. ``user_id`` is None
    for an order a hospital system sent (``request.via`` names which).
    """
    stamp = to_iso(now)
    _refuse_foreign_study(db, facility_id, request.study_instance_uid)
    existing = find_request_target(db, facility_id, request)
    request_fields: dict[str, Any] = {
        "priority": request.priority.value,
        "priority_rank": request.priority.rank,
        "clinical_history": request.clinical_history,
        "clinical_question": request.clinical_question,
        "callback_phone": request.callback_phone,
        "requested_by": user_id,
        "requested_at": stamp,
        "requested_via": request.via,
        "updated_at": stamp,
        "requested_procedure": request.requested_procedure or "",
        "requested_procedure_code": request.requested_procedure_code or "",
        "placer_order_number": request.placer_order_number or "",
    }
    described = {
        "study_instance_uid": request.study_instance_uid,
        "accession_number": request.accession_number,
        "patient_id": request.patient_id,
        "patient_name": request.patient_name,
        "modality": request.modality,
        "body_part": request.body_part,
        "patient_birth_date": request.patient_birth_date,
        "patient_sex": request.patient_sex,
    }
    kind = _facility_kind(db, facility_id)
    if existing is None:
        due_at, rule = _deadline(sla, request.priority, None, now, kind, described)
        values = (
            request_fields
            | {k: v or "" for k, v in described.items()}
            | {
                "study_instance_uid": request.study_instance_uid,
                "facility_id": facility_id,
                "status": intake_status(has_images=False, has_request=True).value,
                "due_at": due_at,
                "queue": _queue(
                    sla, described, age_in_years(request.patient_birth_date or "", now.date())
                ),
                "created_at": stamp,
            }
        )
        consultation_id = store.insert_consultation(db, values)
        identify(db, consultation_id, request.identifiers, request.via)
        detail = _with_rule(_request_detail(request), rule)
        store.append_event(db, consultation_id, "requested", stamp, user_id, detail)
        return consultation_id, True
    if existing["status"] in FINISHED_STATUSES:
        raise Conflict("finished", f"consultation {existing['id']} is already {existing['status']}")
    if existing["requested_at"] is not None:
        raise Conflict(
            "request_exists",
            f"consultation {existing['id']} already has a request for this study",
        )
    received_at = from_iso(existing["received_at"]) if existing["received_at"] else None
    filled = {k: v for k, v in described.items() if v and not existing.get(k)}
    merged = {k: existing.get(k) or v for k, v in described.items()}
    due_at, rule = _deadline(sla, request.priority, received_at, now, kind, merged)
    routed = {}  # the images routed it, with the patient's age; re-route only what they lacked
    if "modality" in filled or "body_part" in filled:
        routed = {"queue": _queue(sla, merged, None)}
    store.update_consultation(
        db,
        existing["id"],
        request_fields
        | filled
        | routed
        | {
            "status": intake_status(received_at is not None, True).value,
            "due_at": due_at,
        },
    )
    identify(db, existing["id"], request.identifiers, request.via)
    detail = _with_rule(_request_detail(request), rule)
    store.append_event(db, existing["id"], "requested", stamp, user_id, detail)
    return existing["id"], False


def _request_detail(request: ConsultationRequest) -> dict[str, Any]:
    """The ``requested`` event's detail: the priority, and the channel when not the web form."""
    detail: dict[str, Any] = {"priority": request.priority.value}
    if request.via != "web":
        detail["via"] = request.via
    if request.placer_order_number:
        detail["placer_order_number"] = request.placer_order_number
    return detail


def _refuse_foreign_study(
    db: sqlite_utils.Database, facility_id: int, study_instance_uid: str | None
) -> None:
    """A request may name only a study of the requester's own facility (or one nobody has sent
    or requested yet, which it then claims): naming another facility's Study UID would open
    that facility's images and patient to the requester."""
    if not study_instance_uid:
        return
    owner = ingest_store.study_owner(db, study_instance_uid)
    if owner is not None and owner != facility_id:
        raise Conflict(
            "study_of_another_facility",
            f"study {study_instance_uid} was sent or requested by another facility;"
            " a request may name only a study of your own facility",
        )


def find_request_target(
    db: sqlite_utils.Database, facility_id: int, request: ConsultationRequest
) -> dict[str, Any] | None:
    """The consultation a request completes (its study's, else its accession number's), if any."""
    if request.study_instance_uid:
        return store.find_for_study(
            db, facility_id, request.study_instance_uid, request.accession_number or ""
        )
    return store.find_by_accession(db, facility_id, request.accession_number or "")
