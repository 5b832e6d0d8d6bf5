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
from ..storage.patients import Recorded, record_local_identity
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
    recorded = record_local_identity(db, patient, tuple(identifiers), source)
    now = to_iso(utc_now())
    if recorded.links:
        candidate_store.settle(db, [recorded.identity_id], now)
    propose_matches(db, recorded.identity_id, patient.name, now)
    return recorded
