"""The managed Orthanc is supervised: restarted when it dies, /healthz truthful, and a service
whose Orthanc keeps dying exits non-zero instead of serving half-alive.

Real Orthanc processes killed with SIGKILL, the real app and, for the exit, the real
``teleread serve`` command with two web processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.app import create_app
from service.http.keys import DATABASE, HEALTH
from service.runtime.orthanc.process import ManagedOrthanc
from service.settings import Settings
from service.storage import facilities as facility_store

from .conftest import CHANGES_POLL_SECONDS, free_port
from .test_cli import TELEREAD, env, orthanc_pid, read_until
from .test_ingest import a_study, c_store, consultations_of
from .test_web_processes import alive, pinned_to_each, wait_until, web_children

__all__ = ["env"]  # the fixture, shared with test_cli


# Real Orthanc processes, some under `teleread serve`.
pytestmark = pytest.mark.orthanc


@pytest.fixture
async def managed(tmp_path: Path, aiohttp_client) -> AsyncIterator[TestClient]:
    """The app in managed mode: it starts (and supervises) its own Orthanc."""
    settings = Settings(
        data_dir=tmp_path / "var",
        orthanc_http_port=free_port(),
        orthanc_dicom_port=free_port(),
        stable_age=1,
        changes_poll_interval=CHANGES_POLL_SECONDS,
    )
    client = await aiohttp_client(create_app(settings))
    await client.app[DATABASE].write(
        facility_store.add_facility,
        name="Dongxiang",
        kind="township",
        aet="DONGXIANG_DR",
        timezone="Asia/Shanghai",
    )
    yield client


def orthanc_of(app: web.Application) -> ManagedOrthanc:
    supervisor = app[HEALTH].supervisor
    assert supervisor is not None
    return supervisor.orthanc


async def health(client: TestClient) -> tuple[int, dict]:
    async with client.get("/healthz") as response:
        return response.status, await response.json()


async def health_becomes(client: TestClient, status: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await health(client)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {code}: {body}"
        await asyncio.sleep(0.05)


async def consultations(app: web.Application, uid: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await app[DATABASE].read(consultations_of, uid)
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def test_a_killed_orthanc_is_restarted_and_nothing_sent_is_lost(managed):
    """kill -9 of the Orthanc child right after a study arrived (before it became stable):
    /healthz answers 503 naming Orthanc, the supervisor starts Orthanc again, /healthz answers
    200, and both that study and one sent after the restart become one consultation each."""
    app = managed.app
    orthanc = orthanc_of(app)
    assert (await health(managed))[0] == 200
    before = a_study("BEFORE", instances=2)
    await c_store(orthanc, before, "DONGXIANG_DR")
    first_pid = orthanc.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)  # StableAge (1 s) has not passed: no StableStudy ever

    down = await health_becomes(managed, 503)
    assert down["status"] == "unavailable"
    assert down["orthanc"]["state"] in ("restarting", "down")
    assert "orthanc" in down["detail"]

    up = await health_becomes(managed, 200)
    assert up["orthanc"] == {"state": "up", "managed": True, "detail": "", "restarts": 1}
    assert orthanc.pid not in (None, first_pid)

    after = a_study("AFTER", instances=1)
    await c_store(orthanc, after, "DONGXIANG_DR")
    for study in (before, after):
        rows = await consultations(app, study[0].StudyInstanceUID)
        assert len(rows) == 1, rows
    counts = await app[DATABASE].read(
        lambda db: db.execute(
            "SELECT instances_count FROM studies WHERE study_instance_uid = ?",
            [before[0].StudyInstanceUID],
        ).fetchall()
    )
    assert [row[0] for row in counts] == [2]


async def test_healthz_names_an_external_orthanc_that_is_down(service, orthanc):
    """Not managed (compose): nothing restarts it, but /healthz no longer says ok."""
    assert (await health(service.client))[0] == 200
    await orthanc.kill()
    # The change follower may notice first (503 "ingest failing") while the last probe of
    # Orthanc, cached for a moment, still says up: wait for the probe's own verdict.
    deadline = time.monotonic() + 5
    while (body := await health_becomes(service.client, 503, timeout=5))["orthanc"][
        "state"
    ] != "down":
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    assert body["orthanc"]["managed"] is False
    assert body["error"] == "unhealthy" and "Orthanc does not answer" in body["detail"]


def dies_after_first_start(directory: Path) -> Path:
    """An Orthanc that runs the first time and exits at once on every later start (a disk that
    filled up, an index gone bad)."""
    script = directory / "orthanc-once"
    marker = directory / "started-once"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{marker}" ]; then echo "E: cannot open the index" >&2; exit 1; fi\n'
        f'touch "{marker}"\n'
        'exec Orthanc "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def serve(env: dict[str, str], errors) -> subprocess.Popen:
    return subprocess.Popen(
        [TELEREAD, "serve"], env=env, stdout=subprocess.PIPE, stderr=errors, text=True
    )


async def test_an_orthanc_that_keeps_dying_stops_the_service_with_a_failure(env, tmp_path):
    """After TELEREAD_ORTHANC_MAX_RESTARTS failed restarts the primary stops its secondary and
    exits with status 3; meanwhile both web processes answered /healthz with 503 (and before,
    the secondary reported the primary's ingest state, heard on the process bus)."""
    env = {
        **env,
        "TELEREAD_WEB_PROCESSES": "2",
        "TELEREAD_ORTHANC_EXECUTABLE": str(dies_after_first_start(tmp_path)),
        # Gives up after 1 + 2 s of delays (with 3 it waited 4 s more for the same checks).
        "TELEREAD_ORTHANC_MAX_RESTARTS": "2",
    }
    errors = (tmp_path / "stderr.txt").open("w+")
    process = serve(env, errors)
    clients = {}
    try:
        await asyncio.to_thread(read_until, process, "Press Ctrl-C")
        [secondary] = await asyncio.to_thread(
            wait_until, lambda: web_children(process.pid), 30, "the secondary"
        )
        clients = await pinned_to_each(env["TELEREAD_PORT"], "")
        for client in clients.values():
            async with await client.get("/healthz") as response:
                assert response.status == 200
        # The secondary knows the primary's ingest state from its heartbeat on the bus.
        deadline = time.monotonic() + 10
        while True:
            async with await clients[1].get("/healthz") as response:
                ingest = (await response.json())["ingest"]
            if ingest["state"] == "following" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert ingest == {"state": "following", "caught_up": True, "detail": ""}
        os.kill(orthanc_pid(env), signal.SIGKILL)
        for number, client in clients.items():
            deadline = time.monotonic() + 5
            while True:
                async with await client.get("/healthz") as response:
                    if response.status == 503:
                        body = await response.json()
                        break
                assert time.monotonic() < deadline, f"process {number} kept answering 200"
                await asyncio.sleep(0.05)
            assert body["web_process"] == number and body["orthanc"]["state"] != "up"
        code = await asyncio.to_thread(process.wait, 60)
    finally:
        for client in clients.values():
            await client.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        process.stdout.close()
        errors.seek(0)
        log = errors.read()
        errors.close()
    assert code == 3, log
    assert "Orthanc keeps dying" in log and "Orthanc restart 2 failed" in log
    await asyncio.to_thread(wait_until, lambda: not alive(secondary), 20, "the secondary to stop")
