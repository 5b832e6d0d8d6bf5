"""The application factory: builds everything from explicit settings.

Resources with a lifetime (database, Orthanc process and client, the change follower) are started
and stopped with ``cleanup_ctx``, in that order, and shared through typed ``AppKey``s
(service/http/keys.py). This is the one place that wires: every start-up context is here, and
domain modules receive what they need as arguments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from worklists.rules import WorklistRules, parse_rules

from .audit.forwarding import atna_forwarder
from .auth.session_cache import SessionCache
from .hl7.dispatch import Dispatcher
from .hl7.listener import MllpListener
from .hl7.results_outbox import ResultPolicy, ResultSender
from .hl7.retention import PRUNE_EVERY_SECONDS, forget_old_control_ids
from .http.auditing import audit_middleware
from .http.cors import add_cors_headers, cors_middleware
from .http.errors import error_middleware
from .http.fhir_answers import fhir_middleware
from .http.keys import (
    BUS,
    CA,
    DATABASE,
    EFFECTS,
    FOLLOWER,
    HEALTH,
    HL7_RESULTS,
    LEADERSHIP,
    LIVE,
    NOTIFICATIONS,
    OHIF,
    ORTHANC,
    PEER_REVIEW,
    PREFETCH,
    RECOGNITION_RULES,
    RENDER_WORKERS,
    RENDERER,
    REPLICA_BUS,
    REPORT_DELIVERY,
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
from .i18n import shared_renderer
from .intake.file_checks import FileChecks
from .intake.ingest import ChangeFollower
from .intake.intake import IngestOutcome
from .intake.modalities import sync_facilities
from .logs import configure_logging
from .mwl.publisher import publishing
from .peer_review.policy import load_peer_review_policy
from .quality.background import load_recognition_rules, monthly_task
from .reports.delivery import DeliveryPolicy, ReportDelivery
from .reports.lifecycle import critical_sweep_once, load_ca
from .runtime.health import Health, sharing_health
from .runtime.leadership import Leadership
from .runtime.orthanc.client import AbsentOrthanc, OrthancClient
from .runtime.orthanc.file_doors import FileDoors
from .runtime.orthanc.file_reader import OrthancFileReader
from .runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    SharedIndex,
    load_or_create_credentials,
)
from .runtime.orthanc.stored_files import StoredFiles
from .runtime.orthanc.supervisor import OrthancSupervisor
from .runtime.periodic import running, running_task
from .runtime.pg_bus import ReplicaBus, either
from .runtime.process_bus import ProcessBus
from .runtime.web_processes import (
    EXIT_ORTHANC_FAILED,
    ProcessRole,
    Secondaries,
    ServiceExit,
    finish_undisturbed,
    running_secondaries,
    stop_this_process,
)
from .settings import Settings, read_worklist_rules
from .storage.leases import AdvisoryLease
from .storage.opening import open_database
from .storage.replica_channel import ReplicaChannel
from .viewing.local_rendering import InProcessRenderer
from .viewing.ohif import OhifFiles
from .viewing.prefetch import StudyPrefetch
from .viewing.rendering import FileSource, Renderer, RenderWorkers
from .viewing.viewing import Viewing
from .worklist.effects import AfterCommit
from .worklist.escalation import sweep_once
from .worklist.live import LiveUpdates, WorklistChange
from .worklist.live_feed import ingest_listener
from .worklist.notifications import (
    InAppNotifier,
    Notifications,
    Notifier,
    WebhookNotifier,
)
from .worklist.roster import StatCallingLiveUpdates, running_stat_fanout

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent


def managed_orthanc(settings: Settings) -> ManagedOrthanc:
    """The Orthanc child process the embedded mode runs, configured from settings."""
    credentials = load_or_create_credentials(settings.orthanc_dir)
    shared = None
    if settings.orthanc_index_url:
        shared = SharedIndex(settings.orthanc_index_url, settings.orthanc_storage)
    config = OrthancConfig(
        directory=settings.orthanc_dir,
        http_port=settings.orthanc_http_port,
        dicom_port=settings.orthanc_dicom_port,
        aet=settings.orthanc_aet,
        stable_age=settings.stable_age,
        plugins_dir=settings.orthanc_plugins_dir,
        credentials=credentials,
        shared_index=shared,
    )
    return ManagedOrthanc(config, settings.orthanc_executable)


def load_worklist_rules(settings: Settings) -> WorklistRules:
    """SLA and routing rules from TELEREAD_WORKLIST_RULES (or the shipped defaults).

    A file that cannot be read or used stops start-up with a message naming the problem.
    """
    return read_worklist_rules(settings, parse_rules)


def create_app(
    settings: Settings, role: ProcessRole | None = None, *, orthanc: bool = True
) -> web.Application:
    """The service as one web process. ``role`` says which of ``TELEREAD_WEB_PROCESSES`` it is
    (default: the only one); background tasks run in the primary only
    (service.runtime.web_processes).

    ``orthanc=False`` builds the same app without an image archive: no Orthanc process or
    client, no change follower, no supervisor, no modality sync; whatever needs Orthanc fails as
    when Orthanc is down (503 ``pacs_unavailable``). For the tests of administration, sign-in,
    claims and reports that never touch an image: starting an Orthanc for each of them was half
    of the test suite's time.
    """
    role = role or ProcessRole()
    app = web.Application(
        middlewares=[
            cors_middleware,
            error_middleware,
            fhir_middleware,
            audit_middleware,
            access_middleware,
        ],
        client_max_size=1 << 20,
    )
    app[SETTINGS] = settings
    app[ROLE] = role
    app[SERVICE_EXIT] = ServiceExit()
    app[SLA] = load_worklist_rules(settings)
    app[RECOGNITION_RULES] = load_recognition_rules(settings)
    app[PEER_REVIEW] = load_peer_review_policy(settings)
    app[OHIF] = OhifFiles(settings.ohif_files)
    app[LIVE] = StatCallingLiveUpdates() if role.primary else LiveUpdates()
    app.on_shutdown.append(stop_restarting_secondaries)
    app.on_shutdown.append(close_live_updates)
    app[RENDERER] = shared_renderer(PACKAGE_DIR / "templates", PACKAGE_DIR / "locale")
    contexts = [
        bus_context,
        database_context,
        replicas_context,
        orthanc_context if orthanc else absent_orthanc_context,
        viewer_context,
        notifications_context,
        reports_context,
    ]
    if role.primary and orthanc:
        contexts.append(follower_context)
        contexts.append(worklist_files_context)
    if role.primary and settings.hl7_port:
        contexts.append(hl7_context)
    contexts.append(quality_context)
    contexts.append(atna_context)
    contexts.append(hl7_results_context)
    contexts.append(health_context)
    contexts.append(secondaries_context)
    app.cleanup_ctx.extend(contexts)
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(add_cors_headers)
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
    secondaries = Secondaries(app[SETTINGS], app[ROLE], target=run_secondary)
    app[SECONDARIES] = secondaries
    async with running_secondaries(secondaries, app[ROLE]):
        yield


def run_secondary(settings: Settings, role: ProcessRole) -> None:
    """A secondary web process's whole life (the target of the primary's ``Process``)."""
    configure_logging()
    app = create_app(settings, role)
    app.on_shutdown.insert(0, finish_undisturbed)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        print=None,
        shutdown_timeout=5,
        access_log=None,
    )


async def stop_restarting_secondaries(app: web.Application) -> None:
    """First thing on shutdown: a secondary exiting from now on is not started again."""
    secondaries = app.get(SECONDARIES)
    if secondaries is not None:
        secondaries.stopping()


async def database_context(app: web.Application) -> AsyncIterator[None]:
    # One WAL checkpointer per database file: the primary's.
    database = open_database(app[SETTINGS], checkpoints=app[ROLE].primary)
    app[DATABASE] = database
    app[SESSION_CACHE] = SessionCache(database)
    await database.anchor_if_missing()
    yield
    database.close()


async def replicas_context(app: web.Application) -> AsyncIterator[None]:
    """Who runs the once-only background work, and the bus between replicas.

    On SQLite (one host) the primary web process runs it all, as ever. On PostgreSQL, replicas
    on several hosts may share the database: each primary seeks the lease on the work
    (service/runtime/leadership.py), and every web process talks to the other replicas on the
    database's LISTEN/NOTIFY channel (service/runtime/pg_bus.py), live worklist changes first.
    """
    settings, role = app[SETTINGS], app[ROLE]
    url = settings.database_url
    if not url:
        app[LEADERSHIP] = Leadership(leads=role.primary)
        app[REPLICA_BUS] = None
        yield
        return
    bus = ReplicaBus(ReplicaChannel(url), role.replica)
    await bus.start()
    app[REPLICA_BUS] = bus
    live = app[LIVE]
    live.relay_to(lambda change: bus.send("live", change.as_json()))
    bus.on("live", lambda payload: live.deliver(WorklistChange(**payload)))
    lease = AdvisoryLease(url, "background work") if role.primary else None
    leadership = Leadership(lease)
    app[LEADERSHIP] = leadership
    try:
        async with leadership.campaigning():
            yield
    finally:
        await bus.close()


def kicks_between_replicas(
    bus: ReplicaBus, delivery: ReportDelivery, leadership: Leadership
) -> None:
    """A delivery kick in this replica (a signature here, or one its secondaries relayed)
    reaches the other replicas' primaries, where it wakes the worker of the one that leads; a
    kick heard from another replica is not sent on again."""
    hearing = False

    def send() -> None:
        if not hearing and not leadership.leading:
            bus.send("report-delivery", {})

    def hear(_payload: object) -> None:
        nonlocal hearing
        hearing = True
        try:
            delivery.kick()
        finally:
            hearing = False

    delivery.kick_relays.append(send)
    bus.on("report-delivery", hear)


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
            settings.orthanc_url,
            settings.orthanc_username,
            settings.orthanc_password,
            other_urls=settings.other_orthancs,
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
    ``EXIT_ORTHANC_FAILED``) when it keeps dying (service/runtime/orthanc/supervisor.py)."""
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
    health.leadership = app[LEADERSHIP]
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

    cache_mb = max(1.0, settings.frame_cache_mb / app[ROLE].count)
    workers: Renderer
    reader: FileDoors | None = None
    stored: StoredFiles | None = None
    if settings.render_workers:
        first, *others = orthanc.urls
        source = FileSource(first, orthanc.username, orthanc.password, tuple(others))
        workers = RenderWorkers(settings.render_workers, cache_mb, source)
    else:
        # One reader per Orthanc of the archive (TELEREAD_ORTHANC_OTHER_URLS), the next used
        # when one does not answer.
        reader = FileDoors(
            [OrthancFileReader(url, orthanc.username, orthanc.password) for url in orthanc.urls]
        )
        # The managed Orthanc's files are read from its storage area (every web process runs
        # beside it); an Orthanc elsewhere has no such directory here.
        stored = StoredFiles.beside(settings.orthanc_storage, reader.read)
        workers = InProcessRenderer(cache_mb, stored.read if stored else reader.read)
    viewing = Viewing(app[DATABASE], orthanc, stored)
    app[VIEWING] = viewing
    app[RENDER_WORKERS] = workers
    await workers.start()
    prefetch = StudyPrefetch(viewing, workers, either(app[BUS], app[REPLICA_BUS]))
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
        file_checks=FileChecks(),
    )
    follower.listeners.append(ingest_listener(app[DATABASE], app[EFFECTS]))
    follower.listeners.append(layout_listener(app[VIEWING]))
    app[FOLLOWER] = follower
    async with app[LEADERSHIP].once(
        "the Orthanc change follower",
        lambda: running_task("orthanc-change-follower", follower.run),
    ):
        yield
    if follower.file_checks is not None:
        await asyncio.to_thread(follower.file_checks.close)


