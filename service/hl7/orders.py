"""ORM^O01 and OMI^O23: new orders (ORC-1 ``NW``) become consultation requests, cancels
(``CA``) withdraw the open one.

Where each value is read (IHE Scheduled Workflow's usage where HIS vendors differ):

| consultation | HL7 |
|---|---|
| patient ID, name, birth date, sex | PID-3.1, PID-5 (repetitions per XPN-8 A/I/P), PID-7, PID-8 |
| placer order number | ORC-2.1, else OBR-2.1 |
| accession number | IPC-1.1 (OMI), else OBR-18 |
| study instance UID | IPC-3 (OMI) |
| requested procedure (code, text) | OBR-4.1, OBR-4.2 |
| modality | IPC-5 (OMI), else OBR-24 when it is a DICOM modality |
| body part | OBR-15.4 (specimen source's body site) when it is a DICOM code string |
| priority | TQ1-9, else ORC-7.6, else OBR-27.6, else OBR-5 (table 0027: S stat, A/T urgent) |
| clinical history | OBR-13 and the NTE segments after the OBR |
| clinical question | OBR-31 (text, else code) |
| callback phone | ORC-14.1 |
| requesting user | ORC-12.1 (ordering provider's ID) when it is a requesting user's username |

Several orders in one message are applied together or not at all. An order repeating an exam
item the patient had within its window (worklist rules ``[repeat_exams]``) is filed, the repeat
recorded, and the ACK warns (ERR severity W, service/hl7/acks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlite_utils

from worklists.priorities import Priority

from ..clock import to_iso
from ..intake.cancellation import cancel_request
from ..intake.intake import ConsultationRequest
from ..intake.repeat_check import file_checked_request
from ..patients import repeats
from ..storage import Conflict
from ..storage import consultations as store
from ..storage import users as user_store
from .acks import Refusal
from .applied import Applied, Inbound
from .messages import Segment, birth_date, moment, person_name, segments, sex
from .patient_identifiers import pid_identifiers

PRIORITIES = {
    "S": Priority.STAT,
    "STAT": Priority.STAT,
    "A": Priority.URGENT,
    "ASAP": Priority.URGENT,
    "T": Priority.URGENT,
    "URGENT": Priority.URGENT,
    "R": Priority.ROUTINE,
    "ROUTINE": Priority.ROUTINE,
    "P": Priority.ROUTINE,
    "C": Priority.ROUTINE,
}
DICOM_MODALITIES = {
    "CR", "CT", "DX", "MR", "US", "MG", "NM", "PT", "RF", "XA", "IO", "PX", "OP", "ES", "XC",
    "OT", "SC", "RG", "BMD", "ECG",
}  # fmt: skip
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
BODY_PART = re.compile(r"^[A-Z0-9_ ]{1,16}$")  # DICOM (0018,0015) Body Part Examined, a CS
HISTORY_LIMIT, QUESTION_LIMIT = 4000, 2000


@dataclass
class Order:
    """One ORC and the segments after it up to the next ORC (TQ1, OBR, NTE, IPC)."""

    orc: Segment
    number: int  # the ORC's sequence in the message (ERR locations)
    obr: Segment | None = None
    obr_number: int = 0
    tq1: Segment | None = None
    ipc: Segment | None = None
    notes: list[str] = field(default_factory=list)

    def obr_value(self, *position: int) -> str:
        return self.obr.value(*position) if self.obr is not None else ""

    def ipc_value(self, *position: int) -> str:
        return self.ipc.value(*position) if self.ipc is not None else ""

    def at(self, segment: str, position: int) -> str:
        number = self.obr_number if segment == "OBR" else self.number
        return f"{segment}^{number or 1}^{position}"


def read_orders(inbound: Inbound) -> tuple[Segment | None, list[Order]]:
    """The PID and the orders of the message, in order."""
    pid: Segment | None = None
    orders: list[Order] = []
    counts: dict[str, int] = {}
    for segment in segments(inbound.message):
        counts[segment.name] = counts.get(segment.name, 0) + 1
        current = orders[-1] if orders else None
        if segment.name == "PID" and pid is None:
            pid = segment
        elif segment.name == "ORC":
            orders.append(Order(segment, counts["ORC"]))
        elif current is None:
            continue
        elif segment.name == "OBR" and current.obr is None:
            current.obr, current.obr_number = segment, counts["OBR"]
        elif segment.name == "TQ1" and current.tq1 is None:
            current.tq1 = segment
        elif segment.name == "IPC" and current.ipc is None:
            current.ipc = segment
        elif segment.name == "NTE" and current.obr is not None:
            current.notes.append(segment.value(3))
    if not orders:
        raise Refusal("AE", "100", "the message has no ORC segment (no order in it)", "ORC")
    return pid, orders


def apply_orders(db: sqlite_utils.Database, inbound: Inbound) -> Applied:
    """Every order of an ORM^O01 or OMI^O23 (one transaction: the caller's)."""
    pid, orders = read_orders(inbound)
    controls = [order.orc.value(1).upper() for order in orders]
    applied = Applied("hl7.cancel" if set(controls) == {"CA"} else "hl7.order")
    applied.detail["orders"] = []
    for order, control in zip(orders, controls, strict=True):
        if control == "NW":
            _new_order(db, inbound, pid, order, applied)
        elif control == "CA":
            _cancel(db, inbound, pid, order, applied)
        else:
            raise Refusal(
                "AE",
                "103",
                f"order control {control!r} is not supported: NW (new order) or CA (cancel)",
                order.at("ORC", 1),
            )
    return applied


def _limited(value: str, limit: int, name: str, location: str) -> str:
    if len(value) > limit:
        raise Refusal("AE", "102", f"{name} is longer than {limit} characters", location)
    return value


def _patient(pid: Segment | None) -> dict[str, str]:
    if pid is None:
        raise Refusal("AE", "100", "a new order needs a PID segment (the patient)", "PID")
    patient_id = pid.value(3)
    if not patient_id:
        raise Refusal("AE", "101", "PID-3 (patient identifier) is missing", "PID^1^3")
    return {
        "patient_id": _limited(patient_id, 64, "PID-3", "PID^1^3"),
        "patient_name": _limited(person_name(pid), 200, "PID-5", "PID^1^5"),
        "patient_birth_date": birth_date(pid.value(7), "PID^1^7"),
        "patient_sex": sex(pid.value(8), "PID^1^8"),
    }


def _priority(order: Order) -> Priority:
    sources = [
        (order.tq1.value(9) if order.tq1 else "", "TQ1^1^9"),
        (order.orc.value(7, 6), order.at("ORC", 7)),
        (order.obr_value(27, 6), order.at("OBR", 27)),
        (order.obr_value(5), order.at("OBR", 5)),
    ]
    code, location = next(((c, loc) for c, loc in sources if c), ("R", ""))
    priority = PRIORITIES.get(code.upper())
    if priority is None:
        raise Refusal(
            "AE", "103", f"priority {code!r} is not in HL7 table 0027 (S, A, R, P, C, T)", location
        )
    return priority


def _placer(order: Order) -> str:
    placer = order.orc.value(2) or order.obr_value(2)
    return _limited(placer, 22, "the placer order number (ORC-2)", order.at("ORC", 2))


def _request(inbound: Inbound, pid: Segment | None, order: Order) -> ConsultationRequest:
    patient = _patient(pid)
    if order.obr is None:
        raise Refusal("AE", "100", "a new order needs an OBR segment after its ORC", "OBR")
    accession = order.ipc_value(1) or order.obr_value(18)
    if not accession:
        raise Refusal(
            "AE", "101", "the accession number (IPC-1 or OBR-18) is missing", order.at("OBR", 18)
        )
    modality = (order.ipc_value(5) or order.obr_value(24)).upper()
    uid = order.ipc_value(3)
    history = "\n".join(t for t in [order.obr_value(13), *order.notes] if t)
    question = order.obr_value(31, 2) or order.obr_value(31, 1)
    code, text = order.obr_value(4, 1), order.obr_value(4, 2)
    body_part = order.obr_value(15, 4).upper()
    return ConsultationRequest(
        _priority(order),
        study_instance_uid=uid if UID.match(uid) and len(uid) <= 64 else None,
        accession_number=_limited(accession, 16, "the accession number", order.at("OBR", 18)),
        modality=modality if modality in DICOM_MODALITIES else None,
        body_part=body_part if BODY_PART.match(body_part) else None,
        clinical_history=history[:HISTORY_LIMIT] or None,
        clinical_question=question[:QUESTION_LIMIT] or None,
        callback_phone=order.orc.value(14)[:32] or None,
        requested_procedure=_limited(text or code, 64, "OBR-4", order.at("OBR", 4)) or None,
        requested_procedure_code=_limited(code, 16, "OBR-4.1", order.at("OBR", 4)) or None,
        placer_order_number=_placer(order) or None,
        via="hl7",
        identifiers=pid_identifiers(pid),
        **patient,
    )


#: Who may file a request in teleread (service/http/routes/consultation_routes.py).
REQUESTING_ROLES = frozenset({"radiographer", "requester", "clinician"})


def _ordering_user(db: sqlite_utils.Database, facility_id: int, provider_id: str) -> int | None:
    """The teleread user the HIS names as ordering provider (ORC-12.1 = their username), so a
    county doctor sees the order they placed in the HIS as their own request; None otherwise
    (another facility's user, a disabled account or a role that files no requests)."""
    user = user_store.user_by_username(db, provider_id.strip()) if provider_id.strip() else None
    if (
        user is None
        or user["facility_id"] != facility_id
        or user["disabled"]
        or user["role"] not in REQUESTING_ROLES
    ):
        return None
    return int(user["id"])


def _new_order(
    db: sqlite_utils.Database, inbound: Inbound, pid: Segment | None, order: Order, applied: Applied
) -> None:
    request = _request(inbound, pid, order)
    local = ZoneInfo(inbound.facility["timezone"])
    ordered_at = moment(order.orc.value(9), local, order.at("ORC", 9))
    try:
        filing = file_checked_request(
            db,
            request,
            facility_id=inbound.facility["id"],
            user_id=_ordering_user(db, inbound.facility["id"], order.orc.value(12, 1)),
            now=inbound.now,
            sla=inbound.sla,
        )
    except Conflict as exc:
        code = "205" if exc.code == "request_exists" else "207"
        raise Refusal("AE", code, exc.detail, order.at("ORC", 2)) from exc
    consultation_id, created = filing.consultation_id, filing.created
    assert consultation_id is not None  # an order is never stopped: a repeat is recorded
    if filing.alert is not None:
        text = repeats.note(filing.alert["matches"], local)
        applied.warnings.append((text, order.at("OBR", 4)))
    applied.patient_id = request.patient_id or ""
    applied.consultations.append(consultation_id)
    if created:
        applied.created.append(consultation_id)
    summary = {
        "control": "NW",
        "consultation": consultation_id,
        "placer_order_number": request.placer_order_number or "",
        "accession_number": request.accession_number or "",
        "priority": request.priority.value,
    }
    if ordered_at is not None:
        summary["ordered_at"] = to_iso(ordered_at)
    if filing.alert is not None:
        summary["repeat_alert"] = filing.alert["id"]
    applied.detail["orders"].append(summary)


def _cancel(
    db: sqlite_utils.Database, inbound: Inbound, pid: Segment | None, order: Order, applied: Applied
) -> None:
    facility_id = inbound.facility["id"]
    placer = _placer(order)
    accession = order.ipc_value(1) or order.obr_value(18)
    target = store.open_by_placer_order(db, facility_id, placer) or store.open_by_accession(
        db, facility_id, accession
    )
    if target is None:
        named = f"placer order {placer!r}" if placer else f"accession {accession!r}"
        raise Refusal(
            "AE",
            "204",
            f"no open order with {named} from this facility (reported, cancelled or unknown)",
            order.at("ORC", 2),
        )
    patient_id = pid.value(3) if pid is not None else ""
    if patient_id and target["patient_id"] and patient_id != target["patient_id"]:
        raise Refusal(
            "AE", "204", f"the order to cancel is not patient {patient_id!r}'s", "PID^1^3"
        )
    reason = order.orc.value(16, 2) or order.orc.value(16, 1) or "cancelled by the ordering system"
    try:
        cancel_request(db, target["id"], user_id=None, reason=reason, now=inbound.now, via="hl7")
    except Conflict as exc:
        raise Refusal("AE", "207", exc.detail, order.at("ORC", 1)) from exc
    applied.patient_id = applied.patient_id or target["patient_id"] or ""
    applied.consultations.append(target["id"])
    applied.detail["orders"].append(
        {"control": "CA", "consultation": target["id"], "placer_order_number": placer}
    )
