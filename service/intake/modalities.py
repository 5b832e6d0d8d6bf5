"""Facilities' AE titles registered with Orthanc as known DICOM modalities, with what they may do.

Orthanc keeps them in its database (``DicomModalitiesInDatabase``); the service re-registers every
facility at start-up so the two never drift apart. A registered AE title may verify the connection
(C-ECHO), send images (C-STORE) and ask for its worklist (worklist C-FIND: the ModalityWorklists
plugin answers it with that AE title's scheduled items only, service/mwl/), nothing else:
Orthanc's default for a registered modality is to allow everything, which made the DICOM port an
archive any clinic could query (C-FIND) and retrieve from (C-GET, C-MOVE). teleread grants no
study query or retrieve to anyone, so there is no grant mechanism (docs/security.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..storage import Database
from ..storage import facilities as facility_store

if TYPE_CHECKING:  # the CLI imports this module for AET_PATTERN: no HTTP client (aiohttp) for it
    from ..runtime.orthanc.client import OrthancClient

log = logging.getLogger(__name__)

# DICOM allows more in an AE title (any printable ASCII but "\"), but Orthanc only accepts
# letters, digits, "_" and "-" in the modality name it is registered under (measured: "." or a
# space answer 400, "/", "?" and "#" cut the REST path), and the name is the AE title.
AET_PATTERN = r"^[A-Za-z0-9_-]{1,16}$"

PLACEHOLDER_HOST = "127.0.0.1"
PLACEHOLDER_PORT = 104

#: What a modality that is no facility may ask of Orthanc (Orthanc's per-modality "Allow*"
#: options; every one it knows is named, since an omitted one defaults to allowed).
#: "AllowStorageCommitment" is Orthanc's alias for "AllowNAction" and "AllowEventReport".
STRANGER_PERMISSIONS: dict[str, bool] = {
    "AllowEcho": True,
    "AllowStore": True,
    "AllowFind": False,
    "AllowFindWorklist": False,
    "AllowGet": False,
    "AllowMove": False,
    "AllowStorageCommitment": False,
}

#: A facility's AE title may also ask for its modality worklist ("AllowFindWorklist", per
#: modality since Orthanc 1.10.0; ``DicomAlwaysAllowFindWorklist`` stays off, so an AE title no
#: facility has is refused).
CLINIC_PERMISSIONS: dict[str, bool] = STRANGER_PERMISSIONS | {"AllowFindWorklist": True}

#: The flags Orthanc reports back (``GET /modalities?expand``) that must all be false.
_REFUSED_FLAGS = (
    "AllowFind",
    "AllowFindWorklist",
    "AllowGet",
    "AllowMove",
    "AllowNAction",
    "AllowEventReport",
)


def modality_entry(facility: dict[str, Any]) -> dict[str, Any]:
    """Orthanc's description of a facility's modality (host/port only matter for sending back)."""
    return {
        "name": facility["aet"],
        "aet": facility["aet"],
        "host": facility.get("dicom_host") or PLACEHOLDER_HOST,
        "port": facility.get("dicom_port") or PLACEHOLDER_PORT,
    }


def orthanc_modality(entry: dict[str, Any], *, facility: bool = True) -> dict[str, Any]:
    """The body of ``PUT /modalities/{name}`` for a :func:`modality_entry`: echo, store and (a
    facility's) worklist only.

    The CLI (urllib, Orthanc possibly elsewhere) and the service (async client) both send this,
    so no path registers an AE title with Orthanc's allow-everything defaults.
    """
    permissions = CLINIC_PERMISSIONS if facility else STRANGER_PERMISSIONS
    return {"AET": entry["aet"], "Host": entry["host"], "Port": entry["port"], **permissions}


async def register_facility(orthanc: OrthancClient, facility: dict[str, Any]) -> None:
    entry = modality_entry(facility)
    await orthanc.put_modality(entry["name"], orthanc_modality(entry))


async def sync_facilities(orthanc: OrthancClient, database: Database) -> int:
    """Register every facility, then take query/retrieve and worklist rights from any other
    known modality.

    A modality left in Orthanc's database by an older teleread (registered with the defaults) or
    added by hand would otherwise keep C-FIND/C-GET/C-MOVE; it keeps its address, so Orthanc can
    still send to it.
    """
    facilities = await database.read(facility_store.list_facilities)
    for facility in facilities:
        await register_facility(orthanc, facility)
    registered = {modality_entry(f)["name"] for f in facilities}
    known: dict[str, dict[str, Any]] = await orthanc.get("/modalities", expand="")
    for name, modality in known.items():
        if name in registered or not any(modality.get(flag) for flag in _REFUSED_FLAGS):
            continue
        log.warning(
            "modality %s (AE title %s) is no facility: echo and store only",
            name,
            modality.get("AET"),
        )
        entry = {"aet": modality["AET"], "host": modality["Host"], "port": modality["Port"]}
        await orthanc.put_modality(name, orthanc_modality(entry, facility=False))
    log.info("registered %d facility AE titles with Orthanc", len(facilities))
    return len(facilities)
