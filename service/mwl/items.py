"""One worklist item: an open request as a DICOM Modality Worklist dataset, in a Part-10 file.

The attributes are those of the Modality Worklist Information Model (PS3.4 K.6.1.2) that a
modality copies into the study it acquires: the patient module, (0008,0050) *Accession Number*
and (0020,000D) *Study Instance UID* (so the study comes back to the same consultation, by
accession number as requests filed before images always did, service/intake/intake.py), the
requested procedure and one (0040,0100) *Scheduled Procedure Step Sequence* item naming the
modality and the (0040,0001) *Scheduled Station AE Title*: the requesting facility's, which is
what Orthanc's plugin filters on (service/runtime/orthanc/process.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..clock import from_iso
from ..storage.facilities import CHARACTER_SETS, DEFAULT_CHARACTER_SET

#: Modality Worklist Information Model - FIND (PS3.4 K.6.1), the class these files describe.
WORKLIST_SOP_CLASS = "1.2.840.10008.5.1.4.31"

#: (0040,1003) *Requested Procedure Priority* for a consultation's priority.
PRIORITIES = {"stat": "STAT", "urgent": "HIGH", "routine": "ROUTINE"}

SH, LO, PN = 16, 64, 64  # maximum lengths, in characters, of the value representations used


class UnfitItem(ValueError):
    """A request that cannot be a worklist item as it is (the message says why)."""


@dataclass(frozen=True)
class WorklistItem:
    """What a modality is told about one scheduled request."""

    consultation_id: int
    station_aet: str
    modality: str
    character_set: str
    scheduled_at: datetime  # in the facility's time zone (:func:`scheduled_start`)
    accession_number: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    procedure: str = ""
    priority: str = "routine"
    referring_physician: str = ""

    @property
    def file_name(self) -> str:
        """The plugin reads only files ending ``.wl``; one per consultation, found again by id."""
        return f"{self.consultation_id}.wl"

    @property
    def step_id(self) -> str:
        """(0040,0009) / (0040,1001): the consultation, by an id the modality can show."""
        return f"TR{self.consultation_id}"


def item_of(row: Mapping[str, Any], now: datetime) -> WorklistItem:
    """The item of an open request (a row of storage.modality_worklist.scheduled_requests).

    Raises :class:`UnfitItem` for a request the modality could not send back: no accession number
    and no Study UID, or identifiers longer than DICOM allows.
    """
    accession = _text(row.get("accession_number"))
    study_uid = _text(row.get("study_instance_uid"))
    patient_id = _text(row.get("patient_id"))
    if not accession and not study_uid:
        raise UnfitItem("neither an accession number nor a Study UID to find the study by")
    if len(accession) > SH or len(patient_id) > LO:
        raise UnfitItem("accession number or patient ID longer than DICOM allows")
    charset = row.get("character_set") or DEFAULT_CHARACTER_SET
    if charset not in CHARACTER_SETS:
        raise UnfitItem(f"unsupported character set {charset!r}")
    modality = _text(row["modality"]).upper()
    return WorklistItem(
        consultation_id=int(row["id"]),
        station_aet=row["facility_aet"],
        modality=modality,
        character_set=charset,
        scheduled_at=scheduled_start(row["requested_at"], row.get("facility_timezone"), now),
        accession_number=accession,
        study_instance_uid=study_uid,
        patient_id=patient_id,
        patient_name=_text(row.get("patient_name"))[:PN],
        patient_birth_date=_dicom_date(row.get("patient_birth_date")),
        patient_sex=_text(row.get("patient_sex")).upper()[:1],
        procedure=_procedure(row, modality),
        priority=row.get("priority") or "routine",
        referring_physician=_text(row.get("requester_dicom_name") or row.get("requester_name"))[
            :PN
        ],
    )


def _text(value: object) -> str:
    """A stored value as a single DICOM value: a backslash would split it into several."""
    return str(value or "").replace("\\", " ").strip()


def _procedure(row: Mapping[str, Any], modality: str) -> str:
    named = _text(row.get("requested_procedure"))
    return (named or f"{modality} {_text(row.get('body_part'))}".strip())[:LO]


def _dicom_date(value: object) -> str:
    """``YYYYMMDD`` from ``YYYY-MM-DD`` or ``YYYYMMDD``; empty for anything else."""
    digits = _text(value).replace("-", "")
    return digits if len(digits) == 8 and digits.isdigit() else ""


def scheduled_start(requested_at: str, timezone: str | None, now: datetime) -> datetime:
    """When the step is scheduled, in the facility's local time: as soon as the request was
    filed, and for one still waiting from an earlier day, today from midnight, since many
    modalities ask only for today's steps (0040,0002). The folder is rewritten after midnight."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    filed = from_iso(requested_at).astimezone(zone)
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(filed, today)


def dataset_of(item: WorklistItem) -> Dataset:
    """The worklist item's attributes (PS3.4 Table K.6-1), encoded in the facility's charset."""
    ds = Dataset()
    ds.SpecificCharacterSet = item.character_set
    ds.AccessionNumber = item.accession_number
    ds.ReferringPhysicianName = item.referring_physician
    ds.PatientName = item.patient_name
    ds.PatientID = item.patient_id
    ds.PatientBirthDate = item.patient_birth_date
    ds.PatientSex = item.patient_sex
    if item.study_instance_uid:
        ds.StudyInstanceUID = item.study_instance_uid
    ds.RequestedProcedureDescription = item.procedure
    ds.RequestedProcedureID = item.step_id
    ds.RequestedProcedurePriority = PRIORITIES.get(item.priority, "ROUTINE")
    step = Dataset()
    step.Modality = item.modality
    step.ScheduledStationAETitle = item.station_aet
    step.ScheduledProcedureStepStartDate = item.scheduled_at.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = item.scheduled_at.strftime("%H%M%S")
    step.ScheduledProcedureStepDescription = item.procedure
    step.ScheduledProcedureStepID = item.step_id
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def file_bytes(item: WorklistItem) -> bytes:
    """The item as a DICOM Part-10 file. The same item always gives the same bytes (its
    instance UID is derived from the item), so an unchanged item is never rewritten."""
    ds = dataset_of(item)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WORKLIST_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["teleread-mwl", str(item.consultation_id), repr(item)]
    )
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