async def worklist_files_context(app: web.Application) -> AsyncIterator[None]:
    """The modality worklist item files Orthanc answers worklist C-FIND from, kept equal to the
    database by the primary alone (service/mwl/); none without a folder shared with Orthanc."""
    folder = app[SETTINGS].worklist_files_dir
    if folder is None:
        yield
        return
    database, live = app[DATABASE], app[LIVE]
    async with app[LEADERSHIP].once(
        "the modality worklist files", lambda: publishing(database, folder, live)
    ):
        yield


def layout_listener(viewing: Viewing) -> Callable[[IngestOutcome], None]:
    """Build the viewer's layout of each study the ingest made a consultation of, so that its
    first opening reads it from the database instead of Orthanc (service/viewing/viewing.py)."""

    def listen(outcome: IngestOutcome) -> None:
        if outcome.consultation_ids and outcome.orthanc_id:
            viewing.study_stable(outcome.study_instance_uid, outcome.orthanc_id)

    return listen


async def notifications_context(app: web.Application) -> AsyncIterator[None]:
    """Notifiers, the after-commit effects applier, the stat fan-out (a live-updates
    listener) and the escalation sweep."""
    settings = app[SETTINGS]
    notifiers: list[Notifier] = [InAppNotifier(app[DATABASE])]
    if settings.webhook_url and settings.webhook_secret:
        notifiers.append(WebhookNotifier(settings.webhook_url, settings.webhook_secret))
    notifications = Notifications(notifiers)
    app[NOTIFICATIONS] = notifications
    effects = AfterCommit(app[LIVE], notifications)
    app[EFFECTS] = effects
    if not app[ROLE].primary:  # the sweeps and the stat fan-out run once, in the primary
        yield
        await notifications.close()
        return
    database, share, live, leadership = (
        app[DATABASE],
        settings.escalation_share,
        app[LIVE],
        app[LEADERSHIP],
    )
    async with (
        leadership.once(
            "the escalation sweep",
            lambda: running(
                "escalation sweep",
                settings.escalation_interval,
                lambda: sweep_once(database, effects, share),
            ),
        ),
        leadership.once("the stat fan-out", lambda: running_stat_fanout(database, live, effects)),
    ):
        yield
    await notifications.close()


