"""One running app with its own real Orthanc for a whole test module.

conftest's ``service`` fixture builds a new app, a new Orthanc and (in each module's own fixture)
a new seeded world for every test: ~2-3 s each, most of a read-only test's time. A module whose
tests only read the world it seeds builds it once with :func:`running_service` inside a
module-scoped fixture, and overrides ``service`` to hand that app to its tests. Tests that need
a state of their own (a session that has opened nothing, a study nobody else adds to) make it
themselves inside the shared world.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.settings import Settings

from .conftest import Service, start_orthanc, suite_settings


@asynccontextmanager
async def running_service(
    directory: Path, **changes: Any
) -> AsyncIterator[tuple[Service, Settings]]:
    """The suite's app (its settings with ``changes``) on a real Orthanc, data under
    ``directory``; stopped, and Orthanc killed, on leaving."""
    orthanc = await start_orthanc(directory / "orthanc", "TELEREAD")
    try:
        settings = replace(suite_settings(directory, orthanc), **changes)
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        try:
            yield Service(client, client.app, orthanc), settings
        finally:
            await client.close()
    finally:
        await orthanc.kill()
