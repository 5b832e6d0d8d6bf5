"""Reads and searches of the FHIR API: the caller's scoped rows, mapped to resources.

Each function answers the resources and what the audit record names (the patients and studies
the answer showed); the routes add nothing but HTTP. Orthanc is asked only for the series of an
ImagingStudy, one study at a time, after SQL has scoped the studies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from ..runtime.orthanc.client import OrthancClient, OrthancError
from ..storage import Database
from ..storage import fhir as store
from ..storage.scope import Scope
from . import resources
from .search import Search


@dataclass
class Found:
    resources: list[dict[str, Any]] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)


async def patients(database: Database, scope: Scope, search: Search) -> Found:
    if search.nothing:
        return Found()
    rows = await database.read(store.patients, scope, search.match, search.limit)
    return Found([resources.patient(r) for r in rows], {r["patient_id"] for r in rows})


async def service_requests(database: Database, scope: Scope, search: Search) -> Found:
    if search.nothing:
        return Found()
    rows = await database.read(store.orders, scope, search.match, search.limit)
    return Found(
        [resources.service_request(r) for r in rows],
        {r["patient_id"] for r in rows if r["patient_id"]},
        {r["study_instance_uid"] for r in rows if r["study_instance_uid"]},
    )


async def imaging_studies(
    database: Database, orthanc: OrthancClient, scope: Scope, search: Search, dicomweb: str
) -> Found:
    """Received studies in scope, each with its series as Orthanc holds them."""
    if search.nothing:
        return Found()
    match = replace(search.match, with_images=True)
    rows = await database.read(store.orders, scope, match, search.limit)
    series = await asyncio.gather(*(_series_of(orthanc, r["orthanc_study_id"]) for r in rows))
    return Found(
        [resources.imaging_study(r, s, dicomweb) for r, s in zip(rows, series, strict=True)],
        {r["patient_id"] for r in rows if r["patient_id"]},
        {r["study_instance_uid"] for r in rows},
    )


async def _series_of(orthanc: OrthancClient, orthanc_study_id: str) -> list[dict[str, Any]]:
    """The study's series; none when the archive no longer holds it (its images moved to the
    quarantine since), rather than failing the whole search."""
    try:
        return await orthanc.study_series(orthanc_study_id)
    except OrthancError as exc:
        if exc.status == 404:
            return []
        raise


async def diagnostic_reports(
    database: Database, scope: Scope, search: Search, base_url: str
) -> Found:
    if search.nothing:
        return Found()
    rows = await database.read(store.signed_reports, scope, search.match, search.limit)
    return Found(
        [resources.diagnostic_report(r, base_url) for r in rows],
        {r["patient_id"] for r in rows if r["patient_id"]},
        {r["study_instance_uid"] for r in rows if r["study_instance_uid"]},
    )
