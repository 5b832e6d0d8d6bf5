"""Ingest benchmark: C-STORE synthetic studies into Orthanc, alone and with teleread in front.

Run from the repository root::

    .venv/bin/python bench/ingest.py [--studies N] [--instances M] [--stable-age S] [--senders K]

The same pre-generated studies (CT, kept in memory) are sent twice, each time to a fresh
throwaway Orthanc on free ports:

A. **Orthanc alone** (the reference): no service running. The wall time runs from the first
   C-STORE until this script's own ``/changes`` poller (every 20 ms) has seen ``StableStudy``
   for every study.
B. **With teleread**: the real app (``create_app``) in front of the second Orthanc, following
   its change feed with the real poll interval. The wall time runs from the first C-STORE until
   a logged-in specialist's ``GET /api/worklist`` lists every study (the app's SQLite file is
   read every 20 ms to know when to ask; see ``WorklistWatcher``). For each study the delay
   between Orthanc marking it stable (seen by the ``/changes`` poller) and its consultation
   appearing on the worklist is recorded.

Both phases use the same senders: K parallel sender threads (K clinics, each with its own
registered AE title), one association per study, as a modality sends. Figures are printed,
never asserted: the exit status does not depend on whether the targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydicom.dataset import Dataset

from service.app import create_app
from service.auth.passwords import hash_password
from service.demo.synthetic import StudySpec, make_study
from service.dicom.send import StoreError, send_datasets
from service.intake.modalities import register_facility
from service.runtime.orthanc.auth import basic_auth_header
from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    load_or_create_credentials,
)
from service.runtime.web_processes import ProcessRole, bus_path_for
from service.settings import Settings, web_process_count
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import users as user_store

SCRIPT = Path(__file__).resolve()

CALLED_AET = "TELEREAD"
SPECIALIST = "bench-specialist"
SPECIALIST_PASSWORD = "bench-password-not-secret"
BODY_PARTS = ("HEAD", "CHEST", "ABDOMEN")
TARGET_DELAY_P95 = 1.0  # seconds, stable -> on the worklist
TARGET_OVERHEAD = 5.0  # percent of the whole ingest time of Orthanc alone
WORKLIST_PAGE = 500  # the API's maximum page size


# ---------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Study:
    uid: str
    sender: int
    datasets: list[Dataset]


def clinic_aet(sender: int) -> str:
    return f"BENCH_CLINIC{sender + 1:02d}"


def generate_studies(count: int, instances: int, size: int, senders: int) -> list[Study]:
    """``count`` CT studies, assigned round-robin to the senders (generated outside timing)."""
    studies = []
    for number in range(count):
        spec = StudySpec(
            patient_id=f"BENCH{number:05d}",
            patient_name=f"BENCH^PATIENT{number:05d}",
            modality="CT",
            body_part=BODY_PARTS[number % len(BODY_PARTS)],
            instances=instances,
            accession_number=f"BA{number:08d}",
            rows=size,
            columns=size,
        )
        datasets = make_study(spec)
        studies.append(Study(str(datasets[0].StudyInstanceUID), number % senders, datasets))
    return studies


@dataclass
class SendReport:
    """What the sender threads did, on the ``time.perf_counter`` clock."""

    first_start: float = math.inf
    last_end: float = 0.0
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    study_sent: dict[str, float] = field(default_factory=dict)  # uid -> association released

    @property
    def seconds(self) -> float:
        return self.last_end - self.first_start


def send_share(
    studies: Sequence[Study],
    dicom_port: int,
    aet: str,
    report: SendReport,
    lock: threading.Lock,
    stop: threading.Event,
) -> None:
    """One sender (one clinic): each study over its own association, one after the other."""
    for study in studies:
        if stop.is_set():
            return
        start = time.perf_counter()
        with lock:
            report.first_start = min(report.first_start, start)
        try:
            result = send_datasets(
                study.datasets,
                host="127.0.0.1",
                port=dicom_port,
                calling_aet=aet,
                called_aet=CALLED_AET,
            )
            sent, failed = result.sent, result.failed
        except StoreError as exc:
            partial = exc.result
            sent = partial.sent if partial else 0
            failed = len(study.datasets) - sent
            with lock:
                report.errors.append(f"{aet}: {exc}")
        end = time.perf_counter()
        with lock:
            report.sent += sent
            report.failed += failed
            report.last_end = max(report.last_end, end)
            report.study_sent[study.uid] = end


async def send_all(studies: Sequence[Study], dicom_port: int, senders: int) -> SendReport:
    """Run the senders in threads (pynetdicom is synchronous) while the event loop polls."""
    report = SendReport()
    lock = threading.Lock()
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(senders, thread_name_prefix="bench-sender") as pool:
        try:
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool,
                        send_share,
                        [s for s in studies if s.sender == k],
                        dicom_port,
                        clinic_aet(k),
                        report,
                        lock,
                        stop,
                    )
                    for k in range(senders)
                )
            )
        except BaseException:  # interrupted: let the senders finish their current study only
            stop.set()
            raise
    return report


# ---------------------------------------------------------------------------
# Observers: Orthanc's change feed and the worklist API, polled by this script
# ---------------------------------------------------------------------------


class StableWatcher:
    """Polls Orthanc's ``/changes``; records when each ``StableStudy`` is first seen."""

    def __init__(self, session: aiohttp.ClientSession, url: str, interval: float) -> None:
        self.session = session
        self.url = url
        self.interval = interval
        self.seen: dict[str, float] = {}  # Orthanc study id -> perf_counter
        self.since = 0

    async def start_from_now(self) -> None:
        async with self.session.get(self.url + "/changes", params={"last": ""}) as response:
            self.since = int((await response.json())["Last"])

    async def run(self) -> None:
        while True:
            done = False
            while not done:
                params = {"since": str(self.since), "limit": "1000"}
                async with self.session.get(self.url + "/changes", params=params) as response:
                    page = await response.json()
                now = time.perf_counter()
                for change in page["Changes"]:
                    if change["ChangeType"] == "StableStudy":
                        self.seen.setdefault(change["ID"], now)
                self.since = int(page["Last"])
                done = bool(page["Done"])
            await asyncio.sleep(self.interval)

    async def by_study_uid(self) -> dict[str, float]:
        """Map the Orthanc ids seen to StudyInstanceUIDs (after the timed part)."""
        result = {}
        for orthanc_id, at in self.seen.items():
            async with self.session.get(f"{self.url}/studies/{orthanc_id}") as response:
                info = await response.json()
            result[info["MainDicomTags"]["StudyInstanceUID"]] = at
        return result


