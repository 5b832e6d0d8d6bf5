"""ADT^A08 (update patient information): the patient's name, birth date and sex as the HIS now
has them, on the sending facility's *open* consultations of that patient ID (PID-3).

A finished consultation keeps the patient as it was reported on. A field sent empty is left as
it is; ``""`` (HL7's explicit null) clears it. Each consultation changed gets a
``patient_updated`` event naming the fields (not their values: the row has them). An update
for a patient with no open consultation is accepted and changes none; national numbers in
PID-3 are recorded on the patient's local identity either way (service/patients/identify.py).
"""

from __future__ import annotations

import sqlite_utils

from ..clock import to_iso
from ..patients.identify import identify_patient
from ..storage import consultations as store
from .acks import Refusal
from .applied import Applied, Inbound
from .messages import birth_date, first, person_name, sex
from .patient_identifiers import pid_identifiers

NULL = '""'


def apply_update(db: sqlite_utils.Database, inbound: Inbound) -> Applied:
    pid = first(inbound.message, "PID")
    if pid is None:
        raise Refusal("AE", "100", "ADT^A08 needs a PID segment", "PID")
    patient_id = pid.value(3)
    if not patient_id:
        raise Refusal("AE", "101", "PID-3 (patient identifier) is missing", "PID^1^3")
    sent = {
        "patient_name": (pid.raw(5), lambda: person_name(pid)),
        "patient_birth_date": (pid.raw(7), lambda: birth_date(pid.value(7), "PID^1^7")),
        "patient_sex": (pid.raw(8), lambda: sex(pid.value(8), "PID^1^8")),
    }
    new = {column: "" if raw == NULL else read() for column, (raw, read) in sent.items() if raw}
    if len(new.get("patient_name", "")) > 200:
        raise Refusal("AE", "102", "PID-5 is longer than 200 characters", "PID^1^5")
    applied = Applied("hl7.patient_update", patient_id=patient_id)
    stamp = to_iso(inbound.now)
    changed_fields: set[str] = set()
    for row in store.open_of_patient(db, inbound.facility["id"], patient_id):
        changes = {k: v for k, v in new.items() if row[k] != v}
        if not changes:
            continue
        store.update_consultation(db, row["id"], changes | {"updated_at": stamp})
        detail = {"via": "hl7", "fields": sorted(changes)}
        store.append_event(db, row["id"], "patient_updated", stamp, None, detail)
        applied.consultations.append(row["id"])
        changed_fields.update(changes)
    applied.detail["fields"] = sorted(changed_fields)
    # The national numbers PID-3 carries, and the likely matches the new demographics make
    # (service/patients): on the patient's local identity, open consultation or not.
    identify_patient(db, inbound.facility["id"], patient_id, pid_identifiers(pid), "hl7", new)
    return applied
