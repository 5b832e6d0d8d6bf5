"""The canonical form of a report: the exact bytes its detached signature covers.

Deterministic (sorted keys, no whitespace, UTF-8, ``\\r\\n`` normalised) and versioned by its
``format`` field, so anyone can re-serialise the fields and check the signature. It names the
study, consultation and version, the signer and the time; it leaves out the patient's name (the
study UID already binds the report to the patient, and the form travels in DICOM objects).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from .document import ReportDocument

FORMAT = "teleread-report/1"


def _text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def canonical_fields(doc: ReportDocument) -> dict[str, Any]:
    """The signed fields. The two-level sign-off's (reviewer, preliminary) and the key images'
    (issue 19) are added only when present, so a report with one signer and no figure keeps
    exactly the bytes it had before they existed."""
    fields = {
        "format": FORMAT,
        "report_id": doc.report_id,
        "version": doc.version,
        "supersedes_version": doc.supersedes_version,
        "consultation_id": doc.consultation_id,
        "study_instance_uid": doc.study_instance_uid,
        "accession_number": doc.accession_number,
        "facility": doc.facility_name,
        "centre": doc.centre_name,
        "findings": _text(doc.findings),
        "impression": _text(doc.impression),
        "recommendation": _text(doc.recommendation),
        "critical": doc.critical,
        "refer": doc.refer,
        "quality": doc.quality,
        "quality_reason": _text(doc.quality_reason),
        "signer": doc.signer_name,
        "certificate_serial": doc.signer_certificate_serial,
        "signed_at": doc.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verification_code": doc.verification_code,
    }
    if doc.reviewer_name:
        fields["reviewer"] = doc.reviewer_name
        fields["reviewer_certificate_serial"] = doc.reviewer_certificate_serial
        if doc.reviewed_at is not None:
            fields["reviewed_at"] = doc.reviewed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if doc.preliminary:
        fields["preliminary"] = True
    if doc.recognised:  # on the mutual-recognition list at signing (issue 20)
        fields["recognised"] = True
    if doc.figures:
        fields["figures"] = [figure.sha256 for figure in doc.figures]
    return fields


def canonical_bytes(doc: ReportDocument) -> bytes:
    return json.dumps(
        canonical_fields(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def parse_canonical(data: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not a teleread canonical report") from exc
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise ValueError("not a teleread canonical report")
    return fields
