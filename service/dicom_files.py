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
# Values longer than this (the pixel data of big multi-frame files) are left on disk, not read.
DEFER_BYTES = 1 << 20


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
            ds = dcmread(path, defer_size=DEFER_BYTES)
        except (InvalidDicomError, EOFError, ValueError, OSError, KeyError) as exc:
            raise RejectedFile(f"not a readable DICOM file ({exc})") from exc
    if any("End of file" in str(w.message) for w in caught):
        raise RejectedFile("truncated DICOM file (pixel data ends early)")
    study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    if not study_uid or not sop_uid:
        raise RejectedFile("truncated or incomplete DICOM file (no Study or SOP Instance UID)")
    _check_pixel_data_complete(ds, path.stat().st_size)
    return DicomSummary(study_uid, sop_uid, str(ds.get("PatientID", "")))


def _is_image_storage(ds: object) -> bool:
    """Whether (0008,0016) *SOP Class UID* names an image storage class (which needs pixels)."""
    sop_class = ds.get("SOPClassUID")  # type: ignore[attr-defined]
    return sop_class is not None and "Image Storage" in str(getattr(sop_class, "name", ""))


def _check_pixel_data_complete(ds: object, file_size: int) -> None:
    pixel_elements = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    has_pixels = any(name in ds for name in pixel_elements)  # type: ignore[operator]
    if not has_pixels and ("Rows" in ds or _is_image_storage(ds)):  # type: ignore[operator]
        raise RejectedFile("truncated DICOM file (image without pixel data)")
    if "PixelData" not in ds:  # type: ignore[operator]
        return
    # The raw element, without reading a deferred value: its bytes present are counted on disk.
    element = ds.get_item("PixelData", keep_deferred=True)  # type: ignore[attr-defined]
    if element.length == 0xFFFFFFFF:  # undefined length: encapsulated
        return
    expected = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("SamplesPerPixel", 1))  # type: ignore[attr-defined]
        * int(ds.get("NumberOfFrames", 1) or 1)
        * int(ds.BitsAllocated)  # type: ignore[attr-defined]
        + 7
    ) // 8
    present = min(element.length, file_size - element.value_tell)
    if present < expected:
        raise RejectedFile(f"truncated DICOM file (pixel data {present} of {expected} bytes)")
