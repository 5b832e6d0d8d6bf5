"""Several HTTP processes behind one port: who does what, and how the first one runs the rest.

``teleread serve`` runs ``TELEREAD_WEB_PROCESSES`` processes (default: one per core) that all
listen on the same port with ``SO_REUSEPORT``; the kernel spreads connections over them, so
rendering, JSON and TLS-less HTTP work use every core without a process hop per request.

Process 0, the *primary*, is the one the command started. It alone starts the managed Orthanc,
migrates the database and runs every background task (the change follower, report delivery, the
escalation, critical-finding and stat sweeps, the demo seeding), so each runs exactly once. It
also hosts the process bus (:mod:`service.runtime.process_bus`) that carries live worklist changes,
"deliver now" kicks and "prefetch this study" between processes, and it starts the *secondary*
processes, restarts one that dies, and stops them when it stops. A secondary that loses the bus
(its primary died, even by ``SIGKILL``) stops itself: no orphan keeps the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import multiprocessing
import os
import secrets
import signal
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from ..settings import Settings

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 100
RESTART_CHECK_SECONDS = 1.0
QUICK_DEATH_SECONDS = 10.0  # a secondary that dies sooner is restarted after a growing delay
MAX_RESTART_DELAY = 60.0


@dataclass(frozen=True)
class ProcessRole:
    """This process's place among the web processes (the default: the only one)."""

    index: int = 0
    count: int = 1
    bus_path: Path | None = None
    replica: str = field(default_factory=lambda: secrets.token_hex(8))
    """This replica's id, the same in all its web processes (the primary's, given to each
    secondary): its messages to the other replicas say it (service.runtime.pg_bus)."""

    @property
    def primary(self) -> bool:
        """Runs the background tasks, the managed Orthanc and the bus hub."""
        return self.index == 0

    @property
    def shared(self) -> bool:
        """More than one process serves the port: changes must travel on the bus."""
        return self.count > 1


def bus_path_for(settings: Settings) -> Path:
    """Where the bus socket lives: the data directory's ``run/``, or — when that path would be
    longer than a Unix socket path may be — a directory under the temporary directory named
    after the data directory (the same on every start), private to this user."""
    data_dir = settings.data_dir.resolve()
    path = data_dir / "run" / f"bus-{settings.port}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"teleread-{os.getuid()}-{digest}" / "bus.sock"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.parent.lstat()
    if status.st_uid != os.getuid() or not stat.S_ISDIR(status.st_mode):
        raise ValueError(f"{path.parent} is not a directory of this user")
    path.parent.chmod(0o700)  # only this user's processes may reach the bus
    return path


def secondary_settings(settings: Settings) -> Settings:
    """What a secondary runs with: the primary's, but with the managed Orthanc's address given
    (it must never start a second Orthanc on the same storage)."""
    if not settings.managed_orthanc:
        return settings
    from .orthanc.process import load_or_create_credentials

    credentials = load_or_create_credentials(settings.orthanc_dir)
    return replace(
        settings,
        orthanc_url=f"http://127.0.0.1:{settings.orthanc_http_port}",
        orthanc_username=credentials.username,
        orthanc_password=credentials.password,
    )


