"""Shared fixtures: a real Orthanc on free ports, the real app, real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher, Type

from service import app as service_app
from service.app import create_app
from service.auth import passwords
from service.demo.synthetic import dataset_bytes
from service.dicom.send import send_datasets
from service.http.keys import DATABASE, FOLLOWER
from service.intake.file_checks import FileChecks
from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    OrthancStartError,
    load_or_create_credentials,
)
from service.settings import Settings
from service.storage import Database, opening
from service.storage import facilities as facility_store
from service.storage import users as user_store

from . import backends, storage_gate
from .ports import free_port
from .processes import ChildRecord

PASSWORD = "correct-horse-battery"
_TRACER = pytest.StashKey[storage_gate.Tracer]()
_GATE_MISSING = pytest.StashKey[dict[str, list[str]]]()

# Fixtures whose tests get a marker (pytest.ini), so that ``-m "not browser"`` and the like work
# without anyone remembering to mark a test.
MARKED_BY_FIXTURE = {"orthanc": "orthanc", "browser": "browser", "page": "browser"}

_CHILDREN = ChildRecord()

PRODUCTION_HASHER = passwords._hasher
PRODUCTION_DUMMY_HASH = passwords._DUMMY_HASH
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)
"""argon2id at its least cost (8 KiB, one pass): 0.02 ms a hash instead of the production
parameters' ~26 ms of CPU (~130 ms at a load of 15), which every login, password change and
signature of the suite paid, thousands of times a run."""


@pytest.fixture(autouse=True)
def _pydicom_validation_kept() -> Iterator[None]:
    """pydicom's value validation is process-wide, and dicomweb-client's file helpers set it to
    RAISE and restore it only when they return: one that raised left every later test of the
    worker reading strictly (a malformed file built by a test then failed to encode)."""
    from pydicom import config

    reading = config.settings._reading_validation_mode
    writing = config.settings._writing_validation_mode
    yield
    config.settings._reading_validation_mode = reading
    config.settings._writing_validation_mode = writing


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist worksteal`` (make test) or plain ``-n N`` (``load``): work stealing that keeps
    each test module on one worker (tests/whole_modules.py)."""
    if config.getoption("dist") not in ("worksteal", "load"):
        return None
    from .whole_modules import WholeModuleWorkStealing

    return WholeModuleWorkStealing(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (a CI time limit, ``kill``) unwinds like Ctrl-C: fixtures are
    torn down and their Orthancs stopped. Killed outright, it left them running for hours (each
    Orthanc runs in a session of its own, so the signal to pytest's group does not reach it).

    With ``TELEREAD_STORAGE_GATE=1`` (``make test``) every process traces which storage
    functions run on which engine (tests/storage_gate.py); the xdist workers, started after
    this, find the directory their notes go to in the environment."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    if os.environ.get(storage_gate.ENABLED) == "1":
        if not hasattr(config, "workerinput"):
            os.environ[storage_gate.DIRECTORY] = tempfile.mkdtemp(prefix="teleread-gate-")
        tracer = storage_gate.Tracer(by_test=bool(os.environ.get(storage_gate.REPORT)))
        tracer.install()
        config.stash[_TRACER] = tracer


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each process leaves its notes of the storage gate; the controlling one (after its
    workers) judges them: a storage function no test ran on one engine fails the run."""
    config = session.config
    tracer = config.stash.get(_TRACER, None)
    if tracer is None:
        return
    directory = Path(os.environ[storage_gate.DIRECTORY])
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    tracer.dump(directory / f"{worker}.json")
    if hasattr(config, "workerinput"):
        return
    missing, ran = storage_gate.verdict(directory)
    config.stash[_GATE_MISSING] = missing
    if report := os.environ.get(storage_gate.REPORT):
        Path(report).write_text(
            json.dumps({e: {k: sorted(v) for k, v in r.items()} for e, r in ran.items()})
        )
    shutil.rmtree(directory, ignore_errors=True)
    if any(missing.values()) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    missing = config.stash.get(_GATE_MISSING, None)
    if missing is None:
        return
    for engine, functions in missing.items():
        if functions:
            terminalreporter.section(f"storage functions no test ran on {engine}", red=True)
            for function in functions:
                terminalreporter.line(f"  {function}")
    if not any(missing.values()):
        terminalreporter.line("storage gate: every SQL storage function ran on both engines")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``orthanc`` on every test that starts a real Orthanc through the fixture, ``browser`` on
    every test that drives Chromium. Modules that start Orthanc otherwise mark themselves.
    The PostgreSQL runs of the cases ``backends.BOTH_BACKENDS_CASES`` leaves to SQLite are
    deselected."""
    kept, left_to_sqlite = [], []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for name in sorted({MARKED_BY_FIXTURE[f] for f in fixtures & MARKED_BY_FIXTURE.keys()}):
            item.add_marker(name)
        (kept if _runs_here(item) else left_to_sqlite).append(item)
    if left_to_sqlite:
        config.hook.pytest_deselected(items=left_to_sqlite)
        items[:] = kept


def _runs_here(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("database_backend") != "postgresql":
        return True
    test = f"{item.module.__name__.rsplit('.', 1)[-1]}::{item.originalname}"
    case = callspec.id.removeprefix("postgresql").removeprefix("-")
    return backends.runs_on_postgresql_too(test, case)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """After each phase of each test, note the processes the run started (tests/processes.py)."""
    report = yield
    _CHILDREN.note(item.nodeid)
    return report


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fails the run, naming them, if processes the tests started are still running when every
    other fixture has been torn down (this one is set up first, so torn down last)."""
    yield
    _CHILDREN.note("session teardown")
    left = _CHILDREN.end()
    if left:
        pytest.fail(
            f"{len(left)} process(es) started by the tests outlived them (now killed):\n"
            + "\n".join(child.describe() for child in left),
            pytrace=False,
        )


class SharedFileChecks(FileChecks):
    """The file-check worker process of every app in one test process (see
    :func:`one_file_check_process`): an app's ``close`` leaves it running."""

    def close(self) -> None:
        """Kept for the next app; the session's end stops it (:meth:`stop`)."""

    def stop(self) -> None:
        super().close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test of a module in ``backends.BOTH_BACKENDS``, and each test named in
    ``backends.BOTH_BACKENDS_TESTS``, runs on SQLite and on PostgreSQL (module-scoped, so a
    module's shared world is built once per engine)."""
    if "TELEREAD_TEST_BACKEND" in os.environ:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    test = f"{module}::{metafunc.function.__name__}"
    if module in backends.BOTH_BACKENDS or test in backends.BOTH_BACKENDS_TESTS:
        engines = ["sqlite", "postgresql"]
    elif any(chosen.startswith(f"{module}::") for chosen in backends.BOTH_BACKENDS_TESTS):
        # the module's other tests, on SQLite only, share its SQLite world with the chosen
        engines = ["sqlite"]
    else:
        return
    if "postgresql" in engines:
        shared = [
            name
            for name, definitions in metafunc._arg2fixturedefs.items()
            if definitions[-1].scope == "module"
            and name != "database_backend"
            and "database_backend" not in definitions[-1].argnames
        ]
        if shared:  # it would be built once, on the first engine, and serve both
            raise pytest.UsageError(
                f"{module}: module-scoped fixture(s) {shared} must take database_backend"
            )
    metafunc.parametrize("database_backend", engines, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine this module's apps use (see ``pytest_generate_tests``)."""
    chosen = getattr(request, "param", None)
    backends.choose(chosen)
    yield backends.backend()
    backends.choose(None)


@pytest.fixture(autouse=True)
def _sqlite_file_only(request: pytest.FixtureRequest, database_backend: str) -> None:
    """A test marked ``sqlite_file`` checks the SQLite file itself: on PostgreSQL there is no
    file (tests/test_postgres_schema.py and test_postgres_replicas.py check the same rules)."""
    if database_backend == "postgresql" and request.node.get_closest_marker("sqlite_file"):
        pytest.skip("works on the SQLite file itself; the app runs on PostgreSQL")


@pytest.fixture(scope="session", autouse=True)
def postgres_stopped(no_process_left_behind: None) -> Iterator[None]:
    """The PostgreSQL server this test process may have started (tests/backends.py) is stopped
    at its end."""
    yield
    backends.stop()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """The apps the tests run in this process hash and verify passwords with
    :data:`TEST_HASHER`, and the suite's users are stored with such a hash (``_HASH``), so a
    login costs no argon2 work worth the name. Everything else about passwords is the
    service's own code: the hash is still argon2id, still checked on the hashing threads, and a
    hash with other parameters is still replaced at login. The production parameters are
    tested where they matter (tests/test_login_limits.py, with :func:`production_hashes`, and
    the ``teleread`` commands the CLI tests run in their own processes)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", TEST_HASHER)
        patch.setattr(passwords, "_DUMMY_HASH", TEST_HASHER.hash("teleread-timing-equaliser"))
        yield


@pytest.fixture
def production_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test of the production argon2 parameters: the service's own hasher again."""
    monkeypatch.setattr(passwords, "_hasher", PRODUCTION_HASHER)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", PRODUCTION_DUMMY_HASH)


@pytest.fixture(scope="session", autouse=True)
def one_file_check_process(no_process_left_behind: None) -> Iterator[None]:
    """Every app this test process builds checks C-STOREd files in one worker process, started
    at the first check, instead of spawning its own: each spawned worker (a new interpreter
    importing pydicom) cost ~0.8 CPU-seconds and delayed its app's first ingest by 1-2 s on
    the loaded 2-core machine, in every test that C-STOREs a study. The checks still run in a
    real worker process; tests/test_file_checks.py covers one worker's life (start, a death
    replaced, exit with a killed parent) on FileChecks itself. Stopped before the session's
    check for processes left behind."""
    shared = SharedFileChecks()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service_app, "FileChecks", lambda: shared)
        yield
    shared.stop()


@pytest.fixture
async def orthanc(tmp_path: Path) -> AsyncIterator[ManagedOrthanc]:
    """A throwaway Orthanc (StableAge 1 s), killed hard at the end (safe for test archives)."""
    process = await start_orthanc(tmp_path / "orthanc", "TELEREAD")
    yield process
    await process.kill()


async def start_orthanc(directory: Path, aet: str, attempts: int = 3) -> ManagedOrthanc:
    """Start an Orthanc on free ports; a port another process grabbed meanwhile means retry."""
    for attempt in range(attempts):
        config = OrthancConfig(
            directory=directory,
            http_port=free_port(),
            dicom_port=free_port(),
            aet=aet,
            stable_age=1,
            plugins_dir=Path("/usr/share/orthanc/plugins"),
            credentials=load_or_create_credentials(directory),
        )
        process = ManagedOrthanc(config)
        try:
            await process.start()
            return process
        except OrthancStartError as exc:
            if "already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
async def app_orthanc(orthanc: ManagedOrthanc) -> ManagedOrthanc | None:
    """The Orthanc the app under test uses: a real one. A module whose tests never store or show
    an image overrides this fixture to return None, and its app is built without Orthanc
    (``create_app(..., orthanc=False)``): no process to start, 503 wherever images are needed."""
    return orthanc


def orthanc_if_asked(request: pytest.FixtureRequest) -> ManagedOrthanc | None:
    """For a module's ``app_orthanc`` override when most of its tests need no Orthanc: the real
    one for a test that names the ``orthanc`` fixture among its arguments, None for the others."""
    return request.getfixturevalue("orthanc") if "orthanc" in request.fixturenames else None


@pytest.fixture
def settings(tmp_path: Path, app_orthanc: ManagedOrthanc | None) -> Settings:
    return suite_settings(tmp_path, app_orthanc)


#: How often the suite's apps ask Orthanc for changes. Not 0.05 s: an idle app and its Orthanc
#: then spent 3.9 % of a core polling (0.39 CPU-seconds in 10 s; 1.1 % at 0.5 s, both
#: measured), and the modules' worlds stay up for minutes, four at a time; at 0.2 s it is about
#: 1.6 % (between the two). The second waited for a study (Orthanc's StableAge) dwarfs the
#: extra 0.15 s.
CHANGES_POLL_SECONDS = 0.2


def suite_settings(tmp_path: Path, app_orthanc: ManagedOrthanc | None) -> Settings:
    """The suite's settings: data under ``tmp_path``, Orthanc's address when there is one."""
    base = Settings(
        data_dir=tmp_path / "var", stable_age=1, changes_poll_interval=CHANGES_POLL_SECONDS
    )
    if backends.backend() == "postgresql":
        base = replace(base, database_url=backends.new_database_url(tmp_path))
    if app_orthanc is None:
        return base
    credentials = app_orthanc.config.credentials
    return replace(
        base,
        orthanc_url=app_orthanc.url,
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
        orthanc_dicom_port=app_orthanc.config.dicom_port,
    )


@dataclass
class Service:
    """The running app under test with helpers to seed and call it."""

    client: TestClient
    app: web.Application
    orthanc: ManagedOrthanc | None
    """None when the app was built without Orthanc (see the ``app_orthanc`` fixture)."""

    @property
    def database(self) -> Database:
        return self.app[DATABASE]

    async def add_facility(self, name: str, kind: str, aet: str) -> int:
        facility_id = await self.database.write(
            facility_store.add_facility, name=name, kind=kind, aet=aet, timezone="Asia/Shanghai"
        )
        return facility_id

    async def add_user(self, username: str, role: str, facility_id: int) -> int:
        return await self.database.write(
            user_store.add_user,
            username=username,
            password_hash=_HASH,
            role=role,
            facility_id=facility_id,
        )

    async def login(self, username: str) -> dict[str, str]:
        """Bearer headers for a user (logs in through the API)."""
        response = await self.client.post(
            "/api/login", json={"username": username, "password": PASSWORD}
        )
        assert response.status == 200, await response.text()
        token = (await response.json())["token"]
        return {"Authorization": f"Bearer {token}"}

    async def c_store(self, datasets: list[Any], calling_aet: str) -> None:
        assert self.orthanc is not None, "this module's app runs without Orthanc"
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            None,
            lambda: send_datasets(
                datasets,
                host="127.0.0.1",
                port=self.orthanc.config.dicom_port,
                calling_aet=calling_aet,
                called_aet="TELEREAD",
            ),
        )
        assert result.failed == 0, result

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Poll an async predicate until it returns something truthy (every 50 ms: most waits
        are for a study's ingest, which comes at an unknown moment after Orthanc's 1 s
        StableAge, and each was 50 ms later on average at a 100 ms poll)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def worklist(self, headers: dict[str, str], **params: str) -> dict[str, Any]:
        response = await self.client.get("/api/worklist", headers=headers, params=params)
        assert response.status == 200, await response.text()
        return await response.json()

    @property
    def follower(self):
        return self.app[FOLLOWER]


_HASH = TEST_HASHER.hash(PASSWORD)


@pytest.fixture
async def service(
    settings: Settings,
    app_orthanc: ManagedOrthanc | None,
    aiohttp_client,
) -> Service:
    app = create_app(settings, orthanc=app_orthanc is not None)
    client = await aiohttp_client(app)
    return Service(client, app, app_orthanc)


@dataclass
class People:
    """Facilities and their users in one call: the set-up most modules begin with."""

    service: Service

    async def seed(
        self,
        facilities: dict[str, tuple[str, str, str]],
        users: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, int]:
        """``facilities``: key -> (name, kind, AE title); ``users``: username -> (role, key of
        their facility), each with the password ``PASSWORD``. The ids, by key and username."""
        ids = {
            key: await self.service.add_facility(name, kind, aet)
            for key, (name, kind, aet) in facilities.items()
        }
        for username, (role, facility) in (users or {}).items():
            ids[username] = await self.service.add_user(username, role, ids[facility])
        return ids


@pytest.fixture
def people(service: Service) -> People:
    """The factory of facilities and people for the app under test (see :class:`People`)."""
    return People(service)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database file with every migration applied, made once per test process."""
    path = tmp_path_factory.mktemp("migrated") / "teleread.db"
    Database(path, checkpoints=False).close()
    return path


@pytest.fixture(scope="session", autouse=True)
def new_sqlite_files_start_migrated(migrated_database: Path) -> Iterator[None]:
    """Every app (or command) that opens a SQLite file not there yet, through
    ``open_database``, gets a copy of the migrated empty database instead of migrating a new
    file: the same schema (the same migrations made it), ~70 ms less for each of hundreds of
    apps a worker builds, whatever settings a module gives them (``Database`` itself is left
    alone: the migration tests call it)."""
    real = opening.Database

    def from_the_migrated_copy(path: Path, *args: Any, **kwargs: Any) -> Database:
        if not Path(path).exists():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(migrated_database, path)
        return real(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(opening, "Database", from_the_migrated_copy)
        yield


@pytest.fixture
async def service_with_orthanc(tmp_path: Path, orthanc: ManagedOrthanc, aiohttp_client) -> Service:
    """The app with a real Orthanc, for the odd test of a module whose app runs without one."""
    app = create_app(suite_settings(tmp_path, orthanc))
    return Service(await aiohttp_client(app), app, orthanc)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, headless (never a downloaded browser); see shared/BROWSER-TESTS.md."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/lib/chromium/chromium",
        "args": ["--headless=new", "--disable-gpu", "--disable-quic"],
    }


async def add_specialist(app: web.Application, username: str = "u") -> None:
    """A regional facility and a specialist who logs in with ``PASSWORD``, written straight into
    the database of an app built without the ``service`` fixture (other settings)."""
    database = app[DATABASE]
    facility = await database.write(
        facility_store.add_facility, name="C", kind="regional", aet="C", timezone="UTC"
    )
    await database.write(
        user_store.add_user,
        username=username,
        password_hash=_HASH,
        role="specialist",
        facility_id=facility,
    )


async def store_in_orthanc(orthanc: ManagedOrthanc, datasets: list[Any]) -> list[str]:
    """Orthanc's ids of ``datasets`` (pydicom datasets or Part-10 bytes), stored over REST in
    the test's real Orthanc."""
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    try:
        return [
            (
                await client.request(
                    "POST",
                    "/instances",
                    data=data if isinstance(data, bytes) else dataset_bytes(data),
                    headers={"Content-Type": "application/dicom"},
                )
            )["ID"]
            for data in datasets
        ]
    finally:
        await client.close()
