"""Facilities as administrators create and change them, kept registered with Orthanc.

The database is the truth: a facility is created or changed even when Orthanc cannot be reached,
and the answer says whether Orthanc took the AE title (start-up registers every facility again,
see :mod:`service.intake.modalities`). A changed AE title is registered anew and the old one
removed, so Orthanc keeps knowing exactly the consortium's AE titles.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from ..runtime.orthanc.client import OrthancClient, OrthancError
from ..storage import Database
from ..storage import facilities as facility_store
from .modalities import modality_entry, register_facility

log = logging.getLogger(__name__)

# Fields that Orthanc's modality entry is built from.
_ORTHANC_FIELDS = {"aet", "dicom_host", "dicom_port"}


@dataclass(frozen=True)
class NewFacility:
    name: str
    kind: str
    aet: str
    timezone: str
    contact: str = ""
    dicom_host: str | None = None
    dicom_port: int | None = None
    hl7_code: str | None = None
    hl7_endpoint: str | None = None
    character_set: str = "ISO_IR 192"


@dataclass(frozen=True)
class FacilityChanged:
    changes: dict[str, Any]
    registered: bool | None  # None: nothing Orthanc knows about changed


async def _register(orthanc: OrthancClient, facility: dict[str, Any]) -> bool:
    try:
        await register_facility(orthanc, facility)
    except OrthancError as exc:
        log.warning("could not register AE title %s with Orthanc: %s", facility["aet"], exc)
        return False
    return True


async def _unregister(orthanc: OrthancClient, aet: str) -> None:
    name = modality_entry({"aet": aet})["name"]
    try:
        await orthanc.request_every_door("DELETE", f"/modalities/{name}")
    except OrthancError as exc:
        if exc.status != 404:
            log.warning("could not remove the old AE title %s from Orthanc: %s", aet, exc)


async def create_facility(
    database: Database, orthanc: OrthancClient, facility: NewFacility
) -> tuple[int, bool]:
    """Store the facility (``aet_taken`` if its AE title is in use), then register it."""
    facility_id = await database.write(facility_store.add_facility, **asdict(facility))
    stored = await database.read(facility_store.get_facility, facility_id)
    return facility_id, await _register(orthanc, stored)


async def change_facility(
    database: Database, orthanc: OrthancClient, facility_id: int, changes: dict[str, Any]
) -> FacilityChanged:
    """Apply the changes; re-register with Orthanc when the AE title or DICOM node changed."""

    def apply(db: sqlite_utils.Database) -> tuple[dict[str, Any], dict[str, Any]]:
        before = facility_store.get_facility(db, facility_id)
        actual = {k: v for k, v in changes.items() if before[k] != v}
        facility_store.update_facility(db, facility_id, **actual)
        return before, actual

    before, actual = await database.write(apply)
    if not actual.keys() & _ORTHANC_FIELDS:
        return FacilityChanged(actual, None)
    registered = await _register(orthanc, {**before, **actual})
    if "aet" in actual:
        await _unregister(orthanc, before["aet"])
    return FacilityChanged(actual, registered)
