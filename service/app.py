"""The application factory: builds everything from explicit settings.

Resources with a lifetime (database, Orthanc process and client, the change follower) are started
and stopped with ``cleanup_ctx``, in that order, and shared through typed ``AppKey``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from worklists.rules import DEFAULT_RULES_PATH, RulesError, WorklistRules, parse_rules

from .auth.session_cache import SessionCache
from .escalation import sweep_forever
from .health import Health, sharing_health
from .http.auditing import audit_middleware
from .http.errors import error_middleware
from .http.keys import (
    BUS,
    DATABASE,
    FOLLOWER,
    HEALTH,
    LIVE,
    ORTHANC,
    PREFETCH,
    RENDER_WORKERS,
    RENDERER,
    ROLE,
    SECONDARIES,
    SERVICE_EXIT,
    SESSION_CACHE,
    SETTINGS,
    SLA,
    VIEWING,
)
from .http.middleware import access_middleware, add_security_headers
from .http.routing import setup_routes
from .i18n import PageRenderer
from .ingest import ChangeFollower
from .live import LiveUpdates, WorklistChange
from .live_feed import ingest_listener
from .local_rendering import InProcessRenderer
from .modalities import sync_facilities
from .notifications import NOTIFICATIONS, InAppNotifier, Notifications, Notifier, WebhookNotifier
from .orthanc.client import AbsentOrthanc, OrthancClient
from .orthanc.file_reader import OrthancFileReader
from .orthanc.process import ManagedOrthanc, OrthancConfig, load_or_create_credentials
from .orthanc.supervisor import OrthancSupervisor
from .prefetch import StudyPrefetch
from .process_bus import ProcessBus
from .rendering import FileSource, Renderer, RenderWorkers
from .reports.lifecycle import reports_context
from .roster import StatCallingLiveUpdates, running_stat_fanout
from .settings import Settings, SettingsError
from .storage import Database
from .viewing import Viewing
from .web_processes import (
    EXIT_ORTHANC_FAILED,
    ProcessRole,
    Secondaries,
    ServiceExit,
    running_secondaries,
    stop_this_process,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent


def managed_orthanc(settings: Settings) -> ManagedOrthanc:
    """The Orthanc child process the embedded mode runs, configured from settings."""
    credentials = load_or_create_credentials(settings.orthanc_dir)
    config = OrthancConfig(
        directory=settings.orthanc_dir,
        http_port=settings.orthanc_http_port,
        dicom_port=settings.orthanc_dicom_port,
        aet=settings.orthanc_aet,
        stable_age=settings.stable_age,
        plugins_dir=settings.orthanc_plugins_dir,
        credentials=credentials,
    )
    return ManagedOrthanc(config, settings.orthanc_executable)


def load_worklist_rules(settings: Settings) -> WorklistRules:
    """SLA and routing rules from TELEREAD_WORKLIST_RULES (or the shipped defaults).

    A file that cannot be read or used stops start-up with a message naming the problem.
    """
    path = settings.worklist_rules or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: cannot read {path}: {exc}") from exc
    try:
        return parse_rules(text, str(path))
    except RulesError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: {exc}") from exc


def create_app(
    settings: Settings, role: ProcessRole | None = None, *, orthanc: bool = True
) -> web.Application:
    """The service as one web process. ``role`` says which of ``TELEREAD_WEB_PROCESSES`` it is
    (default: the only one); background tasks run in the primary only (service.web_processes).

    ``orthanc=False`` builds the same app without an image archive: no Orthanc process or
    client, no change follower, no supervisor, no modality sync; whatever needs Orthanc fails as
    when Orthanc is down (503 ``pacs_unavailable``). For the tests of administration, sign-in,
    claims and reports that never touch an image: starting an Orthanc for each of them was half
    of the test suite's time.
    """
    role = role or ProcessRole()
    app = web.Application(
        middlewares=[error_middleware, audit_middleware, access_middleware],
        client_max_size=1 << 20,
    )
    app[SETTINGS] = settings
    app[ROLE] = role
    app[SERVICE_EXIT] = ServiceExit()
    app[SLA] = load_worklist_rules(settings)
    app[LIVE] = StatCallingLiveUpdates() if role.primary else LiveUpdates()
    app.on_shutdown.append(stop_restarting_secondaries)
    app.on_shutdown.append(close_live_updates)
    app[RENDERER] = PageRenderer(PACKAGE_DIR / "templates", PACKAGE_DIR / "locale")
    contexts = [
        bus_context,
        database_context,
        orthanc_context if orthanc else absent_orthanc_context,
        viewer_context,
        notifications_context,
        reports_context,
    ]
    if role.primary and orthanc:
        contexts.append(follower_context)
    contexts.append(health_context)
    contexts.append(secondaries_context)
    app.cleanup_ctx.extend(contexts)
    app.on_response_prepare.append(add_security_headers)
    setup_routes(app)
    return app


async def close_live_updates(app: web.Application) -> None:
    """Open event streams end first, or shutdown would wait for them."""
    app[LIVE].close()


async def bus_context(app: web.Application) -> AsyncIterator[None]:
    """The process bus when several web processes serve the port: live changes travel on it."""
    role = app[ROLE]
    if not role.shared or role.bus_path is None:
        app[BUS] = None
        yield
        return
    bus = ProcessBus(role.bus_path, hub=role.primary)
    await bus.start()
    app[BUS] = bus
    live = app[LIVE]
    live.relay_to(lambda change: bus.send("live", change.as_json()))
    bus.on("live", lambda payload: live.deliver(WorklistChange(**payload)))
    closing = False
    if not role.primary:  # the primary is gone (even killed): this process must not linger

        def primary_gone(_: object) -> None:
            if not closing:
                log.warning("lost the primary web process; stopping")
                stop_this_process()

        bus.lost.add_done_callback(primary_gone)
    yield
    closing = True
    await bus.close()


async def secondaries_context(app: web.Application) -> AsyncIterator[None]:
    """The primary starts the other web processes once its own start-up is done."""
    secondaries = Secondaries(app[SETTINGS], app[ROLE])
    app[SECONDARIES] = secondaries
    async with running_secondaries(secondaries, app[ROLE]):
        yield


async def stop_restarting_secondaries(app: web.Application) -> None:
    """First thing on shutdown: a secondary exiting from now on is not started again."""
    secondaries = app.get(SECONDARIES)
    if secondaries is not None:
        secondaries.stopping()


async def database_context(app: web.Application) -> AsyncIterator[None]:
    # One WAL checkpointer per database file: the primary's.
    database = Database(app[SETTINGS].database_path, checkpoints=app[ROLE].primary)
    app[DATABASE] = database
    app[SESSION_CACHE] = SessionCache(database)
    await database.anchor_if_missing()
    yield
    database.close()


async def orthanc_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    process: ManagedOrthanc | None = None
    if settings.managed_orthanc:  # secondaries are given the primary's Orthanc as a URL
        process = managed_orthanc(settings)
        await process.start()
        credentials = process.config.credentials
        client = OrthancClient(process.url, credentials.username, credentials.password)
    else:
        assert settings.orthanc_url is not None
        client = OrthancClient(
            settings.orthanc_url, settings.orthanc_username, settings.orthanc_password
        )
    app[ORTHANC] = client
    health = Health(client, app[ROLE], managed=process is not None)
    app[HEALTH] = health
    if app[ROLE].primary:
        try:
            await sync_facilities(client, app[DATABASE])
        except Exception:
            log.exception("could not register facilities with Orthanc; will retry on next start")
    if process is not None:
        health.supervisor = supervised(process, settings, app[SERVICE_EXIT])
        health.supervisor.start()
    yield
    if health.supervisor is not None:
        await health.supervisor.stop()
    await client.close()
    if process is not None:
        await process.stop()


async def absent_orthanc_context(app: web.Application) -> AsyncIterator[None]:
    """No archive (``create_app(..., orthanc=False)``): a client that always finds Orthanc
    unreachable, and a /healthz that says so."""
    client = AbsentOrthanc()
    app[ORTHANC] = client
    app[HEALTH] = Health(client, app[ROLE], managed=False)
    yield
    await client.close()


def supervised(
    process: ManagedOrthanc, settings: Settings, service_exit: ServiceExit
) -> OrthancSupervisor:
    """The managed Orthanc restarted when it dies; the service stopped (exit status
    ``EXIT_ORTHANC_FAILED``) when it keeps dying (service/orthanc/supervisor.py)."""
    return OrthancSupervisor(
        process,
        max_restarts=settings.orthanc_max_restarts,
        window=settings.orthanc_restart_window,
        on_give_up=lambda reason: service_exit.fail(EXIT_ORTHANC_FAILED, reason),
    )


async def health_context(app: web.Application) -> AsyncIterator[None]:
    """What /healthz reports: the follower's state, and the primary's heartbeat on the bus."""
    health = app[HEALTH]
    health.follower = app.get(FOLLOWER)
    if health.follower is not None and health.supervisor is not None:
        health.supervisor.restarted.append(health.follower.orthanc_restarted)
    async with sharing_health(health, app[BUS]):
        yield


async def viewer_context(app: web.Application) -> AsyncIterator[None]:
    """The viewer's study resolver, its renderer and prefetching (docs/viewer.md).

    ``TELEREAD_RENDER_WORKERS`` 0 (the default) renders in this process on threads; more gives
    render worker processes. The frame cache memory is shared out between the web processes.
    """
    settings, orthanc = app[SETTINGS], app[ORTHANC]

    viewing = Viewing(app[DATABASE], orthanc)
    app[VIEWING] = viewing
    cache_mb = max(1.0, settings.frame_cache_mb / app[ROLE].count)
    workers: Renderer
    reader: OrthancFileReader | None = None
    if settings.render_workers:
        source = FileSource(orthanc.base_url, orthanc.username, orthanc.password)
        workers = RenderWorkers(settings.render_workers, cache_mb, source)
    else:
        reader = OrthancFileReader(orthanc.base_url, orthanc.username, orthanc.password)
        workers = InProcessRenderer(cache_mb, reader.read)
    app[RENDER_WORKERS] = workers
    await workers.start()
    prefetch = StudyPrefetch(viewing, workers, app[BUS])
    app[PREFETCH] = prefetch
    yield
    await prefetch.close()
    await viewing.close()
    await workers.close()
    if reader is not None:
        reader.close()


async def follower_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    follower = ChangeFollower(
        app[ORTHANC],
        app[DATABASE],
        app[SLA],
        poll_interval=settings.changes_poll_interval,
        quarantine_dir=settings.quarantine_dir,
        max_file_bytes=settings.upload_max_expanded_file_mb << 20,
    )
    follower.listeners.append(ingest_listener(app[DATABASE], app[LIVE]))
    app[FOLLOWER] = follower
    task = asyncio.create_task(follower.run(), name="orthanc-change-follower")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def notifications_context(app: web.Application) -> AsyncIterator[None]:
    """Notifiers, the stat fan-out (a live-updates listener) and the escalation sweep."""
    settings = app[SETTINGS]
    notifiers: list[Notifier] = [InAppNotifier(app[DATABASE])]
    if settings.webhook_url and settings.webhook_secret:
        notifiers.append(WebhookNotifier(settings.webhook_url, settings.webhook_secret))
    notifications = Notifications(notifiers)
    app[NOTIFICATIONS] = notifications
    if not app[ROLE].primary:  # the sweeps and the stat fan-out run once, in the primary
        yield
        await notifications.close()
        return
    sweep = asyncio.create_task(
        sweep_forever(
            app[DATABASE],
            app[LIVE],
            notifications,
            settings.escalation_interval,
            settings.escalation_share,
        ),
        name="escalation-sweep",
    )
    async with running_stat_fanout(app[DATABASE], app[LIVE], notifications):
        yield
    sweep.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweep
    await notifications.close()
