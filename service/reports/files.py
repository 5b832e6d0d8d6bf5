"""Reading a report file back for verification: a PDF, a DICOM Encapsulated PDF or a DICOM SR."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError

from .canonical import parse_canonical
from .dicom_objects import CANONICAL, SIGNATURE
from .sr_content import CANONICAL_PREFIX, SIGNATURE_PREFIX

CODE_IN_SUBJECT = re.compile(rb"teleread-verification-code:([A-Z0-9-]+)")


@dataclass(frozen=True)
class ReportFile:
    kind: str  # "pdf" | "dicom-pdf" | "dicom-sr"
    pdf: bytes | None
    canonical: bytes | None
    signature: bytes | None
    verification_code: str | None


def _code_from_pdf(pdf: bytes) -> str | None:
    found = CODE_IN_SUBJECT.search(pdf)
    return found.group(1).decode("ascii") if found else None


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _signature(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the SR's signature is damaged") from exc


def _comment_form(ds: pydicom.Dataset) -> tuple[bytes | None, bytes | None]:
    """The signed form from the two Comment items of the TID 2000 tree (sr_content.py)."""
    canonical = signature = None
    for item in _walk(ds.get("ContentSequence", [])):
        text = item.get("TextValue")
        if not isinstance(text, str):
            continue
        if text.startswith(CANONICAL_PREFIX):
            canonical = text.removeprefix(CANONICAL_PREFIX).encode("utf-8")
        elif text.startswith(SIGNATURE_PREFIX):
            signature = _signature(text.removeprefix(SIGNATURE_PREFIX))
    return canonical, signature


def _legacy_form(ds: pydicom.Dataset) -> tuple[bytes | None, bytes | None]:
    """The signed form from the 99TELEREAD content items of SRs stored before that."""
    canonical = signature = None
    for item in _walk(ds.get("ContentSequence", [])):
        name = item.ConceptNameCodeSequence[0]
        if name.CodingSchemeDesignator != CANONICAL.scheme_designator:
            continue
        if name.CodeValue == CANONICAL.value:
            canonical = item.TextValue.encode("utf-8")
        elif name.CodeValue == SIGNATURE.value:
            signature = _signature(item.TextValue)
    return canonical, signature


def _from_sr(ds: pydicom.Dataset) -> ReportFile:
    canonical, signature = _comment_form(ds)
    if canonical is None:
        canonical, signature = _legacy_form(ds)
    if canonical is None or signature is None:
        raise ValueError("not a teleread report: the SR carries no signed form")
    code = parse_canonical(canonical).get("verification_code")
    return ReportFile("dicom-sr", None, canonical, signature, code)


def read_report_file(data: bytes) -> ReportFile:
    """What a file carries to verify; ValueError when it is no teleread report."""
    if data.startswith(b"%PDF"):
        return ReportFile("pdf", data, None, None, _code_from_pdf(data))
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise ValueError("not a teleread report: neither a PDF nor a DICOM file") from exc
    if "EncapsulatedDocument" in ds:
        pdf = bytes(ds.EncapsulatedDocument)
        length = ds.get("EncapsulatedDocumentLength")
        if length:
            pdf = pdf[: int(length)]
        if not pdf.startswith(b"%PDF"):
            raise ValueError("not a teleread report: the encapsulated document is no PDF")
        return ReportFile("dicom-pdf", pdf, None, None, _code_from_pdf(pdf))
    if "ContentSequence" in ds:
        return _from_sr(ds)
    raise ValueError("not a teleread report: a DICOM file without a report")
