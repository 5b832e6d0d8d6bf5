"""The key images of a signed version as a DICOM Key Object Selection document (PS3.3 A.59).

Stored with the study in Orthanc beside the report's PDF and SR, so any PACS viewer that
honours KOS (most do: "key images" or "flagged images") opens the images the reader chose. The
title is (113000, DCM) "Of Interest" (CID 7010); the captions are its Key Object Description.
Made with highdicom from the referenced images' own headers (patient and study modules are taken
from them, re-labelled UTF-8 as the report's other objects are).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ..runtime.orthanc.client import OrthancClient
from ..storage import Database
from ..storage import key_images as store
from .dicom_objects import MANUFACTURER, utf8_reference
from .document import ReportDocument
from .key_images import instance_file
from .person_names import dicom_person_name

SERIES_NUMBER = 9903  # the report's PDF and SR series use their own numbers
TITLE = codes.DCM.OfInterest  # (113000, DCM, "Of Interest")
MAX_DESCRIPTION = 1024  # a TEXT content item is UT, but viewers show a line or two


def description(figures: list[dict[str, Any]]) -> str:
    """The captions, numbered as the PDF numbers its figures."""
    parts = [f"{n}. {f['caption'].strip()}" for n, f in enumerate(figures, 1) if f["caption"]]
    return "; ".join(parts)[:MAX_DESCRIPTION]


def key_object_document(
    document: ReportDocument, figures: list[dict[str, Any]], headers: list[Dataset]
) -> hd.ko.KeyObjectSelectionDocument:
    """The KOS naming ``headers`` (the key instances, once each, in figure order)."""
    evidence = [utf8_reference(h) for h in headers]
    text = description(figures)
    # the reader who chose the images (the report's writer), as the SR names them (TID 1002)
    reader = hd.sr.PersonObserverIdentifyingAttributes(
        name=document.signer_dicom_name or dicom_person_name(document.signer_name),
        organization_name=document.centre_name or None,
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person, observer_identifying_attributes=reader
    )
    content = hd.ko.KeyObjectSelection(
        document_title=TITLE,
        referenced_objects=evidence,
        observer_person_context=observer,
        description=text or None,
    )
    return hd.ko.KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=document.version,
        manufacturer=MANUFACTURER,
        institution_name=document.centre_name or None,
    )


def _header(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def _part10(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


async def _stored(orthanc: OrthancClient, sop_uid: str) -> bool:
    found = await orthanc.request(
        "POST", "/tools/lookup", data=sop_uid, headers={"Content-Type": "text/plain"}
    )
    return any(item.get("Type") == "Instance" for item in found or [])


async def store_key_object(
    orthanc: OrthancClient,
    database: Database,
    version_id: int,
    document: ReportDocument,
    orthanc_study_id: str,
) -> str | None:
    """Store the version's KOS in Orthanc (none without figures); its SOP Instance UID.

    Part of the ``orthanc`` delivery, so it is retried with it; a retry after the KOS was
    stored and recorded does not store a second one."""
    figures = await database.read(store.figures_of, version_id, False)
    if not figures:
        return None
    recorded = await database.read(store.kos_uid, version_id)
    if recorded and await _stored(orthanc, recorded):
        return recorded
    headers: list[Dataset] = []
    seen: set[str] = set()
    for figure in figures:
        if figure["sop_instance_uid"] in seen:
            continue
        seen.add(figure["sop_instance_uid"])
        data = await instance_file(orthanc, orthanc_study_id, figure["sop_instance_uid"])
        headers.append(await asyncio.to_thread(_header, data))
    kos = await asyncio.to_thread(key_object_document, document, figures, headers)
    await orthanc.store_instance(await asyncio.to_thread(_part10, kos))
    await database.write(store.set_kos_uid, version_id, str(kos.SOPInstanceUID))
    return str(kos.SOPInstanceUID)
