"""Keeping the managed Orthanc alive: restart it when it dies, give up when it keeps dying.

Without Orthanc the service is half-alive: C-STORE is refused, the viewer answers 503 and nothing
is ingested, while logins and the worklist still work, so nobody notices. The primary web process
therefore watches its Orthanc child: when it exits (crash, OOM killer, ``kill -9``) it is started
again after a growing delay (1, 2, 4 ... seconds), each restart logged with the exit code and the
end of Orthanc's log. The change follower rides out the gap on its own (it backs off while Orthanc
is unavailable and resumes from its persisted cursor, so nothing is lost or ingested twice).

An Orthanc that keeps dying (a full disk, a corrupt index, a broken package) is not retried
forever: after ``TELEREAD_ORTHANC_MAX_RESTARTS`` restarts within
``TELEREAD_ORTHANC_RESTART_WINDOW`` seconds the supervisor gives up and the service exits with a
non-zero status, so the operator's own supervisor (systemd, docker) sees a failure instead of a
service answering logins without an archive behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from .process import ManagedOrthanc, OrthancStartError

log = logging.getLogger(__name__)

SupervisedState = Literal["running", "restarting", "failed", "stopped"]

FIRST_DELAY = 1.0
MAX_DELAY = 30.0


class OrthancSupervisor:
    """Watch one :class:`ManagedOrthanc` and restart it with backoff; see the module docstring.

    ``on_give_up(reason)`` is called once when the restarts are exhausted (the app stops the
    service with a non-zero exit status there).
    """

    def __init__(
        self,
        orthanc: ManagedOrthanc,
        *,
        max_restarts: int,
        window: float,
        on_give_up: Callable[[str], None],
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.orthanc = orthanc
        self.max_restarts = max_restarts
        self.window = window
        self.on_give_up = on_give_up
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        self.state: SupervisedState = "running"
        self.detail = ""
        self.restarts = 0
        """Successful restarts since the service started."""
        self.restarted: list[Callable[[], None]] = []
        """Called after each successful restart (the change follower reconciles then)."""
        self._attempts: deque[float] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="orthanc-supervisor")

    async def stop(self) -> None:
        """The service is stopping: an exit of Orthanc from now on is not a crash."""
        if self.state != "failed":
            self.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        """Wait for Orthanc to exit, restart it; until stopped or given up."""
        while True:
            pid = self.orthanc.pid
            code = await self.orthanc.wait()
            if self.state == "stopped" or code is None:  # stopped on purpose, not a crash
                return
            self.state = "restarting"
            self.detail = f"Orthanc (pid {pid}) exited with code {code}"
            log.error(
                "%s; restarting it. End of its log:\n%s", self.detail, self.orthanc.log_tail()
            )
            if not await self._restart():
                return

    async def _restart(self) -> bool:
        """Start Orthanc again, retrying with a growing delay; False once given up."""
        while True:
            now = self.clock()
            while self._attempts and self._attempts[0] <= now - self.window:
                self._attempts.popleft()
            if len(self._attempts) >= self.max_restarts:
                self._give_up()
                return False
            delay = min(self.max_delay, self.first_delay * 2 ** len(self._attempts))
            await asyncio.sleep(delay)
            self._attempts.append(self.clock())
            try:
                await self.orthanc.start()
            except OrthancStartError as exc:
                self.detail = f"restart failed: {exc}"
                log.error("Orthanc restart %d failed: %s", len(self._attempts), exc)
                await self.orthanc.kill()
                continue
            self.restarts += 1
            self.state = "running"
            self.detail = ""
            log.warning(
                "Orthanc restarted (pid %s); %d restart(s) in the last %.0f s",
                self.orthanc.pid,
                len(self._attempts),
                self.window,
            )
            for listener in self.restarted:
                listener()
            return True

    def _give_up(self) -> None:
        self.state = "failed"
        reason = (
            f"Orthanc keeps dying: {len(self._attempts)} restart(s) within {self.window:.0f} s "
            f"(TELEREAD_ORTHANC_MAX_RESTARTS={self.max_restarts}); last: {self.detail}"
        )
        self.detail = reason
        log.critical("%s; stopping the service", reason)
        self.on_give_up(reason)
