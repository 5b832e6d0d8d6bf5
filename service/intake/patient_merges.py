"""Merging two identifiers of one patient, as a hospital system orders (HL7 ADT^A40), and an
administrator's reversal of that merge.

A township registers a patient twice (a typo, a new card); the county HIS finds out and merges
the records: the *prior* identifier is retired in favour of the *surviving* one. Here that means,
within the facility whose HIS sent it and no other (patient ids are only unique per facility:
another facility's "P-1" is another person), every consultation filed under the prior id takes
the surviving id, and the name, birth date and sex when the message carries them. Open and
finished consultations alike: the worklist, the consultation page, the prior-studies lists and
the audit trail's patient search then find the patient under one id.

What is recorded, and why a reversal is exact
    The merge (``patient_merges``) and, per consultation it rewrote, the values it had before and
    the values the merge wrote (``patient_merge_changes``, only the columns that changed). A merge
    that found no consultation to change is recorded all the same (the HIS told us; a later
    reader asks "did the merge arrive?") and says so (:attr:`MergeRecord.changed_nothing`).
    Each consultation gets a ``patient_merged`` event on its timeline.

The reversal rule (field by field)
    :func:`reverse_merge` puts back, on each consultation the merge changed, every field that
    still holds the value the merge wrote. A field changed since then (a later merge, a
    demographics update, ADT^A08) keeps its newer value: undoing the merge must not undo what
    came after it. The ``patient_merge_reversed`` event names what was restored and what was
    kept. A merge is reversed once; a second reversal is refused with the reason
    (``Conflict("already_reversed")``) and changes nothing.

What is not rewritten: the images
    Orthanc's copies keep the DICOM (0010,0020) *Patient ID* the modality sent. They are the
    evidence of what was acquired and sent, and rewriting them would change the instances a
    signed report refers to; the consultation carries the consortium's identity of the patient.
    The worklist, the consultation page and the report list read the consultation's
    ``patient_id``. Reads that prefer the study's own tags (``COALESCE(studies.patient_id,
    consultations.patient_id)``) still show the DICOM id for a consultation with images: the
    viewer's audited patient and its prior-studies list (storage/viewing.py), the report priors
    (storage/report_priors.py), QIDO-RS answers (storage/dicomweb.py) and the audit page's
    patient names (storage/audit_search.py). Images arriving after a merge for a request filed
    under the surviving id keep the consultation's id (the ingest only fills empty fields). A
    signed report's PDF keeps the id it was signed with; a correction carries the new one.

The caller runs :func:`merge_patients` inside its write transaction, appends the audit record
there too (:func:`audit_merge`, ``patient.merged``), then publishes the changed consultations
(``service.worklist.live_feed.publish_changes``) so live worklists follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlite_utils

from ..audit import AuditEntry
from ..clock import to_iso
from ..storage import Conflict
from ..storage import consultations as consultation_store
from ..storage import facilities as facility_store
from ..storage import patient_merges as store
from ..storage.audit import append_audit

MERGED_EVENT = "patient_merged"
REVERSED_EVENT = "patient_merge_reversed"
MERGED_ACTION = "patient.merged"
REVERSED_ACTION = "patient.merge_reversed"
RESOURCE_TYPE = "patient_merge"


@dataclass(frozen=True)
class PatientIdentity:
    """One identifier of a patient as a hospital system sends it, with what it says of them.

    ``patient_id`` is HL7 CX.1 (DICOM Patient ID); ``authority`` the assigning authority (CX.4),
    kept on the record for the reader (consultations hold no authority: a facility's ids are
    one namespace). ``name`` is a DICOM person name, ``birth_date`` DICOM DA (YYYYMMDD), ``sex``
    M, F or O; empty when the message did not say.
    """

    patient_id: str
    authority: str = ""
    name: str = ""
    birth_date: str = ""
    sex: str = ""

    def written_values(self) -> dict[str, str]:
        """The consultation columns this identity sets: the id, and what else it carries."""
        values = {
            "patient_id": self.patient_id,
            "patient_name": self.name,
            "patient_birth_date": self.birth_date,
            "patient_sex": self.sex,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class MergeRecord:
    """A merge as recorded: which consultations changed (none is possible and recorded)."""

    id: int
    facility_id: int
    surviving: PatientIdentity
    prior: PatientIdentity
    source: str
    merged_at: str
    consultation_ids: tuple[int, ...] = ()

    @property
    def changed_nothing(self) -> bool:
        return not self.consultation_ids

    @property
    def summary(self) -> str:
        """One line for logs and an HL7 acknowledgement's text."""
        if self.changed_nothing:
            return (
                f"merge {self.id} recorded: no consultation of this facility was filed under"
                f" patient id {self.prior.patient_id}"
            )
        return (
            f"merge {self.id}: {len(self.consultation_ids)} consultation(s) moved from patient id"
            f" {self.prior.patient_id} to {self.surviving.patient_id}"
        )


@dataclass(frozen=True)
class MergeReversal:
    """What a reversal did: per consultation, the fields restored and the fields kept."""

    merge_id: int
    facility_id: int
    surviving_patient_id: str
    prior_patient_id: str
    restored: dict[int, dict[str, Any]] = field(default_factory=dict)
    kept: dict[int, list[str]] = field(default_factory=dict)

    @property
    def consultation_ids(self) -> list[int]:
        return sorted(self.restored.keys() | self.kept.keys())


