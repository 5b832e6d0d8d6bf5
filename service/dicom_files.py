"""Checking an uploaded file is a complete DICOM Part-10 object before it goes to Orthanc.

pydicom stops quietly at the end of a truncated file, so completeness is checked explicitly:
uncompressed pixel data must be as long as (0028,0010) *Rows* x (0028,0011) *Columns* x samples x
frames x bits say, and encapsulated pixel data must end with its sequence delimiter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

ZIP_MAGIC = b"PK\x03\x04"


class RejectedFile(ValueError):
    """The file cannot be stored; the message is the reason shown to the uploader."""


@dataclass(frozen=True)
class DicomSummary:
    study_instance_uid: str
    sop_instance_uid: str
    patient_id: str


def inspect_dicom(path: Path) -> DicomSummary:
    """Validate a Part-10 file and return its identifying UIDs (runs in an executor)."""
    with path.open("rb") as fh:
        head = fh.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise RejectedFile("not a DICOM file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = dcmread(path)
        except (InvalidDicomError, EOFError, ValueError, OSError, KeyError) as exc:
            raise RejectedFile(f"not a readable DICOM file ({exc})") from exc
    if any("End of file" in str(w.message) for w in caught):
        raise RejectedFile("truncated DICOM file (pixel data ends early)")
    study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    if not study_uid or not sop_uid:
        raise RejectedFile("truncated or incomplete DICOM file (no Study or SOP Instance UID)")
    _check_pixel_data_complete(ds)
    return DicomSummary(study_uid, sop_uid, str(ds.get("PatientID", "")))


def _check_pixel_data_complete(ds: object) -> None:
    if "Rows" in ds and "PixelData" not in ds:  # type: ignore[operator]
        raise RejectedFile("truncated DICOM file (image without pixel data)")
    if "PixelData" not in ds:  # type: ignore[operator]
        return
    element = ds["PixelData"]  # type: ignore[index]
    if element.is_undefined_length:
        return
    expected = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("SamplesPerPixel", 1))  # type: ignore[attr-defined]
        * int(ds.get("NumberOfFrames", 1) or 1)
        * int(ds.BitsAllocated)  # type: ignore[attr-defined]
        + 7
    ) // 8
    if len(element.value) < expected:
        raise RejectedFile(
            f"truncated DICOM file (pixel data {len(element.value)} of {expected} bytes)"
        )