class WorklistWatcher:
    """Records when each study is first listed by ``GET /api/worklist`` for a specialist.

    Polling the API itself every 20 ms would cost the app about 1 s of CPU per 100 studies,
    on the same two cores as Orthanc and the senders, and so inflate the very overhead being
    measured. Instead the app's SQLite file is read (read-only, in this process) every 20 ms as
    a trigger: whenever its consultation count differs from what the API last listed, the whole
    worklist is fetched through the API, and the studies new in it are stamped with the time
    that answer arrived: late by at most one API request, never early.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: str,
        database_path: Path,
        interval: float,
    ) -> None:
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.database_path = database_path
        self.interval = interval
        self.seen: dict[str, float] = {}  # StudyInstanceUID -> perf_counter
        self.items: dict[str, dict[str, Any]] = {}
        self.polls = 0
        self.listings = 0
        self.listing_seconds = 0.0

    async def list_once(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": str(WORKLIST_PAGE)}
            if cursor:
                params["cursor"] = cursor
            async with self.session.get(
                self.url + "/api/worklist", params=params, headers=self.headers
            ) as response:
                response.raise_for_status()
                page = await response.json()
            items += page["items"]
            cursor = page.get("next")
            if not cursor:
                return items

    async def run(self) -> None:
        uri = f"file:{self.database_path}?mode=ro"
        database = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        listed = -1
        try:
            while True:
                count = database.execute("SELECT COUNT(*) FROM consultations").fetchone()[0]
                self.polls += 1
                if count != listed:
                    start = time.perf_counter()
                    items = await self.list_once()
                    now = time.perf_counter()
                    self.listings += 1
                    self.listing_seconds += now - start
                    listed = len(items)
                    for item in items:
                        uid = item["study_instance_uid"]
                        if uid and uid not in self.seen:
                            self.seen[uid] = now
                            self.items[uid] = item
                await asyncio.sleep(self.interval)
        finally:
            database.close()


async def wait_until(predicate, timeout: float, *observers: asyncio.Task) -> bool:
    """Poll ``predicate`` every 20 ms; False on timeout; an observer's failure is raised."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        for task in observers:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError(f"observer {task.get_name()} stopped")
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@contextlib.asynccontextmanager
async def running(coroutine):
    """Run a polling coroutine as a task for the duration of a block; re-raise its failure."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---------------------------------------------------------------------------
# Orthanc and the app
# ---------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    if pid is None:
        return math.nan
    if pid == os.getpid():
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by a few processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        return self.used


def orthanc_pid(orthanc: ManagedOrthanc) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((orthanc.config.directory / "orthanc.pid").read_text())
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_orthanc(directory: Path, stable_age: int) -> ManagedOrthanc:
    orthanc_dir = directory / "orthanc"
    config = OrthancConfig(
        directory=orthanc_dir,
        http_port=free_port(),
        dicom_port=free_port(),
        aet=CALLED_AET,
        stable_age=stable_age,
        plugins_dir=Path("/usr/share/orthanc/plugins"),
        credentials=load_or_create_credentials(orthanc_dir),
    )
    orthanc = ManagedOrthanc(config)
    await orthanc.start()
    return orthanc


def orthanc_session(orthanc: ManagedOrthanc) -> aiohttp.ClientSession:
    credentials = orthanc.config.credentials
    # No gzip from Orthanc, as the service asks (service/runtime/orthanc/client.py): compressing a
    # rendered JPEG or a DICOM file on the fly would only slow the reference down.
    headers = {"Accept-Encoding": "identity"}
    headers.update(basic_auth_header(credentials.username, credentials.password))
    return aiohttp.ClientSession(headers=headers)


def managed_settings(directory: Path, orthanc: ManagedOrthanc, **extra: Any) -> Settings:
    """Settings of a service on a free port in front of the bench's own Orthanc."""
    credentials = orthanc.config.credentials
    return Settings(
        data_dir=directory / "var",
        host="127.0.0.1",
        port=free_port(),
        orthanc_url=orthanc.url,
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
        orthanc_dicom_port=orthanc.config.dicom_port,
        orthanc_aet=CALLED_AET,
        **extra,
    )


