"""The session-end check (tests/processes.py, the ``no_process_left_behind`` fixture): processes
the tests started are named and killed, even once orphaned; the ones that ended are not."""

from __future__ import annotations

import os
import subprocess
import time

from .processes import ChildRecord


def gone(pid: int, timeout: float = 5.0) -> bool:
    """``pid`` ended (or is a zombie waiting for its parent) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_a_child_left_running_is_named_and_killed():
    """A child nobody stopped is reported with its pid, command line and test, then killed."""
    record = ChildRecord()
    record.ignore_running()  # the run's own (a browser driver, the file-check worker)
    child = subprocess.Popen(["sleep", "61"])
    try:
        record.note("test_a_child_left_running")
        left = record.end(grace=0.1)
        assert [(c.pid, c.command, c.test) for c in left] == [
            (child.pid, "sleep 61", "test_a_child_left_running")
        ]
        assert f"pid {child.pid}: sleep 61" in left[0].describe()
        assert child.wait(timeout=5) == -9
    finally:
        child.kill()
        child.wait()


def test_an_orphaned_grandchild_is_still_found():
    """A grandchild whose parent exited (it now belongs to init, as Orthanc does once its
    teleread is gone) is found by the pid and start time noted while it was a descendant."""
    record = ChildRecord()
    record.ignore_running()  # the run's own (a browser driver, the file-check worker)
    shell = subprocess.Popen(
        ["sh", "-c", "sleep 62 >/dev/null & echo $!; read line"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchild = int(shell.stdout.readline())
    record.note("test_an_orphaned_grandchild")
    shell.communicate("\n", timeout=5)  # the shell ends; its sleep lives on, orphaned
    assert os.getpid() not in _ancestors(grandchild)
    left = record.end(grace=0.1)
    assert [c.pid for c in left] == [grandchild]
    assert gone(grandchild)


def test_processes_that_ended_are_not_reported():
    """A child stopped by its test (the normal case) passes the check at once."""
    record = ChildRecord()
    record.ignore_running()  # the run's own (a browser driver, the file-check worker)
    child = subprocess.Popen(["sleep", "63"])
    record.note("test_processes_that_ended")
    child.terminate()
    child.wait(timeout=5)
    started = time.monotonic()
    assert record.end() == []
    assert time.monotonic() - started < 0.5  # no grace period spent on the dead


def _ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found
