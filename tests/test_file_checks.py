"""C-STOREd files are checked in a worker process (service/intake/file_checks.py): the same
reasons as in a thread, and a worker that dies is replaced without a check being lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.intake.file_checks import FileChecks
from service.intake.ingest import _file_check

from . import malformed

LIMIT = 1 << 30


def sound_file() -> bytes:
    return dataset_bytes(make_study(StudySpec("FC1", "FILE^CHECK", "CR", "CHEST", rows=32))[0])


async def test_a_worker_process_gives_each_file_the_reason_a_thread_gives():
    files = [sound_file()] + [m.make() for m in malformed.REFUSED_AT_INGEST]
    checks = FileChecks()
    try:
        for content in files:
            assert await checks.reason(_file_check, content, LIMIT) == _file_check(content, LIMIT)
    finally:
        checks.close()


async def test_a_worker_that_died_is_replaced_and_the_check_still_answers():
    checks = FileChecks()
    try:
        assert await checks.reason(_file_check, sound_file(), LIMIT) == ""
        pool = checks._pool
        assert pool is not None
        for pid in list(pool._processes):  # the worker, killed as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        assert await checks.reason(_file_check, b"not dicom at all", LIMIT) == "not a DICOM file"
        assert checks._pool is not pool
    finally:
        checks.close()


async def test_a_ctrl_c_at_the_terminal_leaves_the_worker_to_the_services_stop(capfd):
    """The group's SIGINT reaches the worker too: it neither dies nor prints a traceback, and
    the next check is answered by the same process."""
    checks = FileChecks()
    try:
        assert await checks.reason(_file_check, sound_file(), LIMIT) == ""
        pool = checks._pool
        assert pool is not None
        [worker] = list(pool._processes)
        os.kill(worker, signal.SIGINT)
        await asyncio.sleep(0.5)
        assert await checks.reason(_file_check, b"not dicom at all", LIMIT) == "not a DICOM file"
        assert checks._pool is pool and list(pool._processes) == [worker]
    finally:
        checks.close()
    written = capfd.readouterr().err
    assert "Traceback" not in written and "KeyboardInterrupt" not in written, written


PARENT = """
import asyncio, sys
from service.intake.file_checks import FileChecks
from service.intake.ingest import _file_check

async def main():
    checks = FileChecks()
    await checks.reason(_file_check, b"not dicom at all", 1 << 30)
    print(*checks._pool._processes, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def test_the_worker_exits_when_its_web_process_is_killed():
    """SIGKILL runs no clean-up: the worker must notice by itself, or it outlives the service."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        [worker] = [int(pid) for pid in parent.stdout.readline().split()]
        assert Path(f"/proc/{worker}").exists()
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the file check worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
