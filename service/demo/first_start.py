"""What ``teleread serve --demo`` and ``teleread demo`` do once the service's core is up: send
the demo studies by C-STORE, sign one report, and (for ``teleread demo``) wait until every
study has been ingested.

The objects come as arguments: ``service.app.demo_studies_context`` and the command wire them
from the running app, so the demo never reaches into the web layer.
"""

from __future__ import annotations

import asyncio
import logging

from worklists.sla import SlaPolicy

from ..clock import utc_now
from ..settings import Settings
from ..signing import ConsortiumCA
from ..storage import Database
from ..storage import consultations as consultation_store
from ..storage import facilities as facility_store
from ..storage import users as user_store
from ..worklist.effects import AfterCommit
from ..worklist.live_feed import publish_changes
from . import county_his, seed
from .signed_report import COUNTY_ACCESSION, COUNTY_DRAFT, sign_demo_report

log = logging.getLogger(__name__)


def seed_accounts_once(database: Database) -> bool:
    """Create the demo facilities and people on an empty database. True when the demo logins
    work (seeded now, or an earlier demo start left its ``admin``)."""
    if database.read_sync(user_store.count_users) == 0:
        seed.seed_accounts(database)
        return True
    return database.read_sync(user_store.user_by_username, "admin") is not None


async def archive_is_empty(database: Database) -> bool:
    """No consultation yet: the demo studies have not been sent to this archive."""
    return not await database.read(consultation_store.count_consultations)


async def send_demo(
    database: Database,
    settings: Settings,
    sla: SlaPolicy,
    ca: ConsortiumCA,
    effects: AfterCommit,
) -> None:
    """Send the demo studies to the managed Orthanc and sign the chest film's report. A failure
    is logged, never raised: the service keeps running without its demo data."""
    facility_ids = {
        f.key: (await database.read(facility_store.facility_by_aet, f.aet) or {}).get("id")
        for f in seed.FACILITIES
    }
    if None in facility_ids.values():
        return
    try:
        ordered = await _order_from_county_his(settings)
        sent = await seed.send_demo_studies(
            database,
            facility_ids,
            dicom_host="127.0.0.1",
            dicom_port=settings.orthanc_dicom_port,
            called_aet=settings.orthanc_aet,
            sla=sla,
        )
        log.info("demo: sent %d instances by C-STORE; they reach the worklist once stable", sent)
        scheduled = await seed.file_scheduled_request(database, facility_ids, sla)
        await publish_changes(database, effects, [scheduled], [scheduled])
        await sign_demo_report(database, settings, ca, effects, seed.DEMO_PASSWORD)
        if ordered:
            await sign_demo_report(
                database, settings, ca, effects, seed.DEMO_PASSWORD,
                accession=COUNTY_ACCESSION, draft=COUNTY_DRAFT,
            )  # fmt: skip
    except Exception:
        log.exception("demo studies could not be sent")


async def _order_from_county_his(settings: Settings) -> bool:
    """With teleread's HL7 listener on, the county HIS orders its MR before the images come;
    True when teleread took the order (its signed result then goes back to the HIS)."""
    if not settings.hl7_port:
        return False
    answer = await county_his.send_order(settings.hl7_port, utc_now())
    log.info("demo: the county HIS ordered MR %s by HL7; teleread answered %s",
             county_his.ORDERED_ACCESSION, answer)  # fmt: skip
    return answer == "AA"


async def wait_until_ingested(database: Database) -> None:
    """Return once every demo study is a consultation with its images."""
    expected = len(seed.demo_studies(utc_now()))
    while True:
        ready = await database.read(consultation_store.count_consultations, with_images=True)
        if ready >= expected:
            return
        await asyncio.sleep(0.5)
