"""Warming a study's frames when it is opened: the whole study here, its first frames everywhere.

A reader's browser fetches frames over several connections, and the kernel may hand each to a
different web process; each process has its own frame cache. So the process that serves the
manifest warms its cache with the whole study, and tells the others (over the process bus; the
replica bus too, to the other replicas) to warm the first ``HEAD`` frames of the reading order: the
ones the page asks for first, so the first image is hot wherever its request lands. The others did
warm the whole study too, but the viewer page pulls every frame of the series in view at once (six
requests in flight), so on a busy machine each process then decoded every frame while only about
1/N of the requests reached it: with two web processes, 150 wasted file reads and decodes for a
150-slice CT, on the cores the requests were waiting for (bench/viewer_speed.py, whole series).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..runtime.pg_bus import MessageBus
from .rendering import FrameRef, Renderer
from .viewing import StudyIndex, Viewing

log = logging.getLogger(__name__)

TOPIC = "prefetch"
HEAD = 12
"""Frames the other web processes warm: the page's first two rounds of six requests."""


def reading_order(index: StudyIndex) -> list[FrameRef]:
    """Every frame, series by series, in the order the viewer asks for them: it opens a series
    on its first image and loads outward from there (viewer/static/viewer.js). Warming the
    middle image first instead left the first request queued behind decodes the page did not
    want yet (bench/viewer_speed.py, first image)."""
    return [
        FrameRef(i.uid, i.orthanc_id, n, i.frames)
        for series in index.series
        for i in series.instances
        for n in range(i.frames)
    ]


class StudyPrefetch:
    """Prefetch the study here and ask the other web processes to warm its first frames."""

    def __init__(self, viewing: Viewing, renderer: Renderer, bus: MessageBus | None) -> None:
        self.viewing, self.renderer, self.bus = viewing, renderer, bus
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        if bus is not None:
            bus.on(TOPIC, self._asked)

    def study_opened(self, index: StudyIndex) -> None:
        self.renderer.prefetch(index.uid, reading_order(index))
        if self.bus is not None:
            self.bus.send(TOPIC, {"study": index.uid, "orthanc_study_id": index.orthanc_id})

    def _asked(self, payload: dict[str, Any]) -> None:
        if self._closed:  # the bus outlives the viewer at shutdown
            return
        task = asyncio.create_task(self._warm(payload["study"], payload["orthanc_study_id"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self, study_uid: str, orthanc_study_id: str) -> None:
        try:
            index = await self.viewing.index(study_uid, orthanc_study_id)
        except Exception:
            log.warning("could not read study %s to prefetch it", study_uid, exc_info=True)
            return
        if not self._closed:
            self.renderer.prefetch(index.uid, reading_order(index)[:HEAD])

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