def app_settings(directory: Path, orthanc: ManagedOrthanc, args: argparse.Namespace) -> Settings:
    return managed_settings(
        directory,
        orthanc,
        stable_age=args.stable_age,
        changes_poll_interval=args.poll_interval,
    )


def seed_database(settings: Settings, senders: int) -> None:
    """The clinics (one AE title per sender) and a regional specialist, before the app starts.

    The app registers every facility's AE title with Orthanc at start-up, as in production.
    """
    database = Database(settings.database_path)
    try:
        for k in range(senders):
            database.write_sync(
                facility_store.add_facility,
                name=f"Bench clinic {k + 1}",
                kind="township",
                aet=clinic_aet(k),
                timezone=settings.default_timezone,
            )
        regional = database.write_sync(
            facility_store.add_facility,
            name="Bench regional centre",
            kind="regional",
            aet="BENCH_REGIONAL",
            timezone=settings.default_timezone,
        )
        database.write_sync(
            user_store.add_user,
            username=SPECIALIST,
            password_hash=hash_password(SPECIALIST_PASSWORD),
            role="specialist",
            facility_id=regional,
        )
    finally:
        database.close()


async def serve(settings: Settings) -> web.AppRunner:
    """The real app on a real port (``create_app`` + ``AppRunner``/``TCPSite``), with its web
    processes as ``teleread serve`` runs them (``TELEREAD_WEB_PROCESSES``)."""
    count = web_process_count(settings)
    role = ProcessRole(0, count, bus_path_for(settings) if count > 1 else None)
    runner = web.AppRunner(create_app(settings, role), access_log=None, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, reuse_port=count > 1).start()
    return runner


