"""What ``/healthz`` says: is Orthanc there, is ingest working, in whichever process answers.

Probes (docker's health check, a load balancer) hit ``/healthz`` every few seconds on any of the
web processes, so the answer must be truthful in each of them and cheap:

- **Orthanc** is checked by the answering process itself (``GET /system`` with a short timeout),
  at most once a second however many probes arrive (one check in flight, its answer shared and
  reused for :data:`PROBE_TTL`). That is the truth wherever the answer comes from, and it also
  covers an external Orthanc, which nobody supervises.
- The **supervisor's** view (restarting, failed) and the **change follower's** state live in the
  primary process. The primary publishes them on the process bus every :data:`BEAT_SECONDS`;
  a secondary answers with the last snapshot it heard (and says how old it is), "unknown" when it
  has none or it is stale.

Anything wrong answers 503 with the same JSON, its ``detail`` naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from .orthanc.client import OrthancClient, OrthancError
from .orthanc.supervisor import OrthancSupervisor
from .periodic import running
from .process_bus import ProcessBus
from .web_processes import ProcessRole

PROBE_TTL = 1.0
PROBE_TIMEOUT = 2.0
BEAT_SECONDS = 2.0
STALE_AFTER = 3 * BEAT_SECONDS
TOPIC = "health"
LEADER_ELSEWHERE = "another replica runs the background work (it holds the lease)"


class Leading(Protocol):
    """What /healthz reads of this process's leadership (service/runtime/leadership.py)."""

    @property
    def leading(self) -> bool: ...

    @property
    def elected(self) -> bool: ...


class FollowerState(Protocol):
    """What /healthz reads of the change follower (service/intake/ingest.py ``ChangeFollower``),
    named here so that this module, below the intake, needs nothing of it."""

    state: str
    detail: str
    caught_up: asyncio.Event


@dataclass(frozen=True)
class OrthancProbe:
    up: bool
    detail: str = ""


class Health:
    """The state ``/healthz`` reports; one per web process (see the module docstring)."""

    def __init__(self, orthanc: OrthancClient, role: ProcessRole, managed: bool) -> None:
        self.orthanc = orthanc
        self.role = role
        self.managed = managed
        self.supervisor: OrthancSupervisor | None = None
        self.follower: FollowerState | None = None
        self.leadership: Leading | None = None
        self._probe: OrthancProbe | None = None
        self._probed_at = 0.0
        self._probing: asyncio.Task[OrthancProbe] | None = None
        self._heard: dict[str, Any] | None = None
        self._heard_at = 0.0

    # -- Orthanc, checked here -------------------------------------------------------------

    async def probe_orthanc(self) -> OrthancProbe:
        """Orthanc's answer to ``GET /system``, checked at most once per :data:`PROBE_TTL`."""
        if self._probe is not None and time.monotonic() - self._probed_at < PROBE_TTL:
            return self._probe
        if self._probing is None or self._probing.done():
            self._probing = asyncio.create_task(self._check_orthanc())
        return await asyncio.shield(self._probing)

    async def _check_orthanc(self) -> OrthancProbe:
        try:
            await self.orthanc.request(
                "GET", "/system", timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            )
            probe = OrthancProbe(True)
        except (OrthancError, aiohttp.ClientError) as exc:
            probe = OrthancProbe(False, f"Orthanc does not answer: {exc}")
        self._probe, self._probed_at = probe, time.monotonic()
        return probe

    # -- the primary's state, here or from the bus -------------------------------------------

    def primary_state(self) -> dict[str, Any] | None:
        """The supervisor's and the follower's state: this process's own in the primary, the
        last heartbeat heard in a secondary (None when there is none, or it is stale)."""
        if self.role.primary:
            return self._own_state()
        if self._heard is None or time.monotonic() - self._heard_at > STALE_AFTER:
            return None
        return self._heard

    def _own_state(self) -> dict[str, Any]:
        supervisor, follower, leadership = self.supervisor, self.follower, self.leadership
        leader = leadership is None or leadership.leading
        if not leader and leadership is not None and leadership.elected:
            follower = None  # another replica follows Orthanc: nothing to say of ours
        return {
            "leader": leader,
            "supervisor": None
            if supervisor is None
            else {
                "state": supervisor.state,
                "restarts": supervisor.restarts,
                "detail": supervisor.detail,
            },
            "ingest": None
            if follower is None
            else {
                "state": follower.state,
                "caught_up": follower.caught_up.is_set(),
                "detail": follower.detail,
            },
        }

    def heard(self, payload: dict[str, Any]) -> None:
        """A heartbeat from the primary (bus handler)."""
        self._heard, self._heard_at = payload, time.monotonic()

    # -- the answer ----------------------------------------------------------------------------

    async def report(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` for ``/healthz``."""
        probe = await self.probe_orthanc()
        primary = self.primary_state()
        supervisor = primary.get("supervisor") if primary else None
        orthanc: dict[str, Any] = {
            "state": "up" if probe.up else "down",
            "managed": self.managed,
            "detail": probe.detail,
        }
        if supervisor is not None:
            orthanc["restarts"] = supervisor["restarts"]
            if supervisor["state"] in ("restarting", "failed"):
                orthanc["state"] = supervisor["state"]
                orthanc["detail"] = supervisor["detail"] or probe.detail
        ingest = (primary or {}).get("ingest") or {
            "state": "unknown" if self.role.shared else "not_running",
            "caught_up": None,
            "detail": "",
        }
        leader = (primary or {}).get("leader")
        if leader is False:
            ingest = {"state": "standby", "caught_up": None, "detail": LEADER_ELSEWHERE}
        problems = []
        if orthanc["state"] != "up":
            problems.append(f"orthanc {orthanc['state']}: {orthanc['detail']}")
        if ingest["state"] == "failing":
            problems.append(f"ingest failing: {ingest['detail']}")
        body: dict[str, Any] = {"status": "unavailable" if problems else "ok"}
        if problems:
            body |= {"error": "unhealthy", "detail": "; ".join(problems)}
        body |= {"orthanc": orthanc, "ingest": ingest, "leader": leader}
        return (503 if problems else 200), body


@contextlib.asynccontextmanager
async def sharing_health(health: Health, bus: ProcessBus | None) -> AsyncIterator[None]:
    """The primary's heartbeat on the bus, or a secondary listening to it (nothing without)."""
    if bus is None:
        yield
        return
    if not health.role.primary:
        bus.on(TOPIC, health.heard)
        yield
        return

    async def beat() -> None:
        bus.send(TOPIC, health.primary_state() or {})

    async with running("health heartbeat", BEAT_SECONDS, beat):
        yield
