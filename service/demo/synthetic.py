"""Synthetic DICOM studies for the demo, the tests and the benchmarks.

Real patient images cannot be shipped with the project, yet almost every part of
teleread (ingest, worklists, the viewer, the benchmarks) needs studies that look
like what a hospital PACS or a modality would send. This module builds them from
scratch with pydicom and numpy only:

* the tags are the ones a radiologist's worklist and viewer rely on (patient and
  study identification, dates, geometry, windowing), following the CT, MR, CR and
  DX Image IODs closely enough for Orthanc and common viewers to accept them;
* the pixels are simple anatomical phantoms with *known* values, generated from a
  seed derived from the instance number, so tests can assert on them (for example
  "the centre of a CT slice is soft tissue, about 40 HU") and two calls with the
  same :class:`StudySpec` give identical pixels (but new UIDs);
* the text is encoded in the requested *Specific Character Set*, because Chinese
  hospitals still send GB18030/GBK as well as UTF-8 and the service must cope with
  all of them.

Examples
--------
>>> spec = StudySpec("P001", "张三", "CT", "HEAD", instances=3, charset="GB18030")
>>> datasets = make_study(spec)
>>> len(datasets), datasets[0].Modality
(3, 'CT')
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.charset import python_encoding
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "DEFAULT_SIZES",
    "MANUFACTURER",
    "SOP_CLASSES",
    "SUPPORTED_CHARSETS",
    "StudySpec",
    "dataset_bytes",
    "make_study",
    "write_study",
]

#: Value of (0008,0070) *Manufacturer* so synthetic data is recognisable anywhere.
MANUFACTURER = "teleread-synthetic"

#: Storage SOP Class per modality. DX uses the *For Presentation* class because
#: the images are meant to be displayed as-is, like those a reading service receives.
SOP_CLASSES: dict[str, UID] = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
}

#: Default (rows, columns) per modality: typical matrix sizes for CT and MR; the
#: projection radiographs are kept at 1024 (real ones are 2-3k) so that generating
#: and sending them stays fast in tests and benchmarks.
DEFAULT_SIZES: dict[str, int] = {"CT": 512, "MR": 256, "CR": 1024, "DX": 1024}

#: Character sets teleread has to handle, mapped to the Python codec pydicom uses.
SUPPORTED_CHARSETS: dict[str, str] = {
    name: python_encoding[name] for name in ("ISO_IR 192", "GB18030", "GBK", "ISO_IR 100")
}

_BITS_STORED = 12  # all phantoms fit in 0..4095, as on most real CT/MR/CR devices
_MAX_STORED = (1 << _BITS_STORED) - 1
_CT_INTERCEPT = -1024
_SOFTWARE_VERSION = "teleread-synthetic 1"


@dataclass(frozen=True)
class StudySpec:
    """Description of one synthetic study (one series) to generate.

    Parameters
    ----------
    patient_id : str
        (0010,0020) *Patient ID*.
    patient_name : str
        (0010,0010) *Patient Name* in DICOM PN form, e.g. ``"WANG^FANG"`` or
        ``"张三"``; must be encodable in `charset`.
    modality : str
        ``"CT"``, ``"MR"``, ``"CR"`` or ``"DX"`` (case-insensitive; stored upper-case).
    body_part : str
        (0018,0015) *Body Part Examined*, e.g. ``"HEAD"``, ``"CHEST"``, ``"KNEE"``.
        ``HEAD``, ``CHEST`` and ``ABDOMEN`` get dedicated phantoms, anything else a
        generic one.
    instances : int
        Number of images in the series (slices for CT/MR; CR/DX usually 1-2).
    charset : str
        (0008,0005) *Specific Character Set*, one of :data:`SUPPORTED_CHARSETS`.
        All text (names, descriptions) is encoded with it when the files are written.
    accession_number : str
        (0008,0050) *Accession Number* (at most 16 characters).
    study_instance_uid : str or None
        Reuse an existing study UID (to add a series to a study); a new UID is
        generated on every :func:`make_study` call when ``None``.
    institution_name, study_description : str
        Free text; `study_description` defaults to ``"<modality> <body part>"``.
    patient_sex : str
        ``"M"``, ``"F"`` or ``"O"``.
    patient_birth_date : str
        ``YYYYMMDD`` or empty; when set, (0010,1010) *Patient Age* is derived.
    study_datetime : datetime or None
        Study date and time; "now" (local, naive) at :func:`make_study` time if ``None``.
    rows, columns : int or None
        Image matrix; defaults from :data:`DEFAULT_SIZES`. If only one is given the
        image is square.
    referring_physician_name : str
        (0008,0090) *Referring Physician's Name* (PN, may be empty).
    series_number : int
        (0020,0011) *Series Number*, useful when adding series to an existing study.
    series_description : str
        Defaults to a modality/body-part specific description.
    """

    patient_id: str
    patient_name: str
    modality: str
    body_part: str
    instances: int = 1
    charset: str = "ISO_IR 192"
    accession_number: str = ""
    study_instance_uid: str | None = None
    institution_name: str = ""
    study_description: str = ""
    patient_sex: str = "O"
    patient_birth_date: str = ""
    study_datetime: datetime | None = None
    rows: int | None = None
    columns: int | None = None
    referring_physician_name: str = ""
    series_number: int = 1
    series_description: str = ""

    def __post_init__(self) -> None:
        """Normalise and validate eagerly.

        Failing here, with the offending field named, is far easier to debug than a
        pydicom encoding warning (or a silently mangled name) at write time.
        """
        object.__setattr__(self, "modality", self.modality.strip().upper())
        object.__setattr__(self, "body_part", self.body_part.strip().upper())
        if self.modality not in SOP_CLASSES:
            raise ValueError(
                f"unsupported modality {self.modality!r}; expected one of {sorted(SOP_CLASSES)}"
            )
        if self.charset not in SUPPORTED_CHARSETS:
            raise ValueError(
                f"unsupported charset {self.charset!r}; expected one of "
                f"{sorted(SUPPORTED_CHARSETS)}"
            )
        if self.instances < 1:
            raise ValueError("instances must be at least 1")
        for name in ("rows", "columns"):
            value = getattr(self, name)
            if value is not None and not 16 <= value <= 4096:
                raise ValueError(f"{name} must be between 16 and 4096, got {value}")
        if len(self.accession_number) > 16:
            raise ValueError("accession_number is limited to 16 characters (VR SH)")
        if len(self.patient_id) > 64:
            raise ValueError("patient_id is limited to 64 characters (VR LO)")
        if self.patient_sex not in ("M", "F", "O", ""):
            raise ValueError("patient_sex must be 'M', 'F', 'O' or empty")
        if self.patient_birth_date:
            datetime.strptime(self.patient_birth_date, "%Y%m%d")  # raises ValueError
        codec = SUPPORTED_CHARSETS[self.charset]
        for name in (
            "patient_id",
            "patient_name",
            "institution_name",
            "study_description",
            "series_description",
            "referring_physician_name",
        ):
            try:
                getattr(self, name).encode(codec)
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} cannot be encoded in charset "
                    f"{self.charset!r} (codec {codec!r})"
                ) from exc

    @property
    def shape(self) -> tuple[int, int]:
        """Image matrix as ``(rows, columns)`` after applying the defaults."""
        default = DEFAULT_SIZES[self.modality]
        rows = self.rows or self.columns or default
        columns = self.columns or self.rows or default
        return rows, columns


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def make_study(spec: StudySpec) -> list[Dataset]:
    """Build the datasets of one synthetic study.

    Parameters
    ----------
    spec : StudySpec
        What to generate.

    Returns
    -------
    list of pydicom.Dataset
        ``spec.instances`` datasets of a single new series, ordered by
        *Instance Number*, each with complete file meta information (Explicit VR
        Little Endian) so it can be written or sent as-is. Study, Series and Frame
        of Reference UIDs are shared; SOP Instance UIDs are new on every call,
        whereas pixels are deterministic for a given spec.
    """
    study_dt = spec.study_datetime or datetime.now().replace(microsecond=0)
    series_dt = study_dt + timedelta(minutes=1)
    study_uid = UID(spec.study_instance_uid) if spec.study_instance_uid else generate_uid()
    series_uid = generate_uid()
    frame_of_reference_uid = generate_uid()
    rows, columns = spec.shape

    datasets = []
    for number in range(1, spec.instances + 1):
        ds = _base_dataset(spec, study_dt, series_dt, study_uid, series_uid, number)
        content_dt = series_dt + timedelta(seconds=number)
        ds.AcquisitionDate = _da(content_dt)
        ds.AcquisitionTime = _tm(content_dt)
        ds.ContentDate = _da(content_dt)
        ds.ContentTime = _tm(content_dt)
        if spec.modality in ("CT", "MR"):
            _add_cross_sectional(ds, spec, number, frame_of_reference_uid, rows, columns)
        else:
            _add_projection(ds, spec, number, rows, columns)
        datasets.append(ds)
    return datasets


def dataset_bytes(ds: Dataset) -> bytes:
    """Encode `ds` as a complete DICOM Part-10 file in memory.

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset with file meta information (as produced by :func:`make_study`).

    Returns
    -------
    bytes
        128-byte preamble, ``DICM`` prefix, group 0002 file meta and the dataset,
        i.e. exactly what would be on disk. This is what STOW-RS / Orthanc's
        ``POST /instances`` expect, and avoids a temporary file per upload.
    """
    buffer = BytesIO()
    # enforce_file_format=True writes the preamble and validates/fills the file meta
    # (the pydicom 3 replacement for the deprecated write_like_original=False).
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_study(datasets: Iterable[Dataset], directory: Path) -> list[Path]:
    """Write each dataset to ``directory/<SOPInstanceUID>.dcm``.

    Parameters
    ----------
    datasets : iterable of pydicom.Dataset
        Usually the result of :func:`make_study`.
    directory : pathlib.Path
        Created (with parents) if missing. Naming files by SOP Instance UID keeps
        several studies in one directory from overwriting each other.

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of `datasets`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        path.write_bytes(dataset_bytes(ds))
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------


