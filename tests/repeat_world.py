"""What the repeat-exam tests share: the rules file with windows, and a prior exam seeded at a
given time (a filed request, optionally with a signed report's impression and the facility on
the recognition list), the person's identities linked by a checked resident identity number."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlite_utils

from service.clock import to_iso
from service.identity_numbers import RESIDENT_ID, Identifier
from service.intake.intake import ConsultationRequest, file_request
from service.storage.patients import LocalPatient, record_local_identity
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

RULES = """
[repeat_exams]
CT.HEAD = 7
CR.CHEST = 30
"""

LI = "11010519491231002X"
"""GB 11643-1999's worked example (born 1949-12-31, a woman): the person linked in the tests."""


def rules_file(directory: Path) -> Path:
    path = directory / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    return path


def link(db: sqlite_utils.Database, facility_id: int, patient_id: str) -> None:
    """Index the local patient with the resident identity number (links the person)."""
    record_local_identity(
        db,
        LocalPatient(facility_id, patient_id, "LI^NA", "19491231", "F"),
        [Identifier(RESIDENT_ID, LI)],
    )


def prior_exam(
    db: sqlite_utils.Database,
    facility_id: int,
    patient_id: str,
    item: str,
    at: datetime,
    accession: str,
    impression: str = "",
    signer_id: int | None = None,
) -> int:
    """A request for ``item`` (``CT.HEAD``) filed at ``at`` whose images arrived then; with an
    impression, a signed report version carrying it (placeholders elsewhere: the alert reads
    the impression only)."""
    modality, body_part = item.split(".")
    request = ConsultationRequest(
        priority=Priority.ROUTINE,
        accession_number=accession,
        patient_id=patient_id,
        patient_name="LI^NA",
        modality=modality,
        body_part=body_part,
    )
    consultation_id, _ = file_request(
        db, request, facility_id=facility_id, user_id=None, now=at, sla=SlaPolicy()
    )
    stamp = to_iso(at)
    db.execute(
        "UPDATE consultations SET received_at = ?, status = ? WHERE id = ?",
        [stamp, "signed" if impression else "ready", consultation_id],
    )
    if impression and signer_id is not None:
        report_id = db.execute(
            "INSERT INTO reports (consultation_id, state, impression, signed_versions,"
            " created_at, updated_at) VALUES (?, 'signed', ?, 1, ?, ?)",
            [consultation_id, impression, stamp, stamp],
        ).lastrowid
        db.execute(
            "INSERT INTO report_versions (report_id, version, findings, impression,"
            " recommendation, critical, refer, signer_id, signer_name, certificate_serial,"
            " signed_at, verification_code, verification_url, canonical, signature, pdf)"
            " VALUES (?, 1, '', ?, '', 0, 0, ?, 'Dr', '1', ?, ?, '', x'00', x'00', x'00')",
            [report_id, impression, signer_id, stamp, f"V-{accession}"],
        )
    return consultation_id


def recognise(db: sqlite_utils.Database, facility_id: int, item: str, since: datetime) -> None:
    modality, body_part = item.split(".")
    db.execute(
        "INSERT INTO recognition (facility_id, modality, body_part, status, since)"
        " VALUES (?, ?, ?, 'listed', ?)",
        [facility_id, modality, body_part, to_iso(since)],
    )
