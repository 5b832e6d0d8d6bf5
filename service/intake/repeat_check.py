"""Filing a request, and receiving a study, with the repeat-exam check (service/patients/
repeats.py) in the same transaction.

A person on the request form can be asked before anything is filed: the request stops with a
pending alert unless it carries a reason to proceed. An order from a hospital system (HL7, FHIR)
and an arriving study cannot be asked first: they are filed, and the repeat recorded for the
centre to see and the sender to be told (ACK, OperationOutcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from worklists.repeat_exams import RepeatWindows
from worklists.rules import WorklistRules
from worklists.sla import SlaPolicy

from ..clock import to_iso
from ..patients import repeats
from ..storage import consultations as store
from ..storage import repeat_alerts as alert_store
from .intake import (
    ConsultationRequest,
    IngestOutcome,
    ReceivedStudy,
    file_request,
    find_request_target,
    receive_study,
)


@dataclass(frozen=True)
class RepeatAnswer:
    """How a repeat is handled: ``ask`` (a person filing: stop unless ``reason``) or not (an
    order from a system: file and record). ``alert_id`` is the alert the person was shown."""

    ask: bool
    reason: str = ""
    alert_id: int | None = None


RECORD = RepeatAnswer(ask=False)


@dataclass(frozen=True)
class Filing:
    """The consultation filed (None when the request stopped at a repeat alert), whether it is
    new, and the alert (None without a repeat): its id, decision, window and prior exams."""

    consultation_id: int | None
    created: bool
    alert: dict[str, Any] | None = None


def windows_of(sla: SlaPolicy) -> RepeatWindows:
    return sla.repeat_exams if isinstance(sla, WorklistRules) else RepeatWindows()


def file_checked_request(
    db: sqlite_utils.Database,
    request: ConsultationRequest,
    *,
    facility_id: int,
    user_id: int | None,
    now: datetime,
    sla: SlaPolicy,
    answer: RepeatAnswer = RECORD,
) -> Filing:
    """``file_request`` after the repeat check (see the module's docstring)."""
    target = find_request_target(db, facility_id, request)
    item = _item(facility_id, request, target)
    prior = repeats.PriorExams(0, [])
    if item is not None and not (target and target["received_at"]):  # images here: ingest's
        prior = repeats.prior_exams(
            db, windows_of(sla), item, now, target["id"] if target else None
        )
    reason = answer.reason.strip()
    if answer.alert_id is not None and reason:
        repeats.answerable(db, answer.alert_id, item)  # before anything is filed
    elif not prior.matches:
        return Filing(*_file(db, request, facility_id, user_id, now, sla))
    elif answer.ask and not reason:
        alert_id = repeats.record_alert(
            db, item, prior, source=request.via, decision="pending", now=now, user_id=user_id
        )
        return Filing(None, False, _alert(alert_id, "pending", prior))
    consultation_id, created = _file(db, request, facility_id, user_id, now, sla)
    decision = "proceeded" if answer.ask else "recorded"
    if answer.alert_id is not None and reason:
        alert_store.decide(
            db, answer.alert_id, decision, reason=reason, user_id=user_id, now=to_iso(now),
            consultation_id=consultation_id,
        )  # fmt: skip
        shown = alert_store.get_alert(db, answer.alert_id)
        prior = repeats.PriorExams(shown["window_days"], shown["matches"])
        return Filing(consultation_id, created, _alert(answer.alert_id, decision, prior))
    alert_id = repeats.record_alert(
        db, item, prior, source=request.via, decision=decision, now=now, user_id=user_id,
        reason=reason, consultation_id=consultation_id,
    )  # fmt: skip
    return Filing(consultation_id, created, _alert(alert_id, decision, prior))


def _file(
    db: sqlite_utils.Database,
    request: ConsultationRequest,
    facility_id: int,
    user_id: int | None,
    now: datetime,
    sla: SlaPolicy,
) -> tuple[int, bool]:
    return file_request(db, request, facility_id=facility_id, user_id=user_id, now=now, sla=sla)


def _alert(alert_id: int, decision: str, prior: repeats.PriorExams) -> dict[str, Any]:
    return {
        "id": alert_id,
        "decision": decision,
        "window_days": prior.days,
        "matches": prior.matches,
    }


def _item(
    facility_id: int, given: ConsultationRequest | None, known: dict[str, Any] | None
) -> repeats.ExamItem | None:
    """The exam item: what the request says, else what the consultation already has; None
    when the patient, the modality or the body part is unknown (nothing to compare)."""
    values = [
        (getattr(given, name, None) or (known or {}).get(name) or "")
        for name in ("patient_id", "modality", "body_part")
    ]
    if not all(values):
        return None
    patient_id, modality, body_part = values
    return repeats.ExamItem(facility_id, patient_id, modality.upper(), body_part.upper())


def receive_checked_study(
    db: sqlite_utils.Database,
    study: ReceivedStudy,
    *,
    now: datetime,
    sla: SlaPolicy,
    seq: int | None = None,
) -> IngestOutcome:
    """``receive_study``, then the repeat check of each consultation whose images arrived now
    and which has no alert yet (a request proceeded with a reason was judged when filed)."""
    outcome = receive_study(db, study, now=now, sla=sla, seq=seq)
    stamp = to_iso(now)
    for consultation_id in outcome.consultation_ids:
        row = store.consultation_row(db, consultation_id)
        if row["received_at"] != stamp or alert_store.has_alert(db, consultation_id):
            continue
        item = _item(row["facility_id"], None, row)
        if item is None:
            continue
        prior = repeats.prior_exams(db, windows_of(sla), item, now, consultation_id)
        if prior.matches:
            repeats.record_alert(
                db, item, prior, source="ingest", decision="recorded", now=now,
                consultation_id=consultation_id,
            )  # fmt: skip
    return outcome
