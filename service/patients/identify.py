"""Recording the national identifiers a consultation's patient arrived with, at every border.

Every consultation's patient is already a local identity (storage indexes it with the
consultation); what each border adds here, in the same write transaction that filed or
completed the consultation, is the checked identifiers it carried (DICOM Other Patient IDs,
HL7 PID-3, FHIR Patient.identifier, the request form), tagged with where they came from, so that
the master patient index links the identity by them; and then the likely matches by name for
the review list (:mod:`service.patients.candidates`).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from ..clock import to_iso, utc_now
from ..identity_numbers import Identifier
from ..storage import patient_candidates as candidate_store
from ..storage import patients as patient_store
from ..storage.patients import LocalPatient, Recorded, record_local_identity
from .candidates import propose_matches


def identify(
    db: sqlite_utils.Database,
    consultation_id: int,
    identifiers: Iterable[Identifier],
    source: str,
) -> Recorded | None:
    """Record the consultation's patient with these identifiers (source: dicom, hl7, fhir, web,
    api), resolve the review list's pairs a link decided and propose new ones; None when the
    patient has no Patient ID (nothing is indexed then)."""
    patient = candidate_store.patient_of_consultation(db, consultation_id)
    if patient is None:
        return None
    return _record(db, patient, identifiers, source)


def identify_patient(
    db: sqlite_utils.Database,
    facility_id: int,
    patient_id: str,
    identifiers: Iterable[Identifier],
    source: str,
    sent: dict[str, str] | None = None,
) -> Recorded | None:
    """The same for a facility's patient named without a consultation (an HIS's patient update,
    ADT^A08): only a patient teleread already indexed (None otherwise), with the demographics
    ``sent`` (``patient_name``, ``patient_birth_date``, ``patient_sex``; a blank one is kept)."""
    known = patient_store.identity(db, facility_id, patient_id)
    if known is None:
        return None
    sent = sent or {}
    demographics = (
        sent.get("patient_name") or known["name"],
        sent.get("patient_birth_date") or known["birth_date"],
        sent.get("patient_sex") or known["sex"],
    )
    return _record(db, LocalPatient(facility_id, patient_id, *demographics), identifiers, source)


def _record(
    db: sqlite_utils.Database,
    patient: LocalPatient,
    identifiers: Iterable[Identifier],
    source: str,
) -> Recorded:
    recorded = record_local_identity(db, patient, tuple(identifiers), source)
    now = to_iso(utc_now())
    if recorded.links:
        candidate_store.settle(db, [recorded.identity_id], now)
    propose_matches(db, recorded.identity_id, patient.name, now)
    return recorded
