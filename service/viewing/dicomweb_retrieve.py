"""WADO-RS (PS3.18 10.4): a study's instances, frames and bulk data, read from the
consultation's own Orthanc study (by Orthanc id, never by UID alone: see study_metadata.py).

Instances are passed on from Orthanc as they arrive (a study is never held whole), transcoded
by Orthanc (``/instances/{id}/modify`` with ``Transcode``, UIDs kept) when the client asked for
another syntax. Frames come from Orthanc's raw frame access (``/frames/{n}/raw``: the stored
bytes, compressed or not) or, when a compressed frame must be sent uncompressed, are decoded
here with pydicom on a worker thread. Bulk data URIs in metadata are rewritten to point at
teleread, which alone may be reached by clients.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pydicom

from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..storage import RecordNotFound
from .dicomweb_media import ANY, FrameChoice

PIXEL_DATA = "7FE00010"
_BULK = re.compile(r"^.*?/studies/")


@dataclass(frozen=True)
class StoredInstance:
    """One instance of a consultation's Orthanc study."""

    series_uid: str
    sop_uid: str
    orthanc_id: str


def _int(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


async def _get(orthanc: OrthancClient, path: str) -> Any:
    """An Orthanc resource; a 404 (gone, e.g. quarantined meanwhile) as RecordNotFound."""
    try:
        return await orthanc.get(path)
    except OrthancUnavailable:
        raise
    except OrthancError as exc:
        if exc.status == 404:
            raise RecordNotFound(path) from exc
        raise


async def stored_instances(
    orthanc: OrthancClient,
    orthanc_study_id: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> list[StoredInstance]:
    """The study's instances (of one series, or the one instance), in series and instance
    number order; RecordNotFound when the study holds no such series or instance."""
    series = await _get(orthanc, f"/studies/{orthanc_study_id}/series")
    series.sort(key=lambda s: _int(s["MainDicomTags"].get("SeriesNumber")))
    found: list[StoredInstance] = []
    for entry in series:
        uid = entry["MainDicomTags"].get("SeriesInstanceUID", "")
        if series_uid and uid != series_uid:
            continue
        instances = await _get(orthanc, f"/series/{entry['ID']}/instances")
        instances.sort(key=lambda i: _int(i["MainDicomTags"].get("InstanceNumber")))
        found += [
            StoredInstance(uid, i["MainDicomTags"].get("SOPInstanceUID", ""), i["ID"])
            for i in instances
            if not sop_uid or i["MainDicomTags"].get("SOPInstanceUID") == sop_uid
        ]
    if not found:
        raise RecordNotFound(f"instance {sop_uid}" if sop_uid else f"series {series_uid}")
    return found


async def stored_syntax(orthanc: OrthancClient, orthanc_id: str) -> str:
    """(0002,0010) Transfer Syntax UID of the stored file, as Orthanc recorded it."""
    raw = await _get(orthanc, f"/instances/{orthanc_id}/metadata/TransferSyntax")
    return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()


async def instance_file(
    orthanc: OrthancClient, orthanc_id: str, syntax: str
) -> tuple[str, AsyncIterator[bytes]]:
    """The syntax the file will be in, and its bytes as they come: as stored for ``*`` or
    when stored in ``syntax``, else transcoded by Orthanc."""
    stored = await stored_syntax(orthanc, orthanc_id)
    if syntax in (ANY, stored):
        return stored, orthanc.stream("GET", f"/instances/{orthanc_id}/file")
    body = {"Transcode": syntax, "Force": True, "Keep": ["SOPInstanceUID"]}
    return syntax, orthanc.stream("POST", f"/instances/{orthanc_id}/modify", json=body)


async def frames(
    orthanc: OrthancClient, orthanc_id: str, numbers: list[int], choice: FrameChoice
) -> list[bytes]:
    """The frames ``numbers`` (1-based) as ``choice`` says: stored bytes, or decoded."""
    if choice.decode:
        content = await _get(orthanc, f"/instances/{orthanc_id}/file")
        return await asyncio.to_thread(native_frames, content, numbers)
    return list(
        await asyncio.gather(
            *(_get(orthanc, f"/instances/{orthanc_id}/frames/{n - 1}/raw") for n in numbers)
        )
    )


def native_frames(content: bytes, numbers: list[int]) -> list[bytes]:
    """Frames decoded to native little-endian pixel values (PS3.5 8.1.1); colour as RGB."""
    dataset = pydicom.dcmread(io.BytesIO(content), force=True)
    pixels = dataset.pixel_array
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    selected = (pixels[n - 1] if count > 1 else pixels for n in numbers)
    return [f.astype(f.dtype.newbyteorder("<"), copy=False).tobytes() for f in selected]


async def bulk_value(orthanc: OrthancClient, orthanc_id: str, path: str) -> bytes:
    """The value an instance's bulk data URI names: ``tag`` or ``tag/item/tag...`` (items
    counted from 0); RecordNotFound when there is none."""
    content = await _get(orthanc, f"/instances/{orthanc_id}/file")
    value = await asyncio.to_thread(_bulk_value, content, path)
    if value is None:
        raise RecordNotFound(f"bulk data {path}")
    return value


def _bulk_value(content: bytes, path: str) -> bytes | None:
    dataset: Any = pydicom.dcmread(io.BytesIO(content), force=True)
    parts = [p for p in path.split("/") if p]
    try:
        for i, part in enumerate(parts):
            if i % 2:
                dataset = dataset[int(part)]
                continue
            element = dataset[int(part, 16)]
            if i == len(parts) - 1:
                return element.value if isinstance(element.value, bytes) else None
            dataset = element.value
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return None


def with_bulk_uris(data: Any, base: str) -> Any:
    """Metadata whose BulkDataURIs (Orthanc's addresses) point at teleread's ``base``
    (``https://host/dicom-web``) instead."""
    if isinstance(data, list):
        return [with_bulk_uris(v, base) for v in data]
    if isinstance(data, dict):
        return {
            k: _BULK.sub(f"{base}/studies/", v)
            if k == "BulkDataURI" and isinstance(v, str)
            else with_bulk_uris(v, base)
            for k, v in data.items()
        }
    return data