def settings_to_json(settings: Settings) -> str:
    fields_ = {
        "data_dir": str(settings.data_dir),
        "host": settings.host,
        "port": settings.port,
        "orthanc_url": settings.orthanc_url,
        "orthanc_username": settings.orthanc_username,
        "orthanc_password": settings.orthanc_password,
        "orthanc_dicom_port": settings.orthanc_dicom_port,
        "orthanc_aet": settings.orthanc_aet,
        "stable_age": settings.stable_age,
        "changes_poll_interval": settings.changes_poll_interval,
        "web_processes": settings.web_processes,
        "render_workers": settings.render_workers,
        "frame_cache_mb": settings.frame_cache_mb,
    }
    return json.dumps(fields_)


async def serve_child(serve_app: Callable[[Settings], Awaitable[web.AppRunner]] = serve) -> None:
    """Child mode (``--serve-app``): serve until SIGTERM; settings come as JSON on stdin.

    (Not on the command line, where other users could read the Orthanc password.) bench/scale.py
    runs its replicas the same way, with its own ``serve_app``.
    """
    values = json.loads(sys.stdin.readline())
    values["data_dir"] = Path(values["data_dir"])
    runner = await serve_app(Settings(**values))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


class AppHandle:
    """The app under test, in this process or in a child process (``script --serve-app``, which
    reads ``to_json(settings)`` on stdin and answers ``ready``: :func:`serve_child`)."""

    def __init__(
        self,
        settings: Settings,
        in_process: bool,
        log_path: Path,
        *,
        script: Path = SCRIPT,
        serve_app: Callable[[Settings], Awaitable[web.AppRunner]] = serve,
        to_json: Callable[[Settings], str] = settings_to_json,
        start_timeout: float = 60,
    ) -> None:
        self.settings = settings
        self.in_process = in_process
        self.log_path = log_path
        self.script, self.serve_app, self.to_json = script, serve_app, to_json
        self.start_timeout = start_timeout
        self.runner: web.AppRunner | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def pid(self) -> int | None:
        """The app's process when it has its own (else it shares this script's)."""
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        if self.in_process:
            self.runner = await self.serve_app(self.settings)
            return
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(self.script),
                "--serve-app",
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                stdin=asyncio.subprocess.PIPE,
            )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(self.to_json(self.settings).encode() + b"\n")
        await self.process.stdin.drain()
        self.process.stdin.close()
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await self.stop()
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError("the app did not start:\n" + "\n".join(tail))

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        if self.process is not None:
            process, self.process = self.process, None
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def login(session: aiohttp.ClientSession, url: str) -> str:
    body = {"username": SPECIALIST, "password": SPECIALIST_PASSWORD}
    async with session.post(url + "/api/login", json=body) as response:
        response.raise_for_status()
        return (await response.json())["token"]


# ---------------------------------------------------------------------------
# The two phases
# ---------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    instances: int
    send: SendReport
    start: float  # first C-STORE (perf_counter)
    stable: dict[str, float]  # StudyInstanceUID -> StableStudy seen
    listed: dict[str, float] = field(default_factory=dict)  # uid -> on the worklist
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = True
    worklist_polls: int = 0
    worklist_listings: int = 0
    worklist_listing_seconds: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the timed part

    @property
    def instances_per_second(self) -> float:
        return self.send.sent / self.send.seconds if self.send.seconds > 0 else math.nan

    @property
    def end(self) -> float:
        """The end of ingest: last study stable (A) or last consultation listed (B)."""
        marks = self.listed if self.name == "B" else self.stable
        return max(marks.values(), default=math.nan)

    @property
    def total(self) -> float:
        return self.end - self.start

    @property
    def stability_wait(self) -> float:
        """Last C-STORE finished -> last study stable: Orthanc's own StableAge wait."""
        return max(self.stable.values(), default=math.nan) - self.send.last_end

    @property
    def listing_tail(self) -> float:
        """Last study stable -> last study on the worklist (phase B only)."""
        return self.end - max(self.stable.values(), default=math.nan)

    def sent_to_stable(self) -> list[float]:
        return [
            self.stable[uid] - at for uid, at in self.send.study_sent.items() if uid in self.stable
        ]

    def delays(self) -> list[float]:
        return [at - self.stable[uid] for uid, at in self.listed.items() if uid in self.stable]


