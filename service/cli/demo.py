"""``teleread demo``: seed the demo consortium, then exit.

The accounts are written directly; the studies go through a temporary start of the service's
core (it follows Orthanc, so not while a ``teleread serve`` has the data directory).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..app import create_app, send_demo_from
from ..demo import seed
from ..demo.first_start import wait_until_ingested
from ..http.keys import DATABASE, FOLLOWER
from ..runtime.web_processes import PrimaryLock
from ..settings import Settings
from ..storage.opening import open_database


async def seed_demo(settings: Settings) -> int:
    """``teleread demo``: accounts and studies, through a temporary start of the service's core
    (which follows Orthanc: not while a ``teleread serve`` has the data directory)."""
    with PrimaryLock(settings.data_dir):
        return await _seed_demo(settings)


async def _seed_demo(settings: Settings) -> int:
    database = open_database(settings)
    try:
        seed.seed_accounts(database)
    finally:
        database.close()
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await send_demo_from(app)
        follower = app[FOLLOWER]
        await asyncio.wait_for(
            wait_until_ingested(app[DATABASE]), timeout=settings.stable_age * 3 + 60
        )
        await follower.caught_up.wait()
    finally:
        await runner.cleanup()
    print("demo data seeded")
    return 0
