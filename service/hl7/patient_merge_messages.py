"""ADT^A40 (merge patient, patient identifier list) read into merge orders.

HL7 v2.5.1 section 3.3.40: after MSH and EVN, one or more groups of PID (the surviving patient:
PID-3 its identifier list, PID-5/7/8 name, birth date and sex) followed by MRG (MRG-1 the prior
identifier list being retired). Each identifier is a CX: CX.1 the id, CX.4 the assigning
authority (an HD: its namespace ID, else its universal ID).

Several identifiers in one list (repetitions, ``~``) are the same patient under several
authorities. Each prior identifier becomes one order; its surviving identifier is the PID-3
repetition with the same assigning authority, else PID-3's first (the consultations of a
facility hold one id, so the pairing by authority is what keeps a "medical record number"
merged into a medical record number rather than a national id).

Reading the message (:func:`merges_from_adt_a40`) needs no facility and no database; a message
that cannot be applied raises :class:`MergeMessageRefused` with a reason an HL7 ERR segment can
carry as it is. :func:`apply_adt_a40` is what the listener's dispatch calls in its write
transaction: read, merge each order (``service.intake.patient_merges``) and audit it, all or
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import hl7
import sqlite_utils

from ..intake.patient_merges import MergeRecord, PatientIdentity, audit_merge, merge_patients

REQUIRED_FIELD_MISSING = "101"
"""HL7 table 0357 (message error condition codes): required field missing."""
DATA_TYPE_ERROR = "102"

_SEXES = {"M", "F", "O"}
"""HL7 table 0001 values DICOM (0010,0040) also has; U, A and N say nothing DICOM can hold."""


class MergeMessageRefused(ValueError):
    """The message cannot be applied. ``reason`` is the text for ERR-8 (or MSA-3); ``segment``,
    ``sequence`` (its occurrence, 1-based) and ``field`` locate it for ERR-2; ``code`` is the
    HL7 table 0357 condition for ERR-3."""

    def __init__(self, reason: str, *, segment: str, sequence: int, field: int, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segment = segment
        self.sequence = sequence
        self.field = field
        self.code = code


@dataclass(frozen=True)
class PatientMergeOrder:
    """Retire ``prior`` in favour of ``surviving`` (what one MRG-1 identifier asks)."""

    surviving: PatientIdentity
    prior: PatientIdentity


def merges_from_adt_a40(message: hl7.Message) -> list[PatientMergeOrder]:
    """Every merge an ADT^A40 asks, in message order (``message`` as ``hl7.parse`` returns it)."""
    reader = _Reader(message)
    orders: list[PatientMergeOrder] = []
    pid: tuple[int, hl7.Segment] | None = None
    pids = mrgs = 0
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            pids += 1
            pid = (pids, segment)
        elif name == "MRG":
            mrgs += 1
            if pid is None:
                raise MergeMessageRefused(
                    "MRG without a PID before it: the surviving patient is missing",
                    segment="MRG", sequence=mrgs, field=1, code=REQUIRED_FIELD_MISSING,
                )  # fmt: skip
            orders.extend(reader.group(pid[0], pid[1], mrgs, segment))
            pid = None
    if pid is not None:
        raise MergeMessageRefused(
            "PID without an MRG after it: the patient to merge is missing (MRG-1)",
            segment="MRG", sequence=mrgs + 1, field=1, code=REQUIRED_FIELD_MISSING,
        )  # fmt: skip
    if not orders:
        raise MergeMessageRefused(
            "no PID segment: the surviving patient identifier (PID-3) is missing",
            segment="PID", sequence=1, field=3, code=REQUIRED_FIELD_MISSING,
        )  # fmt: skip
    return orders


def apply_adt_a40(
    db: sqlite_utils.Database,
    message: hl7.Message,
    *,
    facility_id: int,
    sender: str,
    client_ip: str = "",
    now: datetime,
) -> list[MergeRecord]:
    """Apply every merge of an ADT^A40 from ``facility_id`` (the facility MSH-4 named) inside
    the caller's write transaction, each with its ``patient.merged`` audit record (by
    ``hl7:<sender>``, from ``client_ip``). Raises :class:`MergeMessageRefused` for a message
    that cannot be read, ``storage.Conflict`` for a merge of an id into itself: the caller's
    transaction rolls back and nothing is applied. The caller then publishes the records'
    ``consultation_ids`` (``service.worklist.live_feed.publish_changes``)."""
    control_id = str(message.segment("MSH")(10)) if len(message.segment("MSH")) > 10 else ""
    source = f"HL7 ADT^A40 {sender} {control_id}".strip()
    records = []
    for order in merges_from_adt_a40(message):
        record = merge_patients(
            db,
            facility_id=facility_id,
            surviving=order.surviving,
            prior=order.prior,
            source=source,
            actor_user_id=None,
            now=now,
        )
        audit_merge(db, record, username=f"hl7:{sender}", client_ip=client_ip)
        records.append(record)
    return records


class _Reader:
    """Fields of one message split by its own separators (MSH-1/MSH-2), escapes undone."""

    def __init__(self, message: hl7.Message) -> None:
        self.message = message
        _, _, self.repetition, self.component, self.subcomponent = message.separators[:5]

    def group(
        self, pid_number: int, pid: hl7.Segment, mrg_number: int, mrg: hl7.Segment
    ) -> list[PatientMergeOrder]:
        survivors = self.identifiers(pid, 3)
        if not survivors:
            raise MergeMessageRefused(
                "PID-3 (patient identifier list) is empty: no surviving patient identifier",
                segment="PID", sequence=pid_number, field=3, code=REQUIRED_FIELD_MISSING,
            )  # fmt: skip
        priors = self.identifiers(mrg, 1)
        if not priors:
            raise MergeMessageRefused(
                "MRG-1 (prior patient identifier list) is empty: nothing to merge",
                segment="MRG", sequence=mrg_number, field=1, code=REQUIRED_FIELD_MISSING,
            )  # fmt: skip
        name, birth_date, sex = self.name(pid), self.birth_date(pid), self.sex(pid)
        orders = []
        for prior_id, prior_authority in priors:
            surviving_id, authority = next(
                (s for s in survivors if s[1] == prior_authority), survivors[0]
            )
            if surviving_id == prior_id:
                raise MergeMessageRefused(
                    f"MRG-1 names the surviving patient identifier {prior_id} itself",
                    segment="MRG", sequence=mrg_number, field=1, code=DATA_TYPE_ERROR,
                )  # fmt: skip
            surviving = PatientIdentity(surviving_id, authority, name, birth_date, sex)
            orders.append(PatientMergeOrder(surviving, PatientIdentity(prior_id, prior_authority)))
        return orders

    def text(self, segment: hl7.Segment, number: int) -> str:
        return str(segment(number)) if number < len(segment) else ""

    def repetitions(self, segment: hl7.Segment, number: int) -> list[list[list[str]]]:
        """Each repetition's components, each component's subcomponents, unescaped."""
        return [
            [
                [self.message.unescape(sub) for sub in component.split(self.subcomponent)]
                for component in repetition.split(self.component)
            ]
            for repetition in self.text(segment, number).split(self.repetition)
            if repetition
        ]

    def identifiers(self, segment: hl7.Segment, number: int) -> list[tuple[str, str]]:
        """(CX.1, assigning authority) of each identifier with an id."""
        found = []
        for components in self.repetitions(segment, number):
            patient_id = components[0][0].strip()
            authority = components[3] if len(components) > 3 else [""]
            namespace = authority[0] or (authority[1] if len(authority) > 1 else "")
            if patient_id:
                found.append((patient_id, namespace.strip()))
        return found

    def name(self, pid: hl7.Segment) -> str:
        """PID-5 as a DICOM person name: XPN repetitions marked A, I and P (XPN.8, the name's
        representation) become the alphabetic, ideographic and phonetic groups; unmarked, the
        first. XPN puts the suffix (4) before the prefix (5); DICOM the prefix first."""
        groups: dict[str, str] = {}
        for components in self.repetitions(pid, 5):
            part = [c[0].strip() for c in components] + [""] * 8
            dicom = "^".join([part[0], part[1], part[2], part[4], part[3]]).rstrip("^")
            kind = part[7].upper() if part[7].upper() in {"A", "I", "P"} else ""
            if dicom and kind not in groups:
                groups[kind] = dicom
        if not any(groups.get(k) for k in "AIP"):
            return groups.get("", "")
        alphabetic = groups.get("A", groups.get("", ""))
        return "=".join([alphabetic, groups.get("I", ""), groups.get("P", "")]).rstrip("=")

    def birth_date(self, pid: hl7.Segment) -> str:
        """PID-7 (a DTM: YYYYMMDD[HHMM...][+ZZZZ]) as a DICOM DA; a partial date is dropped."""
        reps = self.repetitions(pid, 7)
        value = reps[0][0][0].strip() if reps else ""
        return value[:8] if len(value) >= 8 and value[:8].isdigit() else ""

    def sex(self, pid: hl7.Segment) -> str:
        reps = self.repetitions(pid, 8)
        value = reps[0][0][0].strip().upper() if reps else ""
        return value if value in _SEXES else ""
