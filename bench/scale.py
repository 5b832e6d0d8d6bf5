"""Scale benchmark: a province year on SQLite, on PostgreSQL with one replica and with three.

Run from the repository root::

    .venv/bin/python bench/scale.py                               # the issue's province year
    .venv/bin/python bench/scale.py --consultations 20000 --seconds 10   # a quick check (~1 min)

1. **One data set, two engines.** Generates ``--consultations`` consultations received over the
   last 365 days at ``--facilities`` facilities (facility 1 the regional centre where the
   ``--readers`` specialists and the managers work), with their events (requested,
   images_received, claimed, signed, delivered, acknowledged, as ``bench/dashboard.py``), their
   ``turnaround_facts`` rows, and the master patient index's identities; the newest
   ``--open`` are waiting to be read (``ready``), older ones are finished as their history
   says. Each chunk is written, in the same pass, into a SQLite file (``executemany`` in one
   transaction, as the other benchmarks) and into a throwaway PostgreSQL 15 cluster
   (``tests/postgres_server.py``; ``COPY``); the turnaround column blocks are packed once on
   SQLite and copied. Both are migrated by the service first, so the schemas are the service's.
2. **Three set-ups, the same load.** (a) one app on the SQLite file; (b) one app on the
   PostgreSQL database; (c) three apps ("replicas") on that same database. Each app is the
   real ``create_app`` in a child process of its own on a free loopback port, without an
   image archive (``orthanc=False``: nothing here touches images). The clients spread their
   requests over the replicas round-robin (each reader sticks to one, as behind a proxy with
   keep-alive).
3. **The load, for ``--seconds``:** ``--readers`` specialists poll ``GET /api/worklist`` (about
   every ``--poll`` s, with jitter) and now and then claim a distinct waiting consultation
   (``POST /api/consultations/{id}/claim``, about every ``--claim-every`` s each);
   ``--managers`` centre managers poll the dashboard's turnaround API (the last 30 days: by
   priority, SLA by facility and priority, breaches); ``--senders`` facilities each deliver a
   study about every ``--send-every`` s: ``receive_study`` (what the change follower runs for
   a stable study) through a ``Database.write`` of this script's own, on the same engine and
   database, as one more process (on PostgreSQL: one more replica's follower). A study's
   ingest-to-worklist time runs from the start of that write to the first answer of a
   watcher's ``GET /api/worklist?facility=..&status=awaiting_request`` (polled every 50 ms
   through the replicas in turn) that lists it.
4. Prints p95/p50 of each, side by side, with the requests answered and refused, worklist
   answers per second, the CPU seconds the apps, PostgreSQL and this script spent during the
   load, PostgreSQL's commits and rollbacks, the machine's load average, the data set's size
   and how long seeding took.

Figures are printed, never asserted. Loopback only; every process and the temporary directory
go at the end (``--keep`` keeps the directory: the SQLite file, the app logs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlite_utils
from aiohttp import web
from dashboard import MODALITIES, QUEUES, SLA_MINUTES, history
from ingest import AppHandle, cpu_seconds, free_port, percentile, progress, serve_child

from service.app import create_app
from service.auth.passwords import hash_password
from service.clock import to_iso
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from service.settings import Settings
from service.storage import Database
from service.storage.opening import open_database
from service.storage.turnaround import FACT_COLUMNS
from service.storage.turnaround_columns import mark_caught_up, rebuild
from worklists.escalation import escalation_due
from worklists.sla import SlaPolicy
from worklists.turnaround import milestones

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/ (the throwaway PostgreSQL server), as pynetdicom_race.py

from tests.postgres_server import PostgresServer, start_postgres  # noqa: E402

PASSWORD = "bench-password-not-secret"
MANAGER = "bench-manager-{:02d}"
READER = "bench-reader-{:03d}"
WATCHER = "bench-watcher"
CHUNK = 20_000
ESCALATION_SHARE = Settings().escalation_share
TIMEOUT = aiohttp.ClientTimeout(total=30)
"""A request not answered within this counts as refused (status 0): the run stays bounded."""
BODY_PART = {"neuro": "HEAD", "chest": "CHEST", "abdomen": "ABDOMEN", "msk": "KNEE"}
SUBSPECIALTIES = ("neuro", "chest", "abdomen", "msk", "")

CONSULTATION_COLUMNS = (
    "id", "facility_id", "study_instance_uid", "orthanc_study_id", "accession_number",
    "patient_id", "patient_name", "modality", "body_part", "instances", "priority",
    "priority_rank", "status", "requested_at", "received_at", "received_via", "due_at",
    "created_at", "updated_at", "queue",
)  # fmt: skip
EVENT_COLUMNS = ("id", "consultation_id", "type", "at", "actor_user_id", "detail")
FACT_TABLE_COLUMNS = ("consultation_id", *FACT_COLUMNS)
IDENTITY_COLUMNS = ("id", "facility_id", "patient_id", "person_id", "first_seen_at", "updated_at")
BLOCK_COLUMNS = (
    "block", "version", "regular", "received_min", "received_max", "due_min", "due_max",
    "signed_min", "signed_max", "base", "stages",
)  # fmt: skip
PACKED = {"turnaround_labels": ("code", "value"), "turnaround_blocks": BLOCK_COLUMNS}
"""What ``rebuild`` packs on SQLite, copied as it is to PostgreSQL (the same facts)."""


# ---------------------------------------------------------------------------
# The data: a province year, generated once, written to both engines
# ---------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows for each table, in the order of the *_COLUMNS above."""

    tables: dict[str, list[tuple]] = field(default_factory=dict)

    def add(self, table: str, rows: Sequence[tuple]) -> None:
        self.tables.setdefault(table, []).extend(rows)