def _da(value: datetime) -> str:
    """Format a DICOM DA (``YYYYMMDD``)."""
    return value.strftime("%Y%m%d")


def _tm(value: datetime) -> str:
    """Format a DICOM TM (``HHMMSS``)."""
    return value.strftime("%H%M%S")


def _ds(value: float) -> str:
    """Format a DICOM DS; pydicom warns on strings over 16 characters otherwise."""
    return format_number_as_ds(float(value))


def _patient_age(birth_date: str, on: date) -> str:
    """Return an AS value such as ``"045Y"`` (or ``"011M"`` for infants)."""
    born = datetime.strptime(birth_date, "%Y%m%d").date()
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = max(0, (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day))
    return f"{months:03d}M"


def _study_id(spec: StudySpec, study_uid: str) -> str:
    """Derive a stable (0020,0010) *Study ID* (SH, at most 16 characters)."""
    if spec.accession_number:
        return spec.accession_number
    return str(zlib.crc32(study_uid.encode("ascii")))


def _base_dataset(
    spec: StudySpec,
    study_dt: datetime,
    series_dt: datetime,
    study_uid: UID,
    series_uid: UID,
    number: int,
) -> Dataset:
    """Patient, study, series, equipment and SOP common tags plus file meta."""
    sop_class = SOP_CLASSES[spec.modality]
    sop_instance = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    # Set first: pydicom encodes every text element with the dataset's charset.
    ds.SpecificCharacterSet = spec.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = _da(study_dt)
    ds.SeriesDate = _da(series_dt)
    ds.StudyTime = _tm(study_dt)
    ds.SeriesTime = _tm(series_dt)
    ds.AccessionNumber = spec.accession_number
    ds.Modality = spec.modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = spec.institution_name
    ds.ReferringPhysicianName = spec.referring_physician_name
    ds.StationName = "TELEREAD-SIM"
    ds.StudyDescription = spec.study_description or f"{spec.modality} {spec.body_part}"
    ds.SeriesDescription = spec.series_description or _series_description(spec)
    ds.ManufacturerModelName = f"phantom-{spec.modality.lower()}"
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.patient_birth_date
    ds.PatientSex = spec.patient_sex
    if spec.patient_birth_date:
        ds.PatientAge = _patient_age(spec.patient_birth_date, study_dt.date())
    ds.BodyPartExamined = spec.body_part
    ds.SoftwareVersions = _SOFTWARE_VERSION
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = _study_id(spec, study_uid)
    ds.SeriesNumber = spec.series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    return ds


