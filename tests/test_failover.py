"""Kill the leading replica and one Orthanc mid-load: nothing lost, nothing twice, and no reader
sees errors for longer than the proxy's retry (issue 22, docs/scaling.md "The scale profile and
failover").

The topology of compose's ``scale`` profile — one PostgreSQL, two Orthancs on its index, three
``teleread serve`` replicas on one database, Caddy in front with compose/Caddyfile's own
``reverse_proxy`` block — runs here as child processes on loopback (every ``make test``), and as
the compose profile itself where ``docker compose`` exists (tests/failover_compose.py). The
scenario is tests/failover_scenario.py's, the same for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest
from pydicom.dataset import Dataset

from service.dicom.send import send_datasets
from service.storage import facilities as facility_store
from service.storage import users as user_store
from service.storage.postgres.database import PostgresDatabase

from .conftest import PASSWORD, TEST_HASHER, free_port
from .failover_compose import compose_topology, docker_compose_missing
from .failover_scenario import CLINIC_AET, Outcome, fail_over, login, proxy_block, retry_seconds
from .postgres_server import PostgresServer, start_postgres
from .shared_archive import Archive, start_archive
from .test_cli import TELEREAD

pytestmark = pytest.mark.orthanc

REPLICAS = ("teleread", "teleread-2", "teleread-3")  # as compose names them
INIT_SCRIPT = Path(__file__).resolve().parent.parent / "compose/postgres/initdb/10-teleread.sh"
START_SECONDS = 60.0
READER = "dr_li"


@dataclass
class Replica:
    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Loopback:
    """The scale profile as child processes on loopback (a :class:`Topology`)."""

    archive: Archive
    database_url: str
    replicas_by_name: dict[str, Replica]
    proxy_url: str = ""
    proxy: subprocess.Popen[bytes] | None = None

    @property
    def replicas(self) -> list[str]:
        return list(self.replicas_by_name)

    async def send(self, door: int, study: list[Dataset]) -> bool:
        port = self.archive.orthancs[door].config.dicom_port
        try:
            result = await asyncio.to_thread(
                send_datasets,
                study,
                host="127.0.0.1",
                port=port,
                calling_aet=CLINIC_AET,
                called_aet="TELEREAD",
                timeout=10,
            )
        except (OSError, RuntimeError):
            return False
        return result.failed == 0

    async def leads(self, replica: str) -> bool | None:
        url = self.replicas_by_name[replica].url + "/healthz"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
                async with session.get(url) as answer:
                    return (await answer.json())["leader"]
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def kill_replica(self, replica: str) -> None:
        process = self.replicas_by_name[replica].process
        assert process is not None
        process.kill()
        await asyncio.to_thread(process.wait, 10)

    async def kill_orthanc(self, door: int) -> None:
        await self.archive.orthancs[door].kill()

    async def consultation_counts(self, uids: list[str]) -> Counter[str]:
        def count() -> Counter[str]:
            with psycopg.connect(self.database_url) as conn:
                rows = conn.execute(
                    "SELECT study_instance_uid FROM consultations"
                    " WHERE study_instance_uid = ANY(%s)",
                    [uids],
                ).fetchall()
            return Counter(row[0] for row in rows)

        return await asyncio.to_thread(count)


def teleread_database(postgres: PostgresServer) -> str:
    """teleread's role and database as compose makes them: compose/postgres/initdb's script,
    run by the cluster's superuser "orthanc" (as the postgres image runs it). Its URL."""
    password = secrets.token_hex(12)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGPASSWORD": postgres.password,
        "POSTGRES_USER": postgres.user,
        "POSTGRES_DB": "postgres",
        "TELEREAD_DB_PASSWORD": password,
    }
    made = subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=environment, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    return f"postgresql://teleread:{password}@127.0.0.1:{postgres.port}/teleread"


async def seed(database_url: str, scratch: Path) -> None:
    """The sending clinic and a specialist who reads (password ``PASSWORD``)."""
    database = PostgresDatabase(database_url, scratch / "seed.db")
    try:
        await database.write(
            facility_store.add_facility,
            name="Dongxiang",
            kind="township",
            aet=CLINIC_AET,
            timezone="Asia/Shanghai",
        )
        centre = await database.write(
            facility_store.add_facility,
            name="Centre",
            kind="regional",
            aet="CENTRE",
            timezone="Asia/Shanghai",
        )
        await database.write(
            user_store.add_user,
            username=READER,
            password_hash=TEST_HASHER.hash(PASSWORD),
            role="specialist",
            facility_id=centre,
        )
    finally:
        database.close()


def replica_environment(topology: Loopback, replica: Replica, worklists: Path) -> dict[str, str]:
    """What compose gives each teleread container, on loopback: one database, the first Orthanc
    with the second as the other door, the shared worklist folder, one web process."""
    credentials = topology.archive.credentials
    first, second = topology.archive.orthancs
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TELEREAD_")}
    return inherited | {
        "TELEREAD_DATA_DIR": str(replica.data_dir),
        "TELEREAD_HOST": "127.0.0.1",
        "TELEREAD_PORT": str(replica.port),
        "TELEREAD_DATABASE_URL": topology.database_url,
        "TELEREAD_ORTHANC_URL": first.url,
        "TELEREAD_ORTHANC_OTHER_URLS": second.url,
        "TELEREAD_ORTHANC_USERNAME": credentials.username,
        "TELEREAD_ORTHANC_PASSWORD": credentials.password,
        "TELEREAD_ORTHANC_AET": "TELEREAD",
        "TELEREAD_STABLE_AGE": "1",
        "TELEREAD_CHANGES_POLL_INTERVAL": "0.2",
        "TELEREAD_WEB_PROCESSES": "1",
        "TELEREAD_MWL_DIR": str(worklists),
        "TELEREAD_TRUSTED_PROXIES": "127.0.0.1/32",
    }