COLUMNS = {
    "consultations": CONSULTATION_COLUMNS,
    "consultation_events": EVENT_COLUMNS,
    "turnaround_facts": FACT_TABLE_COLUMNS,
    "patient_persons": ("id", "created_at"),
    "patient_identities": IDENTITY_COLUMNS,
    "facilities": ("id", "name", "kind", "aet", "created_at"),
    "users": (
        "id", "username", "display_name", "password_hash", "role", "facility_id",
        "subspecialties", "created_at",
    ),
}  # fmt: skip


def people(args: argparse.Namespace, stamp: str) -> Chunk:
    """Facilities (1 regional centre, the rest clinics; the first ``--senders`` clinics send),
    the readers, the managers and the watcher (all at the centre), the patient index."""
    chunk = Chunk()
    chunk.add("facilities", [(1, "Province regional centre", "regional", "BENCH_REGIONAL", stamp)])
    chunk.add(
        "facilities",
        [
            (k, f"Clinic {k}", "county" if k % 5 == 0 else "township", f"BENCH_C{k:03d}", stamp)
            for k in range(2, args.facilities + 1)
        ],
    )
    password = hash_password(PASSWORD)
    names = [(READER.format(k), "specialist", SUBSPECIALTIES[k % 5]) for k in range(args.readers)]
    names += [(MANAGER.format(k), "manager", "") for k in range(args.managers)]
    names.append((WATCHER, "specialist", ""))
    chunk.add(
        "users",
        [
            (k, name, name, password, role, 1, subs, stamp)
            for k, (name, role, subs) in enumerate(names, 1)
        ],
    )
    # Patients: a facility's own Patient IDs, about three consultations each; half of them are
    # one person with the same number at the neighbouring clinic (linked by a national
    # identifier), so the worklist's prior count has links to follow.
    per_facility = patients_per_facility(args)
    persons, identities = {}, []
    for facility in range(2, args.facilities + 1):
        for number in range(1, per_facility + 1):
            key = (number, facility // 2) if number % 2 == 0 else (number, facility, 0)
            person = persons.setdefault(key, len(persons) + 1)
            identities.append(
                (len(identities) + 1, facility, patient_id(facility, number), person, stamp, stamp)
            )
    chunk.add("patient_persons", [(p, stamp) for p in persons.values()])
    chunk.add("patient_identities", identities)
    return chunk


def patients_per_facility(args: argparse.Namespace) -> int:
    return max(1, args.consultations // (3 * max(1, args.facilities - 1)))


def patient_id(facility: int, number: int) -> str:
    return f"P{facility:03d}{number:07d}"


def consultations(args: argparse.Namespace, now: datetime) -> Iterator[Chunk]:
    """The year's consultations in chunks of :data:`CHUNK`, ids in order of arrival."""
    rng = random.Random(20261203)
    per_facility = patients_per_facility(args)
    ages = sorted((rng.uniform(0, 365 * 86400) for _ in range(args.consultations)), reverse=True)
    first_open = args.consultations - min(args.open, args.consultations // 5) + 1
    event_ids = itertools.count(1)
    chunk = Chunk()
    for cid, age in enumerate(ages, start=1):
        received = now - timedelta(seconds=age)
        priority = rng.choices(("stat", "urgent", "routine"), (1, 3, 6))[0]
        facility = rng.randint(2, args.facilities)
        reader = rng.randint(1, args.readers)
        due = received + timedelta(minutes=SLA_MINUTES[priority])
        events = history(rng, cid, received, priority, reader, now)
        if cid >= first_open:  # the queue now: images in, nobody has claimed it yet
            events = events[:2]
        kinds = {e[1] for e in events}
        status = "closed" if "signed" in kinds else "ready"
        if status == "ready":
            events += escalation(cid, received, due, now)
        modality, queue = rng.choice(MODALITIES), rng.choice(QUEUES)
        at, due_at = to_iso(received), to_iso(due)
        patient = rng.randint(1, per_facility)
        chunk.add(
            "consultations",
            [
                (
                    cid, facility, f"1.2.826.0.1.3680043.10.2203.{cid}", f"{cid:08x}-scale",
                    f"ACC{cid:09d}", patient_id(facility, patient), f"PROVINCE^PATIENT{cid}",
                    modality, BODY_PART.get(queue, "PELVIS"), rng.randint(1, 400), priority,
                    ("stat", "urgent", "routine").index(priority), status, at, at, "dicom",
                    due_at, at, at, queue,
                )
            ],
        )  # fmt: skip
        iso_events = [(c, k, to_iso(t), a, d) for c, k, t, a, d in events]
        chunk.add("consultation_events", [(next(event_ids), *e) for e in iso_events])
        m = milestones(
            {"type": k, "at": t, "actor_user_id": a, "detail": json.loads(d)}
            for _, k, t, a, d in iso_events
        ).as_row()
        chunk.add(
            "turnaround_facts",
            [(cid, facility, None, modality, priority, queue, due_at,
              *(m[c] for c in FACT_COLUMNS[6:]))],
        )  # fmt: skip
        if len(chunk.tables["consultations"]) >= CHUNK or cid == args.consultations:
            yield chunk
            chunk = Chunk()


def escalation(cid: int, start: datetime, due: datetime, now: datetime) -> list[tuple]:
    """An open item's ``escalated`` event, as the sweep of a running service would have recorded
    it (so that the first sweep of the run does not escalate a whole year's backlog at once)."""
    reason = escalation_due(start, due, False, now, ESCALATION_SHARE)
    if reason is None:
        return []
    at = due if reason == "overdue" else start + (due - start) * ESCALATION_SHARE
    return [(cid, "escalated", at, None, json.dumps({"reason": reason, "managers": []}))]


class SqliteSink:
    """The SQLite file, migrated by the service, filled in one transaction."""

    def __init__(self, path: Path) -> None:
        Database(path).close()  # migrations: the schema is current
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("BEGIN")

    def write(self, chunk: Chunk) -> None:
        for table, rows in chunk.tables.items():
            columns = COLUMNS[table]
            self.db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' for _ in columns)})",
                rows,
            )

    def finish(self) -> tuple[dict[str, list[tuple]], tuple[int, int]]:
        """Pack the turnaround blocks, commit, ANALYZE; the blocks and their labels, and the
        columns' version."""
        rebuild(sqlite_utils.Database(self.db))
        mark_caught_up(sqlite_utils.Database(self.db))
        self.db.execute("COMMIT")
        self.db.execute("ANALYZE")
        blocks = {
            table: self.db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            for table, columns in PACKED.items()
        }
        version = self.db.execute(
            "SELECT version, events_through FROM turnaround_columns_version"
        ).fetchone()
        self.db.close()
        return blocks, version


class PostgresSink:
    """The PostgreSQL database, migrated by the service, filled with ``COPY`` in one
    transaction; identities moved past the ids given, then ``ANALYZE``."""

    def __init__(self, url: str, directory: Path) -> None:
        import psycopg

        open_database_url(url, directory).close()  # migrations
        self.pg = psycopg.connect(url)

    def write(self, chunk: Chunk) -> None:
        with self.pg.cursor() as cursor:
            for table, rows in chunk.tables.items():
                with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

    def finish(self, blocks: dict[str, list[tuple]], version: tuple[int, int]) -> None:
        with self.pg.cursor() as cursor:
            for table, rows in blocks.items():
                cursor.execute(f"DELETE FROM {table}")
                with cursor.copy(f"COPY {table} ({', '.join(PACKED[table])}) FROM STDIN") as c:
                    for row in rows:
                        c.write_row(row)
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('turnaround_labels', 'code'),"
                " (SELECT coalesce(max(code), 0) + 1 FROM turnaround_labels), false)"
            )
            cursor.execute(
                "UPDATE turnaround_columns_version SET version = %s, events_through = %s", version
            )
            cursor.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND column_name = 'id' AND is_identity = 'YES'"
            )
            for (table,) in cursor.fetchall():
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        self.pg.commit()
        self.pg.autocommit = True
        self.pg.execute("ANALYZE")
        self.pg.close()