async def finish_undisturbed(app: Any) -> None:
    """A secondary that has begun to stop ignores further stop signals: the primary's SIGTERM
    after systemd's (which signals the whole group) must not cut its clean-up short."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


def stop_this_process() -> None:
    """End ``web.run_app`` gracefully, as Ctrl-C or ``kill`` would."""
    os.kill(os.getpid(), signal.SIGTERM)


EXIT_ORTHANC_FAILED = 3


@dataclass
class ServiceExit:
    """How ``teleread serve`` ends: 0, or the status a part that gave up asked for (the
    Orthanc supervisor: :data:`EXIT_ORTHANC_FAILED`). Mutable: the app is frozen by then."""

    code: int = 0
    reason: str = ""
    stop: Callable[[], None] = stop_this_process

    def fail(self, code: int, reason: str) -> None:
        """Stop the service (gracefully: secondaries and Orthanc are stopped as usual) and
        have it exit with ``code``."""
        if self.code == 0:
            self.code, self.reason = code, reason
        self.stop()


class Secondaries:
    """The primary's children: started after its own start-up, restarted when one dies.

    ``target`` is a secondary's whole life (``service.app.run_secondary``), given by the app so
    that this module, below the app, never imports it."""

    def __init__(
        self,
        settings: Settings,
        role: ProcessRole,
        target: Callable[[Settings, ProcessRole], None],
    ) -> None:
        self.settings, self.role, self.target = settings, role, target
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, Any] = {}
        self._started_at: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        self._stopping = False
        self._lock = threading.Lock()  # a start never races the final stop

    def _start(self, index: int) -> None:
        """Start secondary ``index`` (on a worker thread). SIGINT is blocked in this thread
        while it forks, and a child keeps the blocked mask: a terminal's Ctrl-C, which reaches
        the whole process group, is the primary's alone to act on, and a secondary is stopped
        by the primary's SIGTERM, never half-way through its own start-up."""
        with self._lock:
            if self._stopping:
                return
            role = replace(self.role, index=index)
            process = self.context.Process(
                target=self.target,
                args=(secondary_settings(self.settings), role),
                name=f"teleread-web-{index}",
            )
            # multiprocessing starts its resource tracker on the first start, and *unblocks*
            # SIGINT in this thread after doing so: have it running before blocking.
            resource_tracker.ensure_running()
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self.processes[index] = process
            self._started_at[index] = time.monotonic()
        log.info("web process %d of %d started (pid %s)", index, role.count, process.pid)

    def stopping(self) -> None:
        """The service is stopping: restart nothing from now on (a secondary that exits now
        does so because the whole group was told to stop)."""
        self._stopping = True

    async def start(self) -> None:
        for index in range(1, self.role.count):
            await asyncio.to_thread(self._start, index)

    async def watch(self) -> None:
        """Restart any secondary that exits while the service runs; one that keeps dying
        right after its start (a broken setting, a port taken) is retried less and less often."""
        while not self._stopping:
            await asyncio.sleep(RESTART_CHECK_SECONDS)
            for index, process in list(self.processes.items()):
                if process.is_alive() or self._stopping:
                    continue
                lived = time.monotonic() - self._started_at[index]
                delay = 0.0
                if lived < QUICK_DEATH_SECONDS:
                    delay = min(MAX_RESTART_DELAY, max(1.0, 2 * self._delay.get(index, 0.5)))
                self._delay[index] = delay
                log.warning(
                    "web process %d (pid %s) exited with %s after %.0f s; starting it again%s",
                    index,
                    process.pid,
                    process.exitcode,
                    lived,
                    f" in {delay:.0f} s" if delay else "",
                )
                await asyncio.sleep(delay)
                if not self._stopping:
                    await asyncio.to_thread(self._start, index)

    def stop_now(self, timeout: float = 10.0) -> None:
        """Terminate every secondary and wait (killing any that outlasts ``timeout``). Safe to
        call twice and from any thread: ``serve`` calls it again after a forced exit."""
        with self._lock:
            self._stopping = True
            processes = list(self.processes.values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop_now, timeout)


@contextlib.asynccontextmanager
async def running_secondaries(
    secondaries: Secondaries, role: ProcessRole
) -> AsyncIterator[Secondaries]:
    """The secondaries for as long as the primary runs (nothing to do in a single process)."""
    if not (role.primary and role.shared):
        yield secondaries
        return
    await secondaries.start()
    watcher = asyncio.create_task(secondaries.watch(), name="web-process-watcher")
    try:
        yield secondaries
    finally:
        secondaries.stopping()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await secondaries.stop()


class PrimaryLock:
    """One primary per data directory: two would each follow Orthanc, deliver reports and run
    the sweeps on the same database. An exclusive ``flock`` held for the process's life (the
    kernel drops it when the process ends, however it ends)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "run" / "primary.lock"
        self._file: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise ValueError(
                f"another teleread is already serving the data directory {self.path.parents[1]}"
            ) from exc
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> PrimaryLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
