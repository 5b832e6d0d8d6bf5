"""Everything one signed version of a report says, as the PDF, the SR and the canonical form
print it: built once from the store (documents_data.py), rendered three ways."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReportFigure:
    """A key image as the printed report shows it (issue 19): the frame rendered by the viewer's
    exact pipeline with the reader's window, zoom and measurements drawn, and its caption.

    ``png`` is the rendered image; ``label`` names where it is ("Se 2 Im 45"); ``sha256`` is the
    hex digest of ``png``, which the canonical form carries so the signature covers the figure."""

    png: bytes
    caption: str
    label: str
    sha256: str


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
    # Two-level sign-off (issue 19): the reviewing physician (审核医师) who co-signed, empty while
    # the report awaits review. ``preliminary`` marks a stat/urgent report released before
    # review (初步报告): every printed page says so.
    reviewer_name: str = ""
    reviewer_title: str = ""
    reviewer_dicom_name: str = ""
    reviewer_certificate_serial: str = ""
    reviewed_at: datetime | None = None
    preliminary: bool = False
    # Mutual recognition (issue 20): the report's facility and exam item (modality + body part)
    # were on the consortium's recognition list when it was signed (recognition_mark.py).
    recognised: bool = False
    # Key images (图文报告, issue 19): at most four are printed; none keeps the text-only layout.
    figures: tuple[ReportFigure, ...] = ()