def open_database_url(url: str, directory: Path) -> Database:
    """This script's own connection to the database (``directory``: its audit anchor file)."""
    from service.storage.postgres.database import PostgresDatabase

    return PostgresDatabase(url, directory / "teleread.db")


@dataclass
class Seeded:
    seconds: float
    consultations: int
    events: int
    ready_ids: list[int]
    sqlite_mb: float
    postgres_mb: float


def seed(args: argparse.Namespace, sqlite_path: Path, pg_url: str | None, now: datetime) -> Seeded:
    started = time.perf_counter()
    stamp = to_iso(now - timedelta(days=400))
    sinks: list[Any] = [SqliteSink(sqlite_path)]
    if pg_url:
        sinks.append(PostgresSink(pg_url, sqlite_path.parent.parent / "seed"))
    for sink in sinks:
        sink.write(people(args, stamp))
    events, ready = 0, []
    for chunk in consultations(args, now):
        for sink in sinks:
            sink.write(chunk)
        events += len(chunk.tables["consultation_events"])
        ready += [row[0] for row in chunk.tables["consultations"] if row[12] == "ready"]
        progress(f"seeded {chunk.tables['consultations'][-1][0]} consultations, {events} events")
    blocks, version = sinks[0].finish()
    postgres_mb = 0.0
    if pg_url:
        sinks[1].finish(blocks, version)
        import psycopg

        with psycopg.connect(pg_url) as pg:
            postgres_mb = pg.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            postgres_mb /= 1e6
    return Seeded(
        time.perf_counter() - started,
        args.consultations,
        events,
        ready,
        sqlite_path.stat().st_size / 1e6,
        postgres_mb,
    )


