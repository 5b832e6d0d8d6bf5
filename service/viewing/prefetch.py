"""Warming a study's frames when it is opened, in every web process.

A reader's browser fetches frames over several connections, and the kernel may hand each to a
different web process; each process has its own frame cache. So the process that serves the
manifest warms its cache and tells the others (over the process bus) to warm theirs from the same
study layout, and every frame is hot wherever its request lands.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..runtime.process_bus import ProcessBus
from .rendering import FrameRef, Renderer
from .viewing import StudyIndex, Viewing

log = logging.getLogger(__name__)

TOPIC = "prefetch"


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
    """Prefetch here and ask the other web processes to do the same."""

    def __init__(self, viewing: Viewing, renderer: Renderer, bus: ProcessBus | None) -> None:
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
            self.renderer.prefetch(index.uid, reading_order(index))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