async def warm_up(studies: Sequence[Study], dicom_port: int, senders: int) -> None:
    """One small study per sender, outside timing: first-association and import costs."""
    await send_all(studies, dicom_port, senders)


async def phase_orthanc_alone(
    directory: Path,
    studies: Sequence[Study],
    warmup: Sequence[Study],
    args: argparse.Namespace,
) -> PhaseResult:
    orthanc = await start_orthanc(directory, args.stable_age)
    try:
        async with orthanc_session(orthanc) as session:
            client = OrthancClient(
                orthanc.url,
                orthanc.config.credentials.username,
                orthanc.config.credentials.password,
            )
            try:  # register the clinics' AE titles as the service would
                for k in range(args.senders):
                    await register_facility(client, {"aet": clinic_aet(k)})
            finally:
                await client.close()
            watcher = StableWatcher(session, orthanc.url, args.observe_interval)
            await watcher.start_from_now()
            async with running(watcher.run()) as task:
                await warm_up(warmup, orthanc.config.dicom_port, args.senders)
                await wait_until(lambda: len(watcher.seen) >= len(warmup), args.timeout, task)
            await watcher.start_from_now()
            watcher.seen.clear()
            load = os.getloadavg()
            progress("phase A (Orthanc alone): sending")
            cpu = CpuMeter({"Orthanc": orthanc_pid(orthanc), "this script": os.getpid()})
            cpu.start()
            async with running(watcher.run()) as task:
                send = await send_all(studies, orthanc.config.dicom_port, args.senders)
                complete = await wait_until(
                    lambda: len(watcher.seen) >= len(studies), args.timeout, task
                )
            cpu.stop()
            stable = await watcher.by_study_uid()
            return PhaseResult(
                "A",
                sum(len(s.datasets) for s in studies),
                send,
                send.first_start,
                stable,
                complete=complete,
                load_before=load,
                cpu=cpu.used,
            )
    finally:
        await orthanc.kill()