# ---------------------------------------------------------------------------
# The apps
# ---------------------------------------------------------------------------


def settings_json(settings: Settings) -> str:
    return json.dumps(
        {
            "data_dir": str(settings.data_dir),
            "database_url": settings.database_url,
            "host": settings.host,
            "port": settings.port,
            "web_processes": 1,
        }
    )


async def serve(settings: Settings) -> web.AppRunner:
    """The real app without an image archive, on its port."""
    runner = web.AppRunner(create_app(settings, orthanc=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    return runner


class Replica(AppHandle):
    """One app, in a child process of its own (or in this process: ``--in-process``), started
    as bench/ingest.py starts its app."""

    def __init__(self, settings: Settings, log_path: Path, in_process: bool) -> None:
        super().__init__(
            settings, in_process, log_path, script=Path(__file__), serve_app=serve,
            to_json=settings_json, start_timeout=120,
        )  # fmt: skip


# ---------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------


@dataclass
class Figures:
    """Latencies in ms per kind of request, and what was refused."""

    times: dict[str, list[float]] = field(default_factory=dict)
    refused: dict[str, list[int]] = field(default_factory=dict)
    load_before: float = 0.0
    load_after: float = 0.0
    lost_studies: int = 0
    seconds: float = 1.0
    transactions: tuple[int, int] = (0, 0)
    """PostgreSQL's commits and rollbacks during the load (and the seconds after it)."""
    cpu: tuple[float, ...] = (0.0, 0.0, 0.0)
    """CPU seconds of the apps, PostgreSQL and this script (clients, ingest) during the load."""

    def add(self, kind: str, ms: float) -> None:
        self.times.setdefault(kind, []).append(ms)

    def refuse(self, kind: str, status: int) -> None:
        self.refused.setdefault(kind, []).append(status)


class Load:
    """The readers, managers, senders and the watcher against a list of replica URLs."""

    def __init__(
        self,
        args: argparse.Namespace,
        urls: list[str],
        database: Database,
        ready_ids: Iterator[int],
        tag: str,
    ) -> None:
        self.args, self.urls, self.database = args, urls, database
        self.ready_ids, self.tag = ready_ids, tag
        self.figures = Figures()
        self.stop = 0.0
        self.pending: dict[str, tuple[int, float]] = {}
        self.rr = itertools.count()
        self.cpu: Callable[[], tuple[float, float, float]] = lambda: (0.0, 0.0, 0.0)

    async def tokens(self, names: list[str]) -> list[str]:
        """Log each user in through its replica (a few at a time: argon2 costs ~35 ms each)."""
        gate = asyncio.Semaphore(4)

        async def one(k: int, name: str) -> str:
            async with gate, aiohttp.ClientSession() as session:
                url = self.urls[k % len(self.urls)]
                body = {"username": name, "password": PASSWORD}
                async with session.post(url + "/api/login", json=body) as response:
                    response.raise_for_status()
                    return (await response.json())["token"]

        return list(await asyncio.gather(*(one(k, n) for k, n in enumerate(names))))

    async def run(self) -> Figures:
        args = self.args
        readers = [READER.format(k) for k in range(args.readers)]
        managers = [MANAGER.format(k) for k in range(args.managers)]
        progress(f"{self.tag}: logging in {len(readers) + len(managers) + 1} users")
        tokens = await self.tokens(readers + managers + [WATCHER])
        self.figures.load_before = os.getloadavg()[0]
        cpu_before = self.cpu()
        progress(f"{self.tag}: {args.seconds:.0f} s of load")
        self.stop = time.monotonic() + args.seconds
        await asyncio.gather(
            *(self.reader(k, t) for k, t in enumerate(tokens[: len(readers)])),
            *(self.manager(k, t) for k, t in enumerate(tokens[len(readers) : -1])),
            *(self.sender(k) for k in range(args.senders)),
            self.watcher(tokens[-1]),
        )
        self.figures.load_after = os.getloadavg()[0]
        self.figures.seconds = args.seconds
        self.figures.cpu = tuple(b - a for a, b in zip(cpu_before, self.cpu(), strict=True))
        return self.figures

    async def timed(
        self, session: aiohttp.ClientSession, kind: str, method: str, url: str, **kw: Any
    ) -> None:
        started = time.perf_counter()
        try:
            async with session.request(method, url, timeout=TIMEOUT, **kw) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            status = 0  # no answer within TIMEOUT, or the connection failed
        if status == 200:
            self.figures.add(kind, (time.perf_counter() - started) * 1000)
        else:
            self.figures.refuse(kind, status)

    async def reader(self, k: int, token: str) -> None:
        """A reading specialist's browser: the worklist every ~poll s, a claim now and then."""
        rng = random.Random(k)
        url = self.urls[k % len(self.urls)]
        headers = {"Authorization": f"Bearer {token}"}
        poll, claim_every = self.args.poll, self.args.claim_every
        next_claim = time.monotonic() + rng.random() * claim_every
        await asyncio.sleep(rng.random() * poll)
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.monotonic() < self.stop:
                await self.timed(session, "worklist", "GET", url + "/api/worklist?limit=50")
                if time.monotonic() >= next_claim:
                    next_claim += claim_every * (0.5 + rng.random())
                    cid = next(self.ready_ids, None)
                    if cid is not None:
                        path = f"/api/consultations/{cid}/claim"
                        await self.timed(session, "claim", "POST", url + path)
                await asyncio.sleep(poll * (0.5 + rng.random()))

    async def manager(self, k: int, token: str) -> None:
        """A centre manager's dashboard, the last 30 days, every ~``--dashboard-every`` s."""
        rng = random.Random(1000 + k)
        url = self.urls[k % len(self.urls)]
        now = datetime.now(UTC)
        month = {"from": to_iso(now - timedelta(days=30)), "to": to_iso(now)}
        requests = itertools.cycle(
            [
                ("/api/turnaround", {"group_by": "priority", **month}),
                ("/api/turnaround/sla", {"group_by": "facility,priority", **month}),
                ("/api/turnaround/breaches", {"limit": "50", **month}),
            ]
        )
        every = self.args.dashboard_every
        await asyncio.sleep(rng.random() * every)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.monotonic() < self.stop:
                path, params = next(requests)
                await self.timed(session, "dashboard", "GET", url + path, params=params)
                await asyncio.sleep(every * (0.5 + rng.random()))

    async def sender(self, k: int) -> None:
        """A sending facility: a stable study about every ``--send-every`` s, through the
        follower's own write (``receive_study``)."""
        rng = random.Random(2000 + k)
        facility = 2 + k
        every = self.args.send_every
        await asyncio.sleep(rng.random() * every)
        for number in itertools.count():
            if time.monotonic() >= self.stop:
                return
            uid = f"1.2.826.0.1.3680043.10.2204.{self.tag}.{facility}.{number}"
            study = ReceivedStudy(
                orthanc_id=f"{self.tag}-{facility}-{number}",
                study_instance_uid=uid,
                patient_id=patient_id(facility, 1 + number % patients_per_facility(self.args)),
                patient_name=f"ARRIVING^{facility}^{number}",
                accession_number=f"NEW{facility:03d}{number:05d}",
                modalities=("CT",),
                body_part="HEAD",
                series_count=2,
                instances_count=120,
                origins=(InstanceOrigin("DicomProtocol", f"BENCH_C{facility:03d}", "127.0.0.1"),),
            )
            arrived = time.perf_counter()
            self.pending[uid] = (facility, arrived)
            await self.database.write(receive_study, study, now=datetime.now(UTC), sla=SlaPolicy())
            await asyncio.sleep(every * (0.5 + rng.random()))

    async def watcher(self, token: str) -> None:
        """Polls, every 50 ms, the worklist of each facility with a study not yet listed
        (``status=awaiting_request``: the seed has none, so only the new arrivals), through
        the replicas in turn; stamps each study the first time an answer lists it."""
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.monotonic() < self.stop + 5 and (
                time.monotonic() < self.stop or self.pending
            ):
                facilities = {f for f, _ in self.pending.values()}
                await asyncio.gather(*(self.look(session, f) for f in facilities))
                await asyncio.sleep(0.05)
        self.figures.lost_studies = len(self.pending)

    async def look(self, session: aiohttp.ClientSession, facility: int) -> None:
        url = self.urls[next(self.rr) % len(self.urls)]
        params = {"facility": str(facility), "status": "awaiting_request", "limit": "500"}
        started = time.perf_counter()
        try:
            async with session.get(
                url + "/api/worklist", params=params, timeout=TIMEOUT
            ) as response:
                if response.status != 200:
                    self.figures.refuse("watcher", response.status)
                    return
                items = (await response.json())["items"]
        except (TimeoutError, aiohttp.ClientError):
            self.figures.refuse("watcher", 0)
            return
        answered = time.perf_counter()
        self.figures.add("watcher", (answered - started) * 1000)
        for item in items:
            pending = self.pending.pop(item["study_instance_uid"], None)
            if pending is not None:
                self.figures.add("ingest", (answered - pending[1]) * 1000)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


async def setup_run(
    args: argparse.Namespace, root: Path, name: str, url: str | None, replicas: int,
    ready: Iterator[int], server: PostgresServer | None,
) -> Figures:  # fmt: skip
    """Start ``replicas`` apps on the SQLite file (``url`` None) or the PostgreSQL URL, run the
    load, stop them."""
    base = Settings(data_dir=root / "sqlite", host="127.0.0.1", database_url=url)
    apps = [
        Replica(
            replace(base, port=free_port(), data_dir=root / (f"{name}-r{n}" if url else "sqlite")),
            root / f"{name}-r{n}.log",
            args.in_process,
        )
        for n in range(replicas)
    ]
    progress(f"{name}: starting {replicas} app(s)")
    await asyncio.gather(*(start(app) for app in apps))
    if url is None:
        database = open_database(base, checkpoints=False)
    else:
        database = open_database_url(url, root / f"{name}-ingest")
    try:
        load = Load(args, [app.url for app in apps], database, ready, name)
        load.cpu = lambda: (apps_cpu(apps), postgres_cpu(server), time.process_time())
        before = transactions(url)
        figures = await load.run()
        await asyncio.sleep(0.6)  # PostgreSQL's statistics are reported every 0.5 s
        after = transactions(url)
        figures.transactions = (after[0] - before[0], after[1] - before[1])
        return figures
    finally:
        database.close()
        await asyncio.gather(*(app.stop() for app in apps))


def postgres_cpu(server: PostgresServer | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its finished children (``cutime``,
    ``cstime``) and its running backends."""
    if server is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if pid == server.process.pid:
            total += sum(int(f) for f in fields[11:15]) / tick
        elif int(fields[1]) == server.process.pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def transactions(url: str | None) -> tuple[int, int]:
    """PostgreSQL's committed and rolled-back transactions in the database so far (a rollback is
    mostly a serializable write run again, or a read-only transaction's end)."""
    if url is None:
        return (0, 0)
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SELECT pg_stat_clear_snapshot()")
        row = pg.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def apps_cpu(apps: list[Replica]) -> float:
    """CPU seconds of the apps (in this process: counted with the clients)."""
    return sum(cpu_seconds(app.process.pid) for app in apps if app.process is not None)


async def start(app: Replica, attempts: int = 3) -> None:
    """Start ``app``, on another free port if another process took its port meanwhile."""
    for attempt in range(attempts):
        try:
            return await app.start()
        except (RuntimeError, OSError):
            if attempt == attempts - 1:
                raise
            app.settings = replace(app.settings, port=free_port())


SETUPS = {
    "sqlite": ("SQLite, 1 process", 1),
    "pg1": ("PG, 1 replica", 1),
    "pg3": ("PG, 3 replicas", 3),
}


def cell(figures: Figures, kind: str) -> str:
    times = figures.times.get(kind, [])
    if not times:
        return "-"
    return f"{percentile(times, 95):.1f}"


def table(results: dict[str, Figures]) -> list[str]:
    names = list(results)
    width = 22
    lines = [f"{'':34s}" + "".join(f"{SETUPS[n][0]:>{width}s}" for n in names)]
    rows = [
        ("worklist p95 (ms)", "worklist"),
        ("claim p95 (ms)", "claim"),
        ("dashboard p95 (ms)", "dashboard"),
        ("ingest-to-worklist p95 (ms)", "ingest"),
    ]
    for label, kind in rows:
        lines.append(f"{label:34s}" + "".join(f"{cell(results[n], kind):>{width}s}" for n in names))
    for label, kind in rows:
        lines.append(
            f"{label.split()[0] + ' p50 (ms)':34s}"
            + "".join(
                f"{percentile(results[n].times.get(kind, []), 50):>{width}.1f}" for n in names
            )
        )
    lines.append(
        f"{'worklist answers/s':34s}"
        + "".join(
            f"{len(results[n].times.get('worklist', [])) / results[n].seconds:>{width}.1f}"
            for n in names
        )
    )
    for kind in ("worklist", "claim", "dashboard", "ingest"):
        values = [
            f"{len(results[n].times.get(kind, []))}/{len(results[n].refused.get(kind, []))}"
            for n in names
        ]
        label = f"{kind}: answered/refused" if kind != "ingest" else "studies listed/later (1)"
        if kind == "ingest":
            values = [
                f"{len(results[n].times.get(kind, []))}/{results[n].lost_studies}" for n in names
            ]
        lines.append(f"{label:34s}" + "".join(f"{v:>{width}s}" for v in values))
    refused = {n: sorted(set(itertools.chain(*results[n].refused.values()))) for n in names}
    if any(refused.values()):
        lines.append(
            f"{'statuses refused':34s}" + "".join(f"{str(refused[n]):>{width}s}" for n in names)
        )
    lines.append(
        f"{'CPU ms a request, apps+PG (2)':34s}"
        + "".join(f"{cpu_per_request(results[n]):>{width}.1f}" for n in names)
    )
    for label, index in (
        ("CPU s, app(s)", 0),
        ("CPU s, PostgreSQL", 1),
        ("CPU s, clients+ingest", 2),
    ):
        lines.append(
            f"{label:34s}" + "".join(f"{results[n].cpu[index]:>{width}.1f}" for n in names)
        )
    lines.append(
        f"{'PG commits/rollbacks':34s}"
        + "".join(
            f"{'/'.join(map(str, results[n].transactions)) if n != 'sqlite' else '-':>{width}s}"
            for n in names
        )
    )
    lines.append(
        f"{'load average (1 min) before/after':34s}"
        + "".join(
            f"{f'{results[n].load_before:.2f}/{results[n].load_after:.2f}':>{width}s}"
            for n in names
        )
    )
    lines += [
        "(1) later: not listed within 5 s of the end of the load (not lost: the run stops looking)",
        "(2) the apps' and PostgreSQL's CPU during the load over the requests answered (worklist,"
        " claim, dashboard, the watcher's); steadier than latency on a shared machine",
    ]
    return lines


def cpu_per_request(figures: Figures) -> float:
    answered = sum(len(figures.times.get(k, [])) for k in ("worklist", "claim", "dashboard"))
    answered += len(figures.times.get("watcher", []))
    return (figures.cpu[0] + figures.cpu[1]) * 1000 / max(1, answered)


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-scale-"))
    server: PostgresServer | None = None
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    try:
        now = datetime.now(UTC)
        pg_url = None
        if any(s.startswith("pg") for s in setups):
            progress("starting PostgreSQL")
            server = start_postgres()  # its own directory: the postgres user must reach it
            pg_url = server.new_database()
        progress(f"seeding {args.consultations} consultations at {args.facilities} facilities")
        sqlite_path = root / "sqlite" / "teleread.db"
        sqlite_path.parent.mkdir(parents=True)
        seeded = seed(args, sqlite_path, pg_url, now)
        ready = list(seeded.ready_ids)
        random.Random(7).shuffle(ready)
        results: dict[str, Figures] = {}
        pg_ready = iter(ready)  # PG set-ups share one database: each claims items not yet claimed
        for name in setups:
            url = None if name == "sqlite" else pg_url
            ids = iter(ready) if name == "sqlite" else pg_ready
            pg = None if name == "sqlite" else server
            results[name] = await setup_run(args, root, name, url, SETUPS[name][1], ids, pg)
        lines = [
            f"teleread scale benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite "
            f"{sqlite3.sqlite_version}, PostgreSQL 15 (fsync off, as the tests' server)",
            f"data: {seeded.consultations} consultations ({seeded.events} events, "
            f"{seeded.consultations} turnaround facts), {args.facilities} facilities, "
            f"{len(ready)} waiting to be read; seeded into both in {seeded.seconds:.1f} s "
            f"({seeded.consultations / seeded.seconds:.0f} consultations/s); SQLite "
            f"{seeded.sqlite_mb:.0f} MB, PostgreSQL {seeded.postgres_mb:.0f} MB",
            f"load: {args.readers} readers (worklist every ~{args.poll} s, a claim every "
            f"~{args.claim_every} s), {args.managers} managers (dashboard every "
            f"~{args.dashboard_every} s), "
            f"{args.senders} sending facilities (a study every ~{args.send_every} s), "
            f"{args.seconds:.0f} s per set-up; apps in "
            f"{'this process' if args.in_process else 'child processes'}, no Orthanc",
            f"load average (1, 5, 15 min) at the end: "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
            "",
            *table(results),
        ]
        print("\n".join(lines), flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consultations", type=int, default=5_000_000, help="a year's (5000000)")
    parser.add_argument("--facilities", type=int, default=500, help="facilities (500)")
    parser.add_argument("--readers", type=int, default=200, help="concurrent readers (200)")
    parser.add_argument("--senders", type=int, default=50, help="sending facilities (50)")
    parser.add_argument("--managers", type=int, default=5, help="managers on the dashboard (5)")
    parser.add_argument("--open", type=int, default=3000, help="consultations waiting (3000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="load per set-up (30)")
    parser.add_argument("--poll", type=float, default=5.0, help="s between worklist polls (5)")
    parser.add_argument("--claim-every", type=float, default=10.0, help="s between claims (10)")
    parser.add_argument("--dashboard-every", type=float, default=2.0, help="s between (2)")
    parser.add_argument("--send-every", type=float, default=5.0, help="s between studies (5)")
    parser.add_argument("--setups", default="sqlite,pg1,pg3", help="sqlite,pg1,pg3 (all)")
    parser.add_argument(
        "--in-process", action="store_true", help="apps in this process (the smoke test)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-app", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.serve_app:
        asyncio.run(serve_child(serve))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
