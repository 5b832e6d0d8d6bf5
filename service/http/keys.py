"""Typed application keys: the app's shared objects, never module globals.

Every ``web.AppKey`` of the service is declared here, and only here: domain modules receive the
objects as arguments (``service.app`` wires them), so they never import the web layer."""

from __future__ import annotations

from aiohttp import web

from worklists.peer_review import PeerReviewPolicy
from worklists.recognition import RecognitionRules
from worklists.sla import SlaPolicy

from ..auth.session_cache import SessionCache
from ..auth.sessions import CurrentUser
from ..hl7.results_outbox import ResultSender
from ..i18n import PageRenderer
from ..intake.ingest import ChangeFollower
from ..reports.delivery import ReportDelivery
from ..runtime.health import Health
from ..runtime.leadership import Leadership
from ..runtime.orthanc.client import OrthancClient
from ..runtime.pg_bus import ReplicaBus
from ..runtime.process_bus import ProcessBus
from ..runtime.web_processes import ProcessRole, Secondaries, ServiceExit
from ..settings import Settings
from ..signing import ConsortiumCA
from ..storage import Database
from ..viewing.ohif import OhifFiles
from ..viewing.prefetch import StudyPrefetch
from ..viewing.rendering import Renderer
from ..viewing.viewing import Viewing
from ..worklist.effects import AfterCommit
from ..worklist.live import LiveUpdates
from ..worklist.notifications import Notifications

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
ORTHANC = web.AppKey("orthanc", OrthancClient)
FOLLOWER = web.AppKey("follower", ChangeFollower)
RENDERER = web.AppKey("renderer", PageRenderer)
SLA = web.AppKey("sla", SlaPolicy)
RECOGNITION_RULES = web.AppKey("recognition_rules", RecognitionRules)
PEER_REVIEW = web.AppKey("peer_review", PeerReviewPolicy)
LIVE = web.AppKey("live", LiveUpdates)
EFFECTS = web.AppKey("effects", AfterCommit)
VIEWING = web.AppKey("viewing", Viewing)
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
RENDER_WORKERS = web.AppKey("render_workers", Renderer)
PREFETCH = web.AppKey("prefetch", StudyPrefetch)
ROLE = web.AppKey("web_process_role", ProcessRole)
SECONDARIES = web.AppKey("secondaries", Secondaries)
HEALTH = web.AppKey("health", Health)
SERVICE_EXIT = web.AppKey("service_exit", ServiceExit)
BUS = web.AppKey("process_bus", ProcessBus | None)  # type: ignore[arg-type]
# Several replicas on one PostgreSQL database: who runs the once-only background work, and the
# bus between replicas (None on SQLite).
LEADERSHIP = web.AppKey("leadership", Leadership)
REPLICA_BUS = web.AppKey("replica_bus", ReplicaBus | None)  # type: ignore[arg-type]
NOTIFICATIONS = web.AppKey("notifications", Notifications)
OHIF = web.AppKey("ohif", OhifFiles)
# The report feature: the consortium CA and the delivery worker.
CA = web.AppKey("consortium_ca", ConsortiumCA)
REPORT_DELIVERY = web.AppKey("report_delivery", ReportDelivery)
# The HL7 results outbox sender (the primary's; absent in a secondary).
HL7_RESULTS = web.AppKey("hl7_results", ResultSender)

# Per-request values set by the middlewares.
USER_KEY = web.RequestKey("user", CurrentUser | None)  # type: ignore[arg-type]
AUTH_VIA_KEY = web.RequestKey("auth_via", str | None)  # type: ignore[arg-type]


def current_user(request: web.Request) -> CurrentUser:
    """The authenticated user (the access middleware guarantees one on non-public routes)."""
    user = request.get(USER_KEY)
    if user is None:
        raise web.HTTPUnauthorized()
    return user