def _series_description(spec: StudySpec) -> str:
    """Plausible default series description per modality."""
    return {
        "CT": f"{spec.body_part} AXIAL 5mm",
        "MR": f"{spec.body_part} T1 SE AX",
        "CR": f"{spec.body_part} PA",
        "DX": f"{spec.body_part} PA",
    }[spec.modality]


def _add_cross_sectional(
    ds: Dataset,
    spec: StudySpec,
    number: int,
    frame_of_reference_uid: UID,
    rows: int,
    columns: int,
) -> None:
    """Geometry, acquisition and pixel tags of an axial CT or MR slice."""
    is_ct = spec.modality == "CT"
    fov = 240.0 if spec.body_part == "HEAD" else (180.0 if spec.body_part == "KNEE" else 380.0)
    if not is_ct:
        fov = min(fov, 240.0)
    spacing = fov / max(rows, columns)
    thickness = 5.0
    z = (number - 1 - (spec.instances - 1) / 2) * thickness

    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [
        _ds(-(columns - 1) / 2 * spacing),
        _ds(-(rows - 1) / 2 * spacing),
        _ds(z),
    ]
    ds.SliceThickness = _ds(thickness)
    ds.SliceLocation = _ds(z)
    ds.PixelSpacing = [_ds(spacing), _ds(spacing)]

    position = _slice_position(number, spec.instances)
    seed = np.random.default_rng([_modality_code(spec.modality), number])
    if is_ct:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = "120"
        ds.XRayTubeCurrent = 250
        ds.ExposureTime = 1000
        ds.ConvolutionKernel = "STANDARD"
        ds.ReconstructionDiameter = _ds(fov)
        ds.GantryDetectorTilt = "0"
        ds.RescaleIntercept = str(_CT_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.WindowCenterWidthExplanation = "SOFT TISSUE"
        hu = _ct_phantom(rows, columns, spec.body_part, position, seed)
        pixels = np.clip(np.rint(hu) - _CT_INTERCEPT, 0, _MAX_STORED).astype("<u2")
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "se2d1"
        ds.RepetitionTime = "500"
        ds.EchoTime = "15"
        ds.EchoTrainLength = 1
        ds.FlipAngle = "90"
        ds.MagneticFieldStrength = "1.5"
        ds.ImagingFrequency = "63.87"
        ds.ImagedNucleus = "1H"
        ds.SpacingBetweenSlices = _ds(thickness)
        ds.WindowCenter = "500"
        ds.WindowWidth = "1000"
        signal = _mr_phantom(rows, columns, spec.body_part, position, seed)
        pixels = np.clip(np.rint(signal), 0, _MAX_STORED).astype("<u2")
    ds.set_pixel_data(pixels, "MONOCHROME2", _BITS_STORED, generate_instance_uid=False)


def _add_projection(ds: Dataset, spec: StudySpec, number: int, rows: int, columns: int) -> None:
    """Acquisition and pixel tags of a CR or DX radiograph (MONOCHROME1)."""
    spacing = 430.0 / max(rows, columns)  # a 43 cm detector, as for chest imaging
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = "PA" if spec.body_part == "CHEST" else "AP"
    ds.PatientOrientation = ["L", "F"]
    ds.KVP = "110" if spec.body_part == "CHEST" else "70"
    ds.DistanceSourceToDetector = "1800"
    ds.ImagerPixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.WindowCenter = "2048"
    ds.WindowWidth = "3600"
    if spec.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.PixelIntensityRelationship = "LOG"
        # +1: lower stored values mean less X-ray intensity reaching the detector.
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.PresentationLUTShape = "INVERSE"
    seed = np.random.default_rng([_modality_code(spec.modality), number])
    brightness = _radiograph_phantom(rows, columns, spec.body_part, number, seed)
    # MONOCHROME1: the lowest value is displayed white, so dense (bright) anatomy
    # gets low values and direct exposure outside the patient the highest ones.
    stored = 300.0 + 3500.0 * (1.0 - brightness)
    pixels = np.clip(np.rint(stored), 0, _MAX_STORED).astype("<u2")
    ds.set_pixel_data(pixels, "MONOCHROME1", _BITS_STORED, generate_instance_uid=False)


# ---------------------------------------------------------------------------
# Pixel phantoms
# ---------------------------------------------------------------------------


def _modality_code(modality: str) -> int:
    """Stable integer per modality, mixed into the seed so modalities differ."""
    return list(SOP_CLASSES).index(modality) + 1


def _slice_position(number: int, instances: int) -> float:
    """Position of a slice in the stack, from -1 (first) to +1 (last); 0 if single."""
    if instances == 1:
        return 0.0
    return 2.0 * (number - 1) / (instances - 1) - 1.0


def _grid(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates ``(y, x)`` in [-1, 1], as float32 for speed."""
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, columns, dtype=np.float32)[None, :]
    return y, x


def _ellipse(
    y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    """Squared normalised radius: < 1 inside the ellipse, 1 on its border."""
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2


def _ct_phantom(
    rows: int, columns: int, body_part: str, position: float, rng: np.random.Generator
) -> np.ndarray:
    """Axial CT slice in Hounsfield units.

    Air (-1000 HU) outside a soft-tissue body ellipse (40 HU) with a bone ring
    (1000 HU: the skull, or ribs interrupted by intercostal spaces) and a few organs.
    The central region is always soft tissue so tests can probe it. The body
    shrinks towards the ends of the stack and organs move, so slices differ.
    """
    y, x = _grid(rows, columns)
    scale = 1.0 - 0.15 * position**2
    head = body_part == "HEAD"
    ry, rx = (0.85 * scale, 0.70 * scale) if head else (0.62 * scale, 0.85 * scale)
    r = _ellipse(y, x, 0.0, 0.0, ry, rx)

    hu = np.full((rows, columns), -1000.0, dtype=np.float32)
    hu[r < 1.0] = 40.0
    if head:
        hu[(r < 0.90) & (r >= 0.78)] = 1000.0  # skull
        for side in (-1.0, 1.0):  # lateral ventricles (CSF), either side of the midline
            ventricle = _ellipse(y, x, -0.05, side * 0.12, 0.22 * (1.2 - abs(position)), 0.06)
            hu[ventricle < 1.0] = 5.0
    else:
        hu[(r < 1.0) & (r >= 0.86)] = -100.0  # subcutaneous fat
        angle = np.arctan2(y / ry, x / rx)
        ribs = np.cos(14.0 * angle + 3.0 * position) > 0.2
        hu[(r < 0.86) & (r >= 0.76) & ribs] = 1000.0
        hu[_ellipse(y, x, 0.45 * scale, 0.0, 0.11, 0.09) < 1.0] = 700.0  # vertebral body
        if body_part == "CHEST":
            for side in (-1.0, 1.0):
                lung = _ellipse(y, x, -0.05, side * 0.40 * scale, 0.38 * scale, 0.25 * scale)
                hu[lung < 1.0] = -850.0
        elif body_part == "ABDOMEN":
            liver = _ellipse(y, x, -0.10, -0.40 * scale, 0.30 * scale, 0.25 * scale)
            hu[liver < 1.0] = 60.0
            kidney = _ellipse(y, x, 0.25, 0.32, 0.10, 0.07)
            hu[kidney < 1.0] = 30.0
        # a low-density lesion that drifts through the stack
        lesion = _ellipse(y, x, -0.35 + 0.2 * position, 0.25, 0.06, 0.06)
        hu[(lesion < 1.0) & (hu > -200.0) & (hu < 200.0)] = 10.0
    hu += rng.normal(0.0, 8.0, size=hu.shape).astype(np.float32)
    return hu


def _mr_phantom(
    rows: int, columns: int, body_part: str, position: float, rng: np.random.Generator
) -> np.ndarray:
    """T1-like axial MR slice in arbitrary signal units (0..~1000).

    A head: bright scalp fat, dark skull, CSF, grey and white matter and lateral
    ventricles; other body parts get a limb/torso-like ellipse with fat, muscle
    and marrow. Noise is rectified, as MR magnitude images are.
    """
    y, x = _grid(rows, columns)
    scale = 1.0 - 0.15 * position**2
    signal = np.zeros((rows, columns), dtype=np.float32)
    if body_part == "HEAD":
        r = _ellipse(y, x, 0.0, 0.0, 0.85 * scale, 0.70 * scale)
        signal[r < 1.0] = 900.0  # scalp fat
        signal[r < 0.92] = 60.0  # skull
        signal[r < 0.82] = 250.0  # CSF
        signal[r < 0.76] = 600.0  # grey matter
        signal[r < 0.60] = 800.0  # white matter
        for side in (-1.0, 1.0):
            ventricle = _ellipse(y, x, -0.05, side * 0.12, 0.22 * (1.2 - abs(position)), 0.06)
            signal[ventricle < 1.0] = 250.0
    else:
        r = _ellipse(y, x, 0.0, 0.0, 0.70 * scale, 0.80 * scale)
        signal[r < 1.0] = 850.0  # subcutaneous fat
        signal[r < 0.85] = 450.0  # muscle
        for cx in (-0.35, 0.35):
            bone = _ellipse(y, x, 0.1 * position, cx, 0.16, 0.16)
            signal[bone < 1.0] = 40.0  # cortical bone
            signal[bone < 0.6] = 700.0  # fatty marrow
    signal += np.abs(rng.normal(0.0, 12.0, size=signal.shape)).astype(np.float32)
    return signal


def _radiograph_phantom(
    rows: int, columns: int, body_part: str, number: int, rng: np.random.Generator
) -> np.ndarray:
    """Projection radiograph as display brightness in [0, 1] (1 = dense, white).

    A chest gets lungs, mediastinum/heart, spine and ribs; other body parts a
    soft-tissue silhouette with a bone shaft and a joint space. Successive
    instances differ slightly (positioning), like a repeat exposure.
    """
    y, x = _grid(rows, columns)
    shift = 0.02 * (number - 1)
    bright = np.zeros((rows, columns), dtype=np.float32)
    if body_part == "CHEST":
        body = _ellipse(y, x, 0.15, shift, 1.10, 0.85)
        bright[body < 1.0] = 0.45
        lungs = np.zeros_like(bright, dtype=bool)
        for side in (-1.0, 1.0):
            lungs |= _ellipse(y, x, -0.05, side * 0.38 + shift, 0.62, 0.26) < 1.0
        bright[lungs] = 0.15
        ribs = np.sin(18.0 * (y + 0.35 * x**2)) > 0.75
        bright[lungs & ribs] += 0.18
        bright[_ellipse(y, x, 0.25, 0.10 + shift, 0.30, 0.26) < 1.0] = 0.62  # heart
        bright[(np.abs(x - shift) < 0.07) & (body < 1.0)] = 0.78  # spine
        clavicles = np.abs(y + 0.62 + 0.25 * np.abs(x)) < 0.03
        bright[clavicles & (np.abs(x) < 0.6)] = 0.80
    else:
        body = _ellipse(y, x, 0.0, shift, 1.20, 0.45)
        bright[body < 1.0] = 0.40
        shaft = (np.abs(x - shift) < 0.16) & (np.abs(y) > 0.06)
        bright[shaft & (body < 1.0)] = 0.80
        bright[(np.abs(x - shift) < 0.10) & (np.abs(y) > 0.06) & (body < 1.0)] = 0.65  # marrow
    bright += rng.normal(0.0, 0.01, size=bright.shape).astype(np.float32)
    return np.clip(bright, 0.0, 1.0)