async def phase_with_service(
    directory: Path,
    studies: Sequence[Study],
    warmup: Sequence[Study],
    args: argparse.Namespace,
) -> PhaseResult:
    orthanc = await start_orthanc(directory, args.stable_age)
    settings = app_settings(directory, orthanc, args)
    seed_database(settings, args.senders)
    app = AppHandle(settings, args.in_process, directory / "app.log")
    try:
        await app.start()
        async with orthanc_session(orthanc) as session, aiohttp.ClientSession() as api:
            token = await login(api, app.url)
            stable = StableWatcher(session, orthanc.url, args.observe_interval)
            await stable.start_from_now()
            worklist = WorklistWatcher(
                api, app.url, token, settings.database_path, args.observe_interval
            )
            async with running(worklist.run()) as task:
                await warm_up(warmup, orthanc.config.dicom_port, args.senders)
                await wait_until(lambda: len(worklist.seen) >= len(warmup), args.timeout, task)
            await stable.start_from_now()
            worklist = WorklistWatcher(
                api, app.url, token, settings.database_path, args.observe_interval
            )
            load = os.getloadavg()
            progress("phase B (with teleread): sending")
            cpu = CpuMeter(
                {
                    "Orthanc": orthanc_pid(orthanc),
                    "teleread app": app.pid,
                    "this script": os.getpid(),
                }
            )
            cpu.start()
            async with running(stable.run()) as task1, running(worklist.run()) as task2:
                send = await send_all(studies, orthanc.config.dicom_port, args.senders)
                wanted = {s.uid for s in studies}
                complete = await wait_until(
                    lambda: wanted <= worklist.seen.keys() and len(stable.seen) >= len(studies),
                    args.timeout,
                    task1,
                    task2,
                )
            cpu.stop()
            stable_by_uid = await stable.by_study_uid()
            listed = {uid: at for uid, at in worklist.seen.items() if uid in wanted}
            items = {uid: item for uid, item in worklist.items.items() if uid in wanted}
            return PhaseResult(
                "B",
                sum(len(s.datasets) for s in studies),
                send,
                send.first_start,
                stable_by_uid,
                listed=listed,
                items=items,
                complete=complete,
                worklist_polls=worklist.polls,
                worklist_listings=worklist.listings,
                worklist_listing_seconds=worklist.listing_seconds,
                load_before=load,
                cpu=cpu.used,
            )
    finally:
        await app.stop()
        await orthanc.kill()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def progress(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


@dataclass
class Round:
    """One measurement: the same load into Orthanc alone (A) and with teleread (B)."""

    number: int
    a: PhaseResult
    b: PhaseResult

    @property
    def overhead(self) -> float:
        """Percent added to the whole ingest time, as measured."""
        return (self.b.total - self.a.total) / self.a.total * 100 if self.a.total > 0 else math.nan

    @property
    def adjusted(self) -> float:
        """The same without Orthanc's whole-second stability wait (the same with or without)."""
        added = (self.b.send.seconds - self.a.send.seconds) + self.b.listing_tail
        return added / self.a.total * 100 if self.a.total > 0 else math.nan

    def problems(self, args: argparse.Namespace) -> list[str]:
        found = []
        for phase in (self.a, self.b):
            where = f"round {self.number} phase {phase.name}"
            if phase.send.failed or phase.send.errors:
                found.append(f"{where}: {phase.send.failed} instances not stored")
                found += [f"{where}: {error}" for error in phase.send.errors[:3]]
            if not phase.complete:
                found.append(
                    f"{where}: timed out after {args.timeout:.0f} s with {len(phase.stable)} "
                    f"stable and {len(phase.listed)} listed of {args.studies} studies"
                )
            wrong = [u for u, item in phase.items.items() if item["instances"] != args.instances]
            if wrong:
                found.append(f"{where}: {len(wrong)} consultations list a wrong instance count")
        return found


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def report(rounds: Sequence[Round], args: argparse.Namespace, generated: float) -> str:
    n_instances = rounds[0].a.instances
    megabytes = n_instances * args.size * args.size * 2 / 1e6
    problems = {r.number: r.problems(args) for r in rounds}
    valid = [r for r in rounds if not problems[r.number]] or list(rounds)
    loads = ", ".join(f"{r.a.load_before[0]:.2f}/{r.b.load_before[0]:.2f}" for r in rounds)
    lines = [
        f"teleread ingest benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"load: {args.studies} studies x {args.instances} instances = {n_instances} CT "
        f"{args.size}x{args.size} ({megabytes:.0f} MB of pixels; generated in {generated:.1f} s), "
        f"{args.senders} senders (1 association per study), StableAge {args.stable_age} s",
        f"teleread: follower poll {args.poll_interval} s, app "
        f"{'in this process' if args.in_process else 'in a child process'}; "
        f"observers poll every {args.observe_interval * 1000:.0f} ms",
        f"load average before the timed parts (A/B): {loads}",
    ]
    if len(rounds) > 1:
        lines.append(
            f"{len(rounds)} rounds (A then B, then B then A, ...); {len(valid)} used; figures "
            "are medians over the rounds, delays pooled over all their studies"
        )
    lines.append("")
    rows: list[tuple[str, str, str]] = []

    def row(label: str, left: str, right: str) -> None:
        rows.append((label, left, right))

    def sec(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.2f} s"

    def both(metric) -> tuple[float, float]:
        return median(metric(r.a) for r in valid), median(metric(r.b) for r in valid)

    row("", "Orthanc alone", "with teleread")
    rate_a, rate_b = both(lambda p: p.instances_per_second)
    row("instances/s into Orthanc", f"{rate_a:.1f}", f"{rate_b:.1f}")
    row("C-STORE send time", *map(sec, both(lambda p: p.send.seconds)))
    row("last sent -> last stable (2)", *map(sec, both(lambda p: p.stability_wait)))
    row("last stable -> last on worklist", "-", sec(median(r.b.listing_tail for r in valid)))
    row("total ingest time (1)", *map(sec, both(lambda p: p.total)))
    overhead = median(r.overhead for r in valid)
    adjusted = median(r.adjusted for r in valid)
    row("teleread overhead", "-", f"{overhead:+.1f} %")
    row("  without the (2) noise (3)", "-", f"{adjusted:+.1f} %")
    row(
        "study sent -> stable, p50 (2)",
        sec(median(d for r in valid for d in r.a.sent_to_stable())),
        sec(median(d for r in valid for d in r.b.sent_to_stable())),
    )
    delays = [d for r in valid for d in r.b.delays()]
    p50, p95 = percentile(delays, 50), percentile(delays, 95)
    row("stable -> worklist, p50", "-", sec(p50))
    row("stable -> worklist, p95", "-", sec(p95))
    row("stable -> worklist, max", "-", sec(max(delays, default=math.nan)))
    for name in ("Orthanc", "teleread app", "this script"):
        if name == "teleread app" and args.in_process:
            continue
        label = "CPU, " + (f"{name} (senders, observers)" if name == "this script" else name)
        left, right = both(lambda p, name=name: p.cpu.get(name, math.nan))
        row(label, "-" if math.isnan(left) else sec(left), sec(right))
    width = max(len(r[0]) for r in rows) + 2
    for label, left, right in rows:
        lines.append(f"{label:<{width}}{left:>15}{right:>17}")
    lines += [
        "(1) first C-STORE -> last study stable (Orthanc alone) / last study on the worklist "
        "(with teleread)",
        "(2) Orthanc stamps a study's last arrival in whole seconds and calls it stable once that "
        "age exceeds StableAge,",
        "    so this wait varies by up to 1 s from run to run whatever teleread does",
        "(3) (send time with - without teleread) + (last stable -> last on worklist), "
        "over the total of Orthanc alone",
    ]
    if len(rounds) == 1:
        lines.append(
            "one round only: on a shared or busy machine the overhead varies by 10-20 % between "
            "identical runs; --rounds 4 reports medians"
        )
    else:
        lines.append(
            "per round, overhead (without the (2) noise): "
            + ", ".join(f"{r.overhead:+.1f} % ({r.adjusted:+.1f} %)" for r in rounds)
        )
    lines += [
        "",
        f"target: stable -> worklist p95 < {TARGET_DELAY_P95:.0f} s: {p95:.2f} s, "
        f"{verdict(p95 < TARGET_DELAY_P95)}",
        f"target: teleread adds < {TARGET_OVERHEAD:.0f} % to the whole ingest time: "
        f"{overhead:+.1f} %, {verdict(overhead < TARGET_OVERHEAD)} "
        f"(without the (2) noise: {adjusted:+.1f} %, {verdict(adjusted < TARGET_OVERHEAD)})",
    ]
    polls = sum(r.b.worklist_polls for r in rounds)
    listings = sum(r.b.worklist_listings for r in rounds)
    if listings:
        seconds = sum(r.b.worklist_listing_seconds for r in rounds)
        lines.append(
            f"worklist observer: {polls} SQLite count polls, {listings} worklist API listings, "
            f"{seconds / listings * 1000:.1f} ms per listing on average"
        )
    for r in rounds:
        for problem in problems[r.number]:
            lines.append(f"WARNING {problem}")
        if problems[r.number]:
            if len(valid) < len(rounds):
                lines.append(f"WARNING round {r.number} is left out of the figures above")
            else:
                lines.append(
                    f"WARNING round {r.number} is disturbed: these figures are not valid, run again"
                )
    return "\n".join(lines)


def write_csv(path: Path, studies: Sequence[Study], rounds: Sequence[Round]) -> None:
    """Per-study timeline, seconds from each phase's first C-STORE."""

    def rel(marks: dict[str, float], uid: str, start: float) -> str:
        return f"{marks[uid] - start:.3f}" if uid in marks else ""

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "round",
                "study_instance_uid",
                "sender",
                "a_sent",
                "a_stable",
                "b_sent",
                "b_stable",
                "b_listed",
            ]
        )
        for r in rounds:
            a, b = r.a, r.b
            for study in studies:
                writer.writerow(
                    [
                        r.number,
                        study.uid,
                        clinic_aet(study.sender),
                        rel(a.send.study_sent, study.uid, a.start),
                        rel(a.stable, study.uid, a.start),
                        rel(b.send.study_sent, study.uid, b.start),
                        rel(b.stable, study.uid, b.start),
                        rel(b.listed, study.uid, b.start),
                    ]
                )


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=(
            "StableAge defaults to 1 s, the smallest value Orthanc and teleread accept. It keeps "
            "the run short, and it is the strictest setting for the overhead figure: the "
            "StableAge wait is the same with and without teleread, so a longer one (production "
            "uses 10 s) only adds the same seconds to both totals and shrinks the percentage. "
            "The stable -> worklist delay does not depend on it."
        ),
    )
    parser.add_argument("--studies", type=int, default=100, help="studies to send (100)")
    parser.add_argument("--instances", type=int, default=30, help="instances per study (30)")
    parser.add_argument(
        "--stable-age",
        type=int,
        default=1,
        help="Orthanc's StableAge in seconds (1: see below)",
    )
    parser.add_argument(
        "--senders", type=int, default=2, help="parallel senders, one clinic AE title each (2)"
    )
    parser.add_argument(
        "--size", type=int, default=512, help="CT matrix (512, a real CT's; 256 is quicker)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=Settings.changes_poll_interval,
        help=(
            "teleread's changes_poll_interval in seconds "
            f"(the service default, {Settings.changes_poll_interval})"
        ),
    )
    parser.add_argument(
        "--observe-interval",
        type=float,
        default=0.02,
        help="how often this script polls /changes and the consultation count (0.02 s)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help=(
            "run the app in this process (default: a child process, so the Python senders do "
            "not share its interpreter lock, as real modalities would not)"
        ),
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for stragglers (120)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure R times, alternating which phase goes first, and report medians (1)",
    )
    parser.add_argument("--csv", type=Path, help="also write a per-study timeline to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--serve-app", action="store_true", help=argparse.SUPPRESS)
    return parser