async def atna_context(app: web.Application) -> AsyncIterator[None]:
    """Live forwarding of the audit trail to the ATNA repository (``TELEREAD_ATNA_URL``): in
    the primary only, as every secondary's records are in the same trail."""
    forwarder = None
    if app[ROLE].primary:  # reads certificate files, may ask DNS for this host's name
        forwarder = await asyncio.to_thread(
            atna_forwarder, app[SETTINGS], app[DATABASE], app[LEADERSHIP].fence
        )
    if forwarder is None:
        yield
        return
    async with app[LEADERSHIP].once("ATNA forwarding", forwarder.running):
        yield


async def quality_context(app: web.Application) -> AsyncIterator[None]:
    """The monthly recomputation of QC scores and the recognition list (service/quality/), in
    the primary only."""
    if not app[ROLE].primary:
        yield
        return
    database, rules = app[DATABASE], app[RECOGNITION_RULES]
    async with app[LEADERSHIP].once(
        "the monthly recomputation", lambda: monthly_task(database, rules)
    ):
        yield


async def hl7_context(app: web.Application) -> AsyncIterator[None]:
    """The HL7 v2 MLLP listener (``TELEREAD_HL7_PORT``), in the primary only: orders and
    patient updates from hospital systems (service/hl7/)."""
    settings = app[SETTINGS]
    listener = MllpListener(Dispatcher(app[DATABASE], app[EFFECTS], app[SLA]))
    assert settings.hl7_port is not None
    database = app[DATABASE]
    async with (
        listener.running(settings.host, settings.hl7_port),
        running("HL7 control ids", PRUNE_EVERY_SECONDS, lambda: forget_old_control_ids(database)),
    ):
        yield


