"""Provoking pynetdicom's reactor race on purpose (tests/test_dicom_send.py, bench/).

pynetdicom's association reactor and a sender share one DIMSE message queue; the sender pauses
the reactor with a checkpoint (a ``threading.Event``) and trusts a flag, ``_is_paused``, that the
reactor sets just before ``checkpoint.wait()`` and clears just after. A reactor thread that was
woken but has not run yet still shows ``_is_paused = True``, so a sender may send while the
reactor is about to read the queue; if the response is there first, the reactor takes it.
Busy cores make that happen by chance; :class:`LateWakingCheckpoint` makes it certain.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pynetdicom.association import Association


@dataclass
class Provocations:
    """How many reactors woke up with a response already waiting for the sender."""

    count: int = 0


class LateWakingCheckpoint(threading.Event):
    """A reactor checkpoint whose first pass returns only once a message is queued.

    Only the reactor thread calls ``wait()`` (senders call ``clear()`` and ``set()``), so holding
    it back is exactly a reactor thread that woke up late; by then the response to the sender's
    request is on the queue and the reactor's next step is to take it.
    """

    def __init__(self, messages: queue.Queue, provocations: Provocations) -> None:
        super().__init__()
        self.set()
        self._messages = messages
        self._provocations = provocations
        self._first = True

    def wait(self, timeout: float | None = None) -> bool:
        woke = super().wait(timeout)
        if self._first:
            self._first = False
            deadline = time.monotonic() + 2.0
            while self._messages.empty() and time.monotonic() < deadline:
                time.sleep(0.0005)
            if not self._messages.empty():
                self._provocations.count += 1
        return woke


@contextmanager
def provoked_reactor() -> Iterator[Provocations]:
    """Every association created meanwhile gets a :class:`LateWakingCheckpoint`."""
    provocations = Provocations()
    original = Association.__init__

    def init(assoc: Association, *args, **kwargs) -> None:
        original(assoc, *args, **kwargs)
        assoc._reactor_checkpoint = LateWakingCheckpoint(assoc.dimse.msg_queue, provocations)

    Association.__init__ = init  # type: ignore[method-assign]
    try:
        yield provocations
    finally:
        Association.__init__ = original  # type: ignore[method-assign]
