"""Checking an uploaded file is a complete DICOM Part-10 object before it goes to Orthanc.

pydicom stops quietly at the end of a truncated file, so completeness is checked explicitly:
uncompressed pixel data must be as long as (0028,0010) *Rows* x (0028,0011) *Columns* x frames x
the bytes a pixel takes in its (0028,0004) *Photometric Interpretation* (PS3.3 C.7.6.3.1.2:
YBR_FULL_422 stores 2 samples per pixel, not 3), and encapsulated pixel data must end with its
sequence delimiter. Files in the Deflated transfer syntax (PS3.5 A.5) are measured after
inflation, which is itself capped (a few KB of deflate can inflate to gigabytes). Values that
pydicom keeps as raw text because they are not what their VR says (an IS of 'abc') are refused
here with the element named, so that nothing downstream meets ``int('abc')``.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import IS, DSdecimal, DSfloat

ZIP_MAGIC = b"PK\x03\x04"
# Values longer than this (the pixel data of big multi-frame files) are left on disk, not read.
DEFER_BYTES = 1 << 20
CHUNK = 1 << 20
# What pydicom raises on a file it cannot parse (struct.error: a header cut inside a tag).
UNREADABLE = (InvalidDicomError, EOFError, ValueError, OSError, KeyError, struct.error, TypeError)
# Bytes per pixel of subsampled colour (C.7.6.3.1.2), as (numerator, denominator) of samples.
SUBSAMPLED = {"YBR_FULL_422": (2, 1), "YBR_PARTIAL_422": (2, 1), "YBR_PARTIAL_420": (3, 2)}


class RejectedFile(ValueError):
    """The file cannot be stored; the message is the reason shown to the uploader."""


@dataclass(frozen=True)
class DicomSummary:
    study_instance_uid: str
    sop_instance_uid: str
    patient_id: str
    patient_name: str = ""
    """(0010,0010) *Patient's Name* decoded with (0008,0005) *Specific Character Set*."""
    study_description: str = ""
    sop_class_uid: str = ""
    """(0008,0016) *SOP Class UID*: STOW-RS names it for each instance (PS3.18 10.5.3)."""