async def hl7_results_context(app: web.Application) -> AsyncIterator[None]:
    """The HL7 results outbox sender (service/hl7/results_outbox.py), in the primary only: a
    signature in any process kicks report delivery, whose kicks reach the primary, and wakes it
    too; otherwise it polls."""
    if not app[ROLE].primary:
        yield
        return
    settings = app[SETTINGS]
    sender = ResultSender(
        app[DATABASE],
        ResultPolicy(settings.hl7_retry_seconds, settings.hl7_max_attempts),
        app[LEADERSHIP].fence,
    )
    app[HL7_RESULTS] = sender
    app[REPORT_DELIVERY].kick_relays.append(sender.wake.set)
    interval = min(settings.hl7_retry_seconds, 5.0)
    async with app[LEADERSHIP].once(
        "the HL7 results outbox",
        lambda: sender.working(interval),
    ):
        yield


async def reports_context(app: web.Application) -> AsyncIterator[None]:
    """The consortium CA, report delivery (kicked across processes on the bus) and, in the
    primary, the delivery worker and the critical-finding sweep."""
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
        app[LEADERSHIP].fence,
    )
    app[REPORT_DELIVERY] = delivery
    app[EFFECTS].delivery = delivery
    bus, primary = app[BUS], app[ROLE].primary
    if bus is not None and primary:
        bus.on("report-delivery", lambda _payload: delivery.kick())
    elif bus is not None:
        delivery.kick_relays.append(lambda: bus.send("report-delivery", {}))
    replicas = app[REPLICA_BUS]
    if replicas is not None and primary:
        kicks_between_replicas(replicas, delivery, app[LEADERSHIP])
    if not primary:  # delivery and the critical-finding sweep run once, in the primary
        yield
        return
    database, effects, leadership = app[DATABASE], app[EFFECTS], app[LEADERSHIP]
    minutes = settings.critical_ack_minutes
    async with (
        leadership.once(
            "report delivery",
            lambda: delivery.working(min(settings.delivery_retry_seconds, 5.0)),
        ),
        leadership.once(
            "the critical finding sweep",
            lambda: running(
                "critical finding sweep",
                min(settings.escalation_interval, 60.0),
                lambda: critical_sweep_once(database, effects, minutes),
            ),
        ),
    ):
        yield


