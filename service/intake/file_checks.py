"""Checking the files of C-STOREd instances in a worker process, off the web process's GIL.

Why a process: under bench/load.py (50 readers polling the worklist while 10 clinics C-STORE
~300 instances/s), py-spy (``record --gil``) of the web process showed pydicom reading each
arriving file in an executor thread as the largest holder of the GIL besides the event loop
itself (12% of the samples). The loop waited for the GIL at every hand-off, and the worklist's
p95 with it. In a process of its own the check costs the loop one pickled round trip (the file's
bytes out, the reason back) and no GIL: measured on 2 cores (means of two runs), worklist p95
102 -> 78 ms, p99 156 -> 108 ms at the same ~295 instances/s (each run: this change's commit).

The pool holds one process, started on the first check (most apps never receive a C-STORE),
with ``spawn`` (the web process has threads: forking it is unsafe). A process that dies (killed,
out of memory) breaks the pool: it is replaced and the check asked again once, so a crash costs
a retry, never a file credited unchecked. The worker watches its parent and exits when the web
process is gone, even killed with SIGKILL (no clean-up ran): it must never outlive the service.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger(__name__)

Check = Callable[[bytes, int], str]
"""A file's bytes and the size a deflated file may inflate to -> why it would be refused."""


PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a daemon thread ends this process once ``parent`` is gone (the
    worker is then re-parented, so ``os.getppid()`` changes). A terminal's Ctrl-C reaches the
    whole process group, this worker too: it is the service's to act on (its stop shuts the
    pool down), and the worker would otherwise die of it with a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class FileChecks:
    """One worker process that runs file checks (module-level functions: they are pickled)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def reason(self, check: Check, content: bytes, max_file_bytes: int) -> str:
        """``check(content, max_file_bytes)`` run in the worker process."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._started()
            try:
                return await loop.run_in_executor(pool, check, content, max_file_bytes)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                log.warning("the file check process died; starting another")
                self._replace(pool)
        raise AssertionError("unreachable")

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:  # not already replaced by a concurrent check
            self._pool = None
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker process (checks still running are cancelled: the follower is)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
