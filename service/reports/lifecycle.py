"""Start and stop the report feature's resources: the consortium CA, delivery, critical alerts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..clock import utc_now
from ..effects import AfterCommit, Effects
from ..http.keys import BUS, DATABASE, EFFECTS, ORTHANC, ROLE, SETTINGS
from ..http.report_keys import CA, REPORT_DELIVERY
from ..runtime.periodic import running
from ..settings import Settings
from ..signing import ConsortiumCA
from ..storage import Database
from ..worklist.notifications import NOTIFICATIONS
from .acknowledgement import escalate_unacknowledged_critical
from .delivery import DeliveryPolicy, ReportDelivery

log = logging.getLogger(__name__)


def load_ca(settings: Settings) -> ConsortiumCA:
    """The consortium CA under DATA_DIR/pki, created on first start."""
    passphrase = settings.ca_passphrase.encode() if settings.ca_passphrase else None
    return ConsortiumCA.load_or_create(
        settings.data_dir / "pki", settings.ca_name, passphrase=passphrase
    )


async def critical_sweep_once(database: Database, effects: AfterCommit, minutes: float) -> int:
    notices = await database.write(escalate_unacknowledged_critical, utc_now(), minutes)
    await effects.apply(Effects(notices=tuple(notices)))
    return len(notices)


async def reports_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[CA] = await asyncio.to_thread(load_ca, settings)
    delivery = ReportDelivery(
        app[DATABASE],
        app[ORTHANC],
        app[NOTIFICATIONS],
        DeliveryPolicy(
            retry_seconds=settings.delivery_retry_seconds,
            max_attempts=settings.delivery_max_attempts,
        ),
    )
    app[REPORT_DELIVERY] = delivery
    app[EFFECTS].delivery = delivery
    bus, primary = app[BUS], app[ROLE].primary
    if bus is not None and primary:
        bus.on("report-delivery", lambda _payload: delivery.kick())
    elif bus is not None:
        delivery.kick_relays.append(lambda: bus.send("report-delivery", {}))
    if not primary:  # delivery and the critical-finding sweep run once, in the primary
        yield
        return
    database, effects = app[DATABASE], app[EFFECTS]
    minutes = settings.critical_ack_minutes
    async with (
        running(
            "report delivery",
            min(settings.delivery_retry_seconds, 5.0),
            delivery.run_due,
            wake=delivery.wake,
        ),
        running(
            "critical finding sweep",
            min(settings.escalation_interval, 60.0),
            lambda: critical_sweep_once(database, effects, minutes),
        ),
    ):
        yield
