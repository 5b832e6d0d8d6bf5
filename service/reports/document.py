"""Everything one signed version of a report says, as the PDF, the SR and the canonical form
print it: built once from the store (documents_data.py), rendered three ways."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReportDocument:
    report_id: int
    version: int
    supersedes_version: int | None
    consultation_id: int
    study_instance_uid: str
    accession_number: str
    centre_name: str
    facility_name: str
    patient_name: str
    patient_id: str
    patient_sex: str
    patient_birth_date: str
    study_date: str
    study_description: str
    modality: str
    body_part: str
    clinical_question: str
    findings: str
    impression: str
    recommendation: str
    critical: bool
    refer: bool
    quality: str | None
    quality_reason: str
    signer_name: str
    signer_title: str
    signer_certificate_serial: str
    signed_at: datetime
    timezone: str
    verification_code: str
    verification_url: str
    language: str = "zh_CN"
    # The signer's stored DICOM person name; empty: derived from signer_name (person_names.py).
    # The SR uses it; the canonical form and the PDF do not.
    signer_dicom_name: str = ""