async def send_demo_from(app: web.Application) -> None:
    """Send the demo studies (and sign the demo report) with this app's objects."""
    from .demo.first_start import send_demo  # the demo's senders: only `serve --demo`, `demo`

    await send_demo(app[DATABASE], app[SETTINGS], app[SLA], app[CA], app[EFFECTS])


async def demo_his_context(app: web.Application) -> AsyncIterator[None]:
    """``teleread serve --demo`` with the HL7 listener on: the county's HIS receives results on
    a local MLLP port of its own while the service runs (service/demo/county_his.py)."""
    from .demo.county_his import CountyHis, connect_county, free_local_port  # `serve --demo` only

    settings = app[SETTINGS]
    if not settings.hl7_port:
        yield
        return
    his = CountyHis(settings.data_dir / "demo-his")
    port = free_local_port()
    async with his.running(port):
        await connect_county(app[DATABASE], port)
        log.info("demo: the county HIS receives results on 127.0.0.1:%d", port)
        yield


async def demo_studies_context(app: web.Application) -> AsyncIterator[None]:
    """``teleread serve --demo``: send the demo studies once, on the first start with an empty
    archive (service/demo/first_start.py)."""
    from .demo.first_start import archive_is_empty

    task: asyncio.Task | None = None
    if await archive_is_empty(app[DATABASE]):
        task = asyncio.create_task(send_demo_from(app), name="demo-studies")
    yield
    if task is not None and not task.done():
        task.cancel()
