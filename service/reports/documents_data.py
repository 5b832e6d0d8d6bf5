"""The facts a report's documents print, gathered from the store in one place.

Signing and (later) delivery both build the :class:`ReportDocument` through here, so the DICOM
objects made minutes after the signature describe exactly what the signed PDF says.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..clock import from_iso
from ..storage import ingest as study_store
from ..storage import users as user_store
from .document import ReportDocument, ReportFigure
from .key_images import stored_figures
from .recognition_mark import recognised_at


def _study(db: sqlite_utils.Database, consultation: dict[str, Any]) -> dict[str, Any]:
    """The consultation's own study (never another Orthanc study sharing its UID)."""
    return study_store.study_by_orthanc_id(db, consultation.get("orthanc_study_id") or "")


# The reviewer's professional title (职称) as the report's language prints it.
_GRADE_TITLES = {
    "resident": ("住院医师", "Resident"),
    "attending": ("主治医师", "Attending"),
    "associate_chief": ("副主任医师", "Associate chief"),
    "chief": ("主任医师", "Chief"),
}


def _title(grade: str | None, locale: str | None) -> str:
    """The grade as printed: Chinese unless the report is English (as ``language`` below)."""
    chinese, english = _GRADE_TITLES.get(grade or "", ("", ""))
    return english if (locale or "").startswith("en") else chinese


def _signer(db: sqlite_utils.Database, signer_id: int) -> dict[str, Any]:
    return user_store.signer_names(db, signer_id)


def document_for(
    db: sqlite_utils.Database,
    report_id: int,
    consultation: dict[str, Any],
    version: dict[str, Any],
    signer_id: int,
    public_url: str | None = None,
    figures: tuple[ReportFigure, ...] | None = None,
) -> ReportDocument:
    """The document of one signed (or about to be signed) version of a report.

    The verification URL is the one printed at signing (stored with the version); ``public_url``
    builds it for a version about to be signed. ``figures``: the key images of a version about
    to be signed; a signed version's are read from the store. A reviewed version (issue 19)
    names its reviewer (``reviewer_id``, ``reviewer_name``, ``reviewer_certificate_serial``,
    ``reviewed_at``); ``preliminary`` marks one released before review.
    """
    study = _study(db, consultation)
    signer = _signer(db, signer_id)
    reviewer = _signer(db, version["reviewer_id"]) if version.get("reviewer_id") else {}
    reviewed_at = version.get("reviewed_at")
    code = version["verification_code"]
    return ReportDocument(
        report_id=report_id,
        version=version["version"],
        supersedes_version=version["supersedes_version"],
        consultation_id=consultation["id"],
        study_instance_uid=consultation.get("study_instance_uid") or "",
        accession_number=consultation.get("accession_number") or "",
        centre_name=signer.get("facility_name", ""),
        facility_name=consultation["facility_name"],
        patient_name=consultation.get("patient_name") or study.get("patient_name", ""),
        patient_id=consultation.get("patient_id") or study.get("patient_id", ""),
        patient_sex=study.get("patient_sex", ""),
        patient_birth_date=study.get("patient_birth_date", ""),
        study_date=study.get("study_date", ""),
        study_description=study.get("study_description", ""),
        modality=consultation.get("modality") or "",
        body_part=consultation.get("body_part") or "",
        clinical_question=consultation.get("clinical_question") or "",
        findings=version["findings"],
        impression=version["impression"],
        recommendation=version["recommendation"],
        critical=bool(version["critical"]),
        refer=bool(version["refer"]),
        quality=version["quality"],
        quality_reason=version["quality_reason"] or "",
        signer_name=version["signer_name"],
        signer_title="",
        signer_certificate_serial=version["certificate_serial"],
        signed_at=from_iso(version["signed_at"]),
        timezone=consultation.get("facility_timezone") or "UTC",
        verification_code=code,
        verification_url=version.get("verification_url")
        or f"{(public_url or '').rstrip('/')}/verify/{code}",
        language="en" if (signer.get("locale") or "").startswith("en") else "zh_CN",
        signer_dicom_name=signer.get("dicom_name") or "",
        figures=figures if figures is not None else _figures(db, version),
        reviewer_name=version.get("reviewer_name") or "",
        reviewer_title=_title(reviewer.get("grade"), signer.get("locale")),
        reviewer_dicom_name=reviewer.get("dicom_name") or "",
        reviewer_certificate_serial=version.get("reviewer_certificate_serial") or "",
        reviewed_at=from_iso(reviewed_at) if reviewed_at else None,
        preliminary=bool(version.get("preliminary")),
        recognised=recognised_at(
            db,
            consultation.get("facility_id"),
            consultation.get("modality"),
            consultation.get("body_part"),
            version["signed_at"],
        ),
    )


def _figures(db: sqlite_utils.Database, version: dict[str, Any]) -> tuple[ReportFigure, ...]:
    return stored_figures(db, version["id"]) if version.get("id") else ()
