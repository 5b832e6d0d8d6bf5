"""Provoking pynetdicom's reactor race on purpose (tests/test_dicom_send.py, bench/).

pynetdicom's association reactor and a sender share one DIMSE message queue; the sender pauses
the reactor with a checkpoint (a ``threading.Event``) and trusts a flag, ``_is_paused``, that the
reactor sets just before ``checkpoint.wait()`` and clears just after. A reactor thread that was
woken but has not run yet still shows ``_is_paused = True``, so a sender may send while the
reactor is about to read the queue; if the response is there first and the reactor runs before
the sender wakes, the reactor takes it. Busy cores make that happen by chance; this module makes
it certain, once per association.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pynetdicom.association import Association


@dataclass
class Provocations:
    """How many responses were left for the reactor to find before the sender woke up."""

    count: int = 0


class LateWakingCheckpoint(threading.Event):
    """A reactor checkpoint whose first pass returns only once a response has arrived.

    Only the reactor thread calls ``wait()`` (senders call ``clear()`` and ``set()``), so holding
    it back is exactly a reactor thread that was woken but ran late.
    """

    def __init__(self, armed: threading.Event, arrived: threading.Event) -> None:
        super().__init__()
        self.set()
        self._armed = armed
        self._arrived = arrived

    def wait(self, timeout: float | None = None) -> bool:
        woke = super().wait(timeout)
        if not self._armed.is_set():
            self._armed.set()  # past the checkpoint, about to read the queue
            self._arrived.wait(2.0)
        return woke


class RacingQueue(queue.Queue):
    """The DIMSE message queue; the first message after the reactor passed its checkpoint is
    queued without waking the sender, as when the sender's thread is not scheduled in time."""

    def __init__(
        self, armed: threading.Event, arrived: threading.Event, provocations: Provocations
    ) -> None:
        super().__init__()
        self._armed = armed
        self._arrived = arrived
        self._provocations = provocations

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self._armed.is_set() and not self._arrived.is_set():
            with self.mutex:
                self._put(item)
                self.unfinished_tasks += 1
            self._provocations.count += 1
            self._arrived.set()
            return
        super().put(item, block, timeout)


@contextmanager
def provoked_reactor() -> Iterator[Provocations]:
    """Every association created meanwhile loses one response to its reactor (unless the sender
    gets it back), on the first request sent after the reactor's first pass."""
    provocations = Provocations()
    original = Association.__init__

    def init(assoc: Association, *args: Any, **kwargs: Any) -> None:
        original(assoc, *args, **kwargs)
        armed, arrived = threading.Event(), threading.Event()
        assoc._reactor_checkpoint = LateWakingCheckpoint(armed, arrived)
        assoc.dimse.msg_queue = RacingQueue(armed, arrived, provocations)

    Association.__init__ = init  # type: ignore[method-assign]
    try:
        yield provocations
    finally:
        Association.__init__ = original  # type: ignore[method-assign]