def merge_patients(
    db: sqlite_utils.Database,
    *,
    facility_id: int,
    surviving: PatientIdentity,
    prior: PatientIdentity,
    source: str,
    actor_user_id: int | None,
    now: datetime,
) -> MergeRecord:
    """Move the facility's consultations from ``prior`` to ``surviving`` and record the merge
    (inside the caller's write transaction). ``source`` says who ordered it, e.g.
    ``"HL7 ADT^A40 COUNTY_HIS MSG00042"``; ``actor_user_id`` is None for a system.

    Raises ``Conflict("same_patient")`` when both ids are one, RecordNotFound for an unknown
    facility; nothing is written then."""
    if not surviving.patient_id or not prior.patient_id:
        raise ValueError("a merge needs both the surviving and the prior patient id")
    if surviving.patient_id == prior.patient_id:
        raise Conflict(
            "same_patient", f"patient id {prior.patient_id} cannot be merged into itself"
        )
    facility_store.get_facility(db, facility_id)
    stamp = to_iso(now)
    merge_id = store.insert_merge(
        db,
        {
            "facility_id": facility_id,
            "surviving_patient_id": surviving.patient_id,
            "surviving_authority": surviving.authority,
            "surviving_name": surviving.name,
            "surviving_birth_date": surviving.birth_date,
            "surviving_sex": surviving.sex,
            "prior_patient_id": prior.patient_id,
            "prior_authority": prior.authority,
            "source": source,
            "merged_at": stamp,
            "merged_by": actor_user_id,
        },
    )
    wanted = surviving.written_values()
    changed: list[int] = []
    for row in store.consultations_of_patient(db, facility_id, prior.patient_id):
        merged = {k: v for k, v in wanted.items() if row[k] != v}
        before = {k: row[k] for k in merged}
        consultation_store.update_consultation(db, row["id"], merged | {"updated_at": stamp})
        store.insert_change(db, merge_id, row["id"], before, merged)
        detail = {
            "merge_id": merge_id,
            "prior_patient_id": prior.patient_id,
            "surviving_patient_id": surviving.patient_id,
            "changed": sorted(merged),
            "source": source,
        }
        consultation_store.append_event(db, row["id"], MERGED_EVENT, stamp, actor_user_id, detail)
        changed.append(row["id"])
    return MergeRecord(
        merge_id, facility_id, surviving, prior, source, stamp, consultation_ids=tuple(changed)
    )


def reverse_merge(
    db: sqlite_utils.Database, merge_id: int, *, actor_user_id: int | None, now: datetime
) -> MergeReversal:
    """Undo a merge field by field (the module docstring's rule), inside the caller's write
    transaction. RecordNotFound for an unknown merge; ``Conflict("already_reversed")`` for one
    reversed before, with nothing written."""
    merge = store.get_merge(db, merge_id)
    stamp = to_iso(now)
    if not store.mark_reversed(db, merge_id, stamp, actor_user_id):
        raise Conflict(
            "already_reversed",
            f"patient merge {merge_id} was already reversed at {merge['reversed_at']}",
        )
    reversal = MergeReversal(
        merge_id, merge["facility_id"], merge["surviving_patient_id"], merge["prior_patient_id"]
    )
    for change in merge["changes"]:
        consultation_id = change["consultation_id"]
        current = store.patient_fields(db, consultation_id)
        merged, prior = change["merged_values"], change["prior_values"]
        restored = {k: prior[k] for k, v in merged.items() if current[k] == v}
        kept = sorted(k for k, v in merged.items() if current[k] != v)
        if restored:
            consultation_store.update_consultation(
                db, consultation_id, restored | {"updated_at": stamp}
            )
            reversal.restored[consultation_id] = restored
        if kept:
            reversal.kept[consultation_id] = kept
        detail = {"merge_id": merge_id, "restored": sorted(restored), "kept": kept}
        consultation_store.append_event(
            db, consultation_id, REVERSED_EVENT, stamp, actor_user_id, detail
        )
    return reversal


def merge_audit_entry(
    record: MergeRecord, *, username: str, client_ip: str = "", detail: dict[str, Any] | None = None
) -> AuditEntry:
    """The ``patient.merged`` audit record of a merge a system ordered (no teleread user).

    ``username`` names the sender the way the trail names non-human actors (the CLI writes
    ``os:<user>``), e.g. ``hl7:COUNTY_HIS``; ``client_ip`` is the sender's address. Both patient
    ids go in ``patient_id`` (comma-separated), so the audit search finds the record under
    either."""
    return AuditEntry(
        at=record.merged_at,
        action=MERGED_ACTION,
        outcome="success",
        username=username,
        facility_id=record.facility_id,
        resource_type=RESOURCE_TYPE,
        resource_id=str(record.id),
        patient_id=f"{record.surviving.patient_id},{record.prior.patient_id}",
        client_ip=client_ip,
        detail={
            "source": record.source,
            "surviving_patient_id": record.surviving.patient_id,
            "prior_patient_id": record.prior.patient_id,
            "consultations": list(record.consultation_ids),
            **(detail or {}),
        },
    )


def audit_merge(
    db: sqlite_utils.Database,
    record: MergeRecord,
    *,
    username: str,
    client_ip: str = "",
    detail: dict[str, Any] | None = None,
) -> int:
    """Append the merge's audit record in the caller's write transaction (the one that merged:
    the merge and its record commit together or not at all); the record's id."""
    entry = merge_audit_entry(record, username=username, client_ip=client_ip, detail=detail)
    return append_audit(db, entry)