def inspect_dicom(path: Path, max_inflated_bytes: int = 1 << 30) -> DicomSummary:
    """Validate a Part-10 file and return its identifying UIDs (runs in an executor).

    ``max_inflated_bytes`` bounds what a Deflated file may inflate to; it is checked by
    streaming the inflation before pydicom (which inflates the whole dataset in memory) runs.
    """
    with path.open("rb") as fh:
        head = fh.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise RejectedFile("not a DICOM file")
    deflated = _is_deflated(path)
    if deflated:
        _check_inflation(path, max_inflated_bytes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # A deflated dataset is inflated in memory by pydicom: deferring a value there would
            # re-read the compressed file at an offset of the inflated stream.
            ds = dcmread(path, defer_size=None if deflated else DEFER_BYTES)
        except zlib.error as exc:
            raise RejectedFile(f"damaged deflate stream ({exc})") from exc
        except UNREADABLE as exc:
            raise RejectedFile(f"not a readable DICOM file ({exc})") from exc
        if any("End of file" in str(w.message) for w in caught):
            raise RejectedFile("truncated DICOM file (pixel data ends early)")
        # pydicom reads on in the encoding it finds; DCMTK (Orthanc) cannot, and refuses.
        for w in caught:
            if "VR, but found" in str(w.message):
                raise RejectedFile(
                    f"the dataset's encoding contradicts its transfer syntax ({w.message})"
                )
        # Converting values warns about the invalid ones (kept as text): recorded, not raised.
        _check_values(ds)
        study_uid = str(ds.get("StudyInstanceUID", "")).strip()
        sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
        if not study_uid or not sop_uid:
            raise RejectedFile("truncated or incomplete DICOM file (no Study or SOP Instance UID)")
        _check_pixel_data_complete(ds, path.stat().st_size)
        return DicomSummary(
            study_uid,
            sop_uid,
            str(ds.get("PatientID", "")),
            _text(ds, "PatientName"),
            _text(ds, "StudyDescription"),
            str(ds.get("SOPClassUID", "")).strip(),
        )


def _text(ds: Dataset, keyword: str) -> str:
    """A text element for the upload result; a value pydicom cannot decode shows as empty."""
    try:
        return str(ds.get(keyword, "") or "").strip()
    except (ValueError, LookupError, UnicodeError):
        return ""


def _is_deflated(path: Path) -> bool:
    try:
        meta = read_file_meta_info(path)
    except UNREADABLE as exc:
        raise RejectedFile(f"not a readable DICOM file ({exc})") from exc
    return str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian


def _meta_end(path: Path) -> int:
    """Where the dataset starts: after the preamble, 'DICM' and the group 0002 elements, whose
    (0002,0000) *File Meta Information Group Length* (PS3.10 7.1) says how long they are."""
    with path.open("rb") as fh:
        fh.seek(132)
        element = fh.read(12)
    if len(element) < 12 or element[:4] != b"\x02\x00\x00\x00":
        raise RejectedFile("deflated file without a File Meta Information Group Length")
    return 132 + 12 + int.from_bytes(element[8:12], "little")


def _check_inflation(path: Path, limit: int) -> None:
    """Inflate the dataset of a Deflated file chunk by chunk, keeping nothing: refuse a damaged
    or unfinished stream, and one that inflates to more than ``limit`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        with path.open("rb") as fh:
            fh.seek(_meta_end(path))
            while not inflater.eof and (chunk := fh.read(CHUNK)):
                while chunk and not inflater.eof:
                    total += len(inflater.decompress(chunk, CHUNK))
                    chunk = inflater.unconsumed_tail
                    if total > limit:
                        raise RejectedFile(
                            f"deflated data inflates to more than the limit ({limit >> 20} MB)"
                        )
    except zlib.error as exc:
        raise RejectedFile(f"damaged deflate stream ({exc})") from exc
    if not inflater.eof:
        raise RejectedFile("truncated deflate stream (the deflated data ends early)")


def _check_values(ds: Dataset) -> None:
    """Refuse number strings (IS, DS; PS3.5 6.2) that pydicom could not read as numbers.

    pydicom keeps such a value as the raw ``str`` and only warns; the first ``int()`` on it,
    anywhere downstream, would fail. Only IS, DS and sequence elements are converted here, so
    the pixel data (possibly deferred, on disk) is never read.
    """
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        vr = raw.VR if raw is not None else None
        if vr is None:
            vr = dictionary_VR(tag) if dictionary_has_tag(tag) else None
        if vr == "SQ":
            for item in ds[tag].value or ():
                _check_values(item)
            continue
        if vr not in ("IS", "DS"):
            continue
        element = ds[tag]
        if element.is_empty:
            continue
        values = element.value if element.VM > 1 else [element.value]
        for value in values:
            if value is not None and not isinstance(value, IS | DSfloat | DSdecimal | float):
                raise RejectedFile(
                    f"invalid value in {element.tag} {element.keyword or element.name}: "
                    f"{str(value)[:32]!r} is not a valid {element.VR} number"
                )


def _is_image_storage(ds: Dataset) -> bool:
    """Whether (0008,0016) *SOP Class UID* names an image storage class (which needs pixels)."""
    sop_class = ds.get("SOPClassUID")
    return sop_class is not None and "Image Storage" in str(getattr(sop_class, "name", ""))


def _unsigned(ds: Dataset, keyword: str, tag: str, default: int | None = None) -> int:
    """An Image Pixel module value (C.7.6.3) as a non-negative int, or a reason to refuse."""
    value = ds.get(keyword, default)
    if value is None:
        raise RejectedFile(f"image without {tag} {keyword}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RejectedFile(f"invalid value in {tag} {keyword}: {str(value)[:32]!r}")
    return int(value)


def expected_pixel_bytes(ds: Dataset) -> int:
    """The length of native (7FE0,0010) *Pixel Data* (without its padding byte).

    PS3.3 C.7.6.3.1: Rows x Columns x Samples per Pixel x Number of Frames samples of Bits
    Allocated bits each; Bits Allocated is 1 (packed bits, PS3.5 8.1.1) or a multiple of 8.
    Subsampled colour (C.7.6.3.1.2) stores fewer samples than pixels x 3: YBR_FULL_422 (and the
    retired YBR_PARTIAL_422) one Cb and one Cr per two pixels, 2 samples per pixel;
    YBR_PARTIAL_420 one Cb and one Cr per 2x2 block, 1.5 samples per pixel.
    """
    rows = _unsigned(ds, "Rows", "(0028,0010)")
    columns = _unsigned(ds, "Columns", "(0028,0011)")
    samples = _unsigned(ds, "SamplesPerPixel", "(0028,0002)", 1)
    allocated = _unsigned(ds, "BitsAllocated", "(0028,0100)")
    frames = _unsigned(ds, "NumberOfFrames", "(0028,0008)", 1) if ds.get("NumberOfFrames") else 1
    if allocated != 1 and (allocated == 0 or allocated % 8 or allocated > 64):
        raise RejectedFile(
            f"invalid (0028,0100) Bits Allocated {allocated}: 1 or a multiple of 8 (PS3.5 8.1.1)"
        )
    if samples not in (1, 3, 4):
        raise RejectedFile(f"invalid (0028,0002) Samples per Pixel {samples}")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    pixels = rows * columns * frames
    if photometric in SUBSAMPLED and samples == 3:
        numerator, denominator = SUBSAMPLED[photometric]
        count = pixels * numerator // denominator
    else:
        count = pixels * samples
    return (count * allocated + 7) // 8


def _check_pixel_data_complete(ds: Dataset, file_size: int) -> None:
    pixel_elements = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    has_pixels = any(name in ds for name in pixel_elements)
    if not has_pixels and ("Rows" in ds or _is_image_storage(ds)):
        raise RejectedFile("truncated DICOM file (image without pixel data)")
    if "PixelData" not in ds:
        return
    # The raw element, without reading a deferred value: its bytes present are counted on disk.
    element: Any = ds.get_item("PixelData", keep_deferred=True)
    if element.length == 0xFFFFFFFF:  # undefined length: encapsulated
        return
    expected = expected_pixel_bytes(ds)
    if isinstance(element.value, bytes):  # read (not deferred): what the dataset holds
        present = len(element.value)
    else:
        present = min(element.length, file_size - element.value_tell)
    if present < expected:
        raise RejectedFile(f"truncated DICOM file (pixel data {present} of {expected} bytes)")
