"""Facilities' AE titles registered with Orthanc as known DICOM modalities.

Orthanc keeps them in its database (``DicomModalitiesInDatabase``); the service re-registers every
facility at start-up so the two never drift apart.
"""

from __future__ import annotations

import logging
from typing import Any

from .orthanc.client import OrthancClient
from .storage import Database
from .storage import facilities as facility_store

log = logging.getLogger(__name__)

PLACEHOLDER_HOST = "127.0.0.1"
PLACEHOLDER_PORT = 104


def modality_entry(facility: dict[str, Any]) -> dict[str, Any]:
    """Orthanc's description of a facility's modality (host/port only matter for sending back)."""
    return {
        "name": facility["aet"],
        "aet": facility["aet"],
        "host": facility.get("dicom_host") or PLACEHOLDER_HOST,
        "port": facility.get("dicom_port") or PLACEHOLDER_PORT,
    }


async def register_facility(orthanc: OrthancClient, facility: dict[str, Any]) -> None:
    entry = modality_entry(facility)
    await orthanc.put_modality(entry["name"], entry["aet"], entry["host"], entry["port"])


async def sync_facilities(orthanc: OrthancClient, database: Database) -> int:
    facilities = await database.read(facility_store.list_facilities)
    for facility in facilities:
        await register_facility(orthanc, facility)
    log.info("registered %d facility AE titles with Orthanc", len(facilities))
    return len(facilities)
