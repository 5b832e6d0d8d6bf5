"""ADT^A40 as a message kind of the dispatch: the merge itself is
:func:`service.hl7.patient_merge_messages.apply_adt_a40` (recorded, audited as
``patient.merged``, reversible by an administrator); this turns its refusals into ACKs."""

from __future__ import annotations

import sqlite_utils

from ..storage import Conflict, RecordNotFound
from .acks import Refusal
from .applied import Applied, Inbound
from .patient_merge_messages import MergeMessageRefused, apply_adt_a40


def apply_merge(db: sqlite_utils.Database, inbound: Inbound) -> Applied:
    """Merge every PID/MRG pair of the message, all or nothing."""
    try:
        records = apply_adt_a40(
            db,
            inbound.message,
            facility_id=inbound.facility["id"],
            sender=inbound.header.addressing.sending_facility
            or inbound.header.addressing.sending_application,
            now=inbound.now,
        )
    except MergeMessageRefused as exc:
        location = f"{exc.segment}^{exc.sequence}^{exc.field}"
        raise Refusal("AE", exc.code, exc.reason, location) from exc
    except (Conflict, RecordNotFound) as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        raise Refusal("AE", "207", detail, "MRG^1^1") from exc
    consultations = sorted({c for record in records for c in record.consultation_ids})
    return Applied(
        action="hl7.patient_merge",
        patient_id=records[0].surviving.patient_id if records else "",
        consultations=consultations,
        detail={
            "merges": [record.id for record in records],
            "summary": [record.summary for record in records],
        },
    )