async def run(args: argparse.Namespace) -> int:
    progress(f"generating {args.studies} x {args.instances} CT {args.size}x{args.size} instances")
    started = time.perf_counter()
    studies = generate_studies(args.studies, args.instances, args.size, args.senders)
    generated = time.perf_counter() - started
    warmup = []
    for k in range(args.senders):
        spec = StudySpec(f"WARMUP{k}", "WARM^UP", "CT", "HEAD", instances=2, rows=64)
        datasets = make_study(spec)
        warmup.append(Study(str(datasets[0].StudyInstanceUID), k, datasets))
    progress(f"generated in {generated:.1f} s")
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-ingest-"))
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            results: dict[str, PhaseResult] = {}
            order = "AB" if number % 2 else "BA"
            for name in order:
                directory = root / f"round{number}{name}"
                if name == "A":
                    results[name] = await phase_orthanc_alone(directory, studies, warmup, args)
                else:
                    results[name] = await phase_with_service(directory, studies, warmup, args)
                progress(f"round {number} phase {name} done: {results[name].total:.2f} s")
            rounds.append(Round(number, results["A"], results["B"]))
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(rounds, args, generated), flush=True)
    if args.csv:
        write_csv(args.csv, studies, rounds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.serve_app:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_child())
        return 0
    if min(args.studies, args.instances, args.senders, args.stable_age, args.rounds) < 1:
        raise SystemExit("--studies, --instances, --senders, --stable-age, --rounds must be >= 1")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        progress("interrupted; Orthancs and app stopped, temporary files removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