def start_replica(topology: Loopback, replica: Replica, worklists: Path) -> None:
    replica.data_dir.mkdir(parents=True)
    with open(replica.data_dir.parent / f"{replica.name}.log", "ab") as log:
        replica.process = subprocess.Popen(
            [TELEREAD, "serve"],
            env=replica_environment(topology, replica, worklists),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def until_healthy(topology: Loopback, replica: Replica) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        while time.monotonic() < deadline:
            assert replica.process is not None and replica.process.poll() is None, (
                f"{replica.name} ended: {log_tail(replica)}"
            )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(replica.url + "/healthz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{replica.name} never became healthy: {log_tail(replica)}")


def log_tail(replica: Replica) -> str:
    path = replica.data_dir.parent / f"{replica.name}.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def caddyfile(port: int) -> str:
    """Plain HTTP on loopback, and compose/Caddyfile's reverse_proxy block as it stands."""
    return (
        "{\n\tadmin off\n\tauto_https off\n}\n\n"
        f"http://127.0.0.1:{port} {{\n{proxy_block()}\n}}\n"
    )


def start_proxy(topology: Loopback, directory: Path) -> None:
    port = free_port()
    directory.mkdir()
    (directory / "Caddyfile").write_text(caddyfile(port), encoding="utf-8")
    upstreams = " ".join(f"127.0.0.1:{r.port}" for r in topology.replicas_by_name.values())
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
        "TELEREAD_UPSTREAMS": upstreams,
    }
    with open(directory / "caddy.log", "ab") as log:
        topology.proxy = subprocess.Popen(
            ["caddy", "run", "--config", "Caddyfile", "--adapter", "caddyfile"],
            cwd=directory,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    topology.proxy_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        assert topology.proxy.poll() is None, (directory / "caddy.log").read_text()
        assert time.monotonic() < deadline, "caddy never listened"
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes] | None, sig: int) -> None:
    """``sig`` (SIGINT: Ctrl-C, a clean stop), then SIGKILL after 20 s; reaped either way."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
async def loopback(tmp_path: Path) -> AsyncIterator[Loopback]:
    """The whole topology, started in parallel where it can be, stopped whatever happens."""
    postgres = await asyncio.to_thread(start_postgres, None, 3, "orthanc")
    database_url, archive = await asyncio.gather(
        asyncio.to_thread(teleread_database, postgres),
        start_archive(postgres, tmp_path / "archive"),
        return_exceptions=True,
    )
    if isinstance(database_url, BaseException) or isinstance(archive, BaseException):
        if isinstance(archive, Archive):
            await archive.kill()
        postgres.stop()
        raise database_url if isinstance(database_url, BaseException) else archive
    replicas = {name: Replica(name, free_port(), tmp_path / "replicas" / name) for name in REPLICAS}
    topology = Loopback(archive, database_url, replicas)
    try:
        await seed(database_url, tmp_path)  # migrates it first, as "teleread" would
        for replica in replicas.values():
            start_replica(topology, replica, tmp_path / "worklists")
        await asyncio.gather(*(until_healthy(topology, r) for r in replicas.values()))
        start_proxy(topology, tmp_path / "proxy")
        yield topology
    finally:
        stop_process(topology.proxy, signal.SIGTERM)
        await asyncio.gather(
            *(asyncio.to_thread(stop_process, r.process, signal.SIGINT) for r in replicas.values())
        )
        await archive.kill()
        postgres.stop()


@pytest.fixture
def caddy() -> Iterator[None]:
    if shutil.which("caddy") is None:
        pytest.skip("no caddy: scripts/install-system-deps.sh --test installs Debian's")
    yield


def assert_failed_over(outcome: Outcome) -> None:
    assert outcome.counts == Counter({uid: 1 for uid in outcome.uids}), (
        "every study sent must be exactly one consultation"
    )
    assert outcome.leader_after != outcome.leader_before
    assert all(r.good_after(outcome.killed_at) >= 5 for r in outcome.readings), (
        "every reader must go on reading after the kills"
    )
    assert outcome.longest_5xx < outcome.retry_seconds, (
        f"a reader saw errors for {outcome.longest_5xx:.1f} s,"
        f" longer than the proxy's retry ({outcome.retry_seconds} s)"
    )


async def test_killing_the_leader_and_an_orthanc_mid_load_loses_and_repeats_nothing(
    caddy: None, loopback: Loopback
):
    """Three replicas behind Caddy, two Orthancs on one index: the leading replica and the
    Orthanc every replica uses are SIGKILLed between two batches of studies. Each study is one
    consultation, another replica leads, and no reader of the worklist saw a 5xx for as long as
    the proxy retries."""
    token = await login(loopback.proxy_url, READER, PASSWORD)
    outcome = await fail_over(loopback, token, retry_seconds(proxy_block()))
    assert_failed_over(outcome)


@pytest.mark.compose
async def test_the_compose_scale_profile_fails_over_the_same_way(tmp_path: Path):
    """The same scenario on ``docker compose --profile scale`` (built and started here, torn
    down after): where there is no docker compose, skipped with that reason."""
    if reason := docker_compose_missing():
        pytest.skip(reason)
    async with compose_topology(tmp_path) as topology:
        token = await login(topology.proxy_url, topology.reader, topology.password)
        outcome = await fail_over(topology, token, retry_seconds(proxy_block()), 60.0)
    assert_failed_over(outcome)
