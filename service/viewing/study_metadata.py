"""A study's DICOM JSON metadata (PS3.18 F.2), read from one Orthanc study named by its id.

Orthanc keys a study by Patient ID and Study Instance UID together, so the same Study UID sent
with a second Patient ID is a second Orthanc study, and Orthanc's DICOMweb plugin, which finds
studies by UID, then answers "inexistent" (404) for both: the owner's viewer would fail for as
long as the second one is there. So a consultation's metadata is read from the consultation's
own Orthanc study: through the plugin (fast: it reads only what it needs) when Orthanc's index
says the UID names that study alone, else from the study's own files, converted with pydicom.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pydicom

from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..storage import RecordNotFound

PARALLEL_READS = 8


async def study_metadata(
    orthanc: OrthancClient,
    orthanc_study_id: str,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
) -> list[dict[str, Any]]:
    """The metadata of the Orthanc study ``orthanc_study_id`` (of UID ``study_uid``), or of one
    of its series or instances; RecordNotFound when it holds no such series or instance."""
    path = f"/dicom-web/studies/{study_uid}"
    if series_uid:
        path += f"/series/{series_uid}"
        if instance_uid:
            path += f"/instances/{instance_uid}"
    if await _uid_names_only(orthanc, study_uid, orthanc_study_id):
        try:
            return await orthanc.get(path + "/metadata")
        except OrthancUnavailable:
            raise
        except OrthancError:
            pass  # a second study of this UID arrived meanwhile, or the UID is not there
    return await _metadata_from_files(orthanc, orthanc_study_id, series_uid, instance_uid)


async def _uid_names_only(orthanc: OrthancClient, study_uid: str, orthanc_study_id: str) -> bool:
    """True when Orthanc holds exactly one study of this UID, and it is ``orthanc_study_id``."""
    found = await orthanc.request("POST", "/tools/lookup", data=study_uid)
    studies = [item.get("ID") for item in found or [] if item.get("Type") == "Study"]
    return studies == [orthanc_study_id]


async def _metadata_from_files(
    orthanc: OrthancClient,
    orthanc_study_id: str,
    series_uid: str | None,
    instance_uid: str | None,
) -> list[dict[str, Any]]:
    try:
        series = await orthanc.study_series(orthanc_study_id)
    except OrthancUnavailable:
        raise
    except OrthancError as exc:
        if exc.status == 404:
            raise RecordNotFound(f"study {orthanc_study_id}") from exc
        raise
    wanted = [
        s
        for s in series
        if not series_uid or s["MainDicomTags"].get("SeriesInstanceUID") == series_uid
    ]
    instance_ids = [i for s in wanted for i in s.get("Instances", [])]
    limit = asyncio.Semaphore(PARALLEL_READS)

    async def read(instance_id: str) -> dict[str, Any] | None:
        async with limit:
            try:
                content = await orthanc.get(f"/instances/{instance_id}/file")
            except OrthancUnavailable:
                raise
            except OrthancError:
                return None  # deleted meanwhile (e.g. moved to the quarantine)
        return await asyncio.to_thread(_dicom_json, content, instance_uid)

    items = [item for item in await asyncio.gather(*map(read, instance_ids)) if item]
    if not items and (series_uid or instance_uid):
        raise RecordNotFound(f"instance {instance_uid}" if instance_uid else f"series {series_uid}")
    return items


def _dicom_json(content: bytes, instance_uid: str | None) -> dict[str, Any] | None:
    """One file's data set as DICOM JSON, its pixel data as a bulk data URI as Orthanc's plugin
    writes it (teleread's routes rewrite its host: dicomweb_retrieve.with_bulk_uris); None:
    not the instance asked for."""
    dataset = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True, force=True)
    sop = str(dataset.get("SOPInstanceUID", ""))
    if instance_uid and sop != instance_uid:
        return None
    item = dataset.to_json_dict(bulk_data_threshold=1 << 30, suppress_invalid_tags=True)
    if "Rows" in dataset:
        study, series = dataset.get("StudyInstanceUID", ""), dataset.get("SeriesInstanceUID", "")
        uri = f"/studies/{study}/series/{series}/instances/{sop}/bulk/7fe00010"
        item["7FE00010"] = {"vr": "OW", "BulkDataURI": uri}
    return item
