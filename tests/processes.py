"""Which processes a test run started, and which of them outlived it.

Orthanc children of two tests were found running an hour after their run (issue 15): a child
started in its own session (Orthanc is, on purpose) survives its parent and nobody notices. The
conftest notes every descendant of the test process after each phase of each test (setup, call,
teardown), and at the end of the session kills and names whatever is still running, failing the
run. A descendant is remembered by pid *and* start time, so a pid the kernel reuses for something
else is never blamed, and an orphan that the kernel handed to init is still found.

Linux only: it reads ``/proc/<pid>/task/<tid>/children`` (cheap: a test costs well under a
millisecond, where a scan of all of ``/proc`` costs about 7 ms on a loaded 2-core machine).

The walk does not go below Playwright's driver (``OWNS_ITS_CHILDREN``): the driver itself is
watched like any child, but its browsers and their dozen processes of many threads each end
with it (a browser whose driver's pipe closes exits). Walking them cost ~2 ms of CPU per note,
three notes a test, in every worker once its browser had started: ~15 CPU-seconds a run.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

# Helpers that belong to the test process itself and end with it (each reads a pipe from it):
# multiprocessing's resource tracker and fork server, started by the first use of the run (the
# render workers' processes, forked by the fork server, are still watched).
ENDS_WITH_THE_RUN = (
    "from multiprocessing.resource_tracker import main",
    "from multiprocessing.forkserver import main",
)


@dataclass(frozen=True)
class Child:
    """A process the run started, and the test during which it was first seen."""

    pid: int
    started: int
    """Clock ticks after boot (``/proc/<pid>/stat`` field 22): with the pid, its identity."""
    command: str
    test: str

    def describe(self) -> str:
        return f"pid {self.pid}: {self.command}  (first seen in {self.test})"


# A process whose descendants the walk leaves alone (see the module's docstring).
OWNS_ITS_CHILDREN = ("run-driver",)

SETTLED_SECONDS = 1.0
"""A process this old has exec'd: its command line is its own, not its parent's."""


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), empty when it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """State letter and start time of ``pid``, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])


def _uptime_ticks() -> int:
    """Clock ticks since boot, the unit of ``/proc/<pid>/stat``'s start time."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


class ChildRecord:
    """Every descendant of ``root`` seen by :meth:`note`; :meth:`survivors` of them."""

    def __init__(self, root: int | None = None) -> None:
        self.root = os.getpid() if root is None else root
        self.seen: dict[tuple[int, int], Child] = {}
        self.ignored: set[tuple[int, int]] = set()
        self.opaque: dict[tuple[int, int], bool] = {}
        """Whether the walk stops at a process, decided once it has settled."""

    def ignore_running(self) -> None:
        """Never remember the descendants running now: for a record made in the middle of a
        run, whose session-long processes (the browser's driver, the file-check worker) are
        not its to name or kill."""
        self.ignored.update(self._walk())

    def note(self, test: str) -> None:
        """Remember the descendants running now (``test``: where they were first seen)."""
        for pid, started in self._walk():
            if (pid, started) in self.seen or (pid, started) in self.ignored:
                continue
            command = _command(pid)
            if not any(helper in command for helper in ENDS_WITH_THE_RUN):
                self.seen[(pid, started)] = Child(pid, started, command, test)

    def _walk(self) -> list[tuple[int, int]]:
        """Pid and start time of each descendant, but those below a process that owns its
        children (``OWNS_ITS_CHILDREN``)."""
        found, todo, now = [], children(self.root), None
        while todo:
            pid = todo.pop()
            if (stat := _stat(pid)) is None:
                continue
            key = (pid, stat[1])
            found.append(key)
            opaque = self.opaque.get(key)
            if opaque is None:
                command = _command(pid)
                opaque = any(owner in command for owner in OWNS_ITS_CHILDREN)
                now = _uptime_ticks() if now is None else now
                if opaque or now - stat[1] > SETTLED_SECONDS * os.sysconf("SC_CLK_TCK"):
                    self.opaque[key] = opaque
            if not opaque:
                todo += children(pid)
        return found

    def survivors(self) -> list[Child]:
        """The remembered processes still running (a zombie has ended: only its exit status
        waits to be collected by its parent). The command line is read again: a child seen
        between its fork and its exec showed its parent's command line, or none."""
        alive = []
        for child in self.seen.values():
            stat = _stat(child.pid)
            if stat is None or stat[1] != child.started or stat[0] == "Z":
                continue
            command = _command(child.pid)
            if any(helper in command for helper in ENDS_WITH_THE_RUN):
                continue
            alive.append(replace(child, command=command) if command != "?" else child)
        return alive

    def end(self, grace: float = 2.0) -> list[Child]:
        """Kill the survivors (SIGKILL: they had their chance) and return them. A process that
        is ending anyway gets ``grace`` seconds first: a fixture's kill may still be landing."""
        deadline = time.monotonic() + grace
        while (left := self.survivors()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in left:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left
