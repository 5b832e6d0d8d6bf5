"""Render workers: frames decoded once per worker cache, files fetched once, processes stopped."""

from __future__ import annotations

import asyncio
import os
import time

from service.rendering import FrameRef, RenderWorkers, _pid_job
from service.synthetic import StudySpec, dataset_bytes, make_study


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_fetch_each_file_once_and_stop_their_processes():
    """Concurrent misses share one fetch; later renders come from the cache; close ends all."""
    from viewer import RenderOptions

    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    fetched: list[str] = []

    async def fetch(orthanc_id: str) -> bytes:
        fetched.append(orthanc_id)
        await asyncio.sleep(0.3)
        return dataset_bytes(ds)

    workers = RenderWorkers(2, 16, fetch)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), "orthanc-1", 0)
        options = RenderOptions(format="png")
        first = await asyncio.gather(*(workers.render(ref, options) for _ in range(5)))
        again = await workers.render(ref, options)
        assert fetched == ["orthanc-1"]
        assert len(set(first)) == 1 and again == first[0]
        loop = asyncio.get_running_loop()
        pids = {await loop.run_in_executor(e, _pid_job) for e in workers.executors}
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        await workers.close()
    assert await asyncio.to_thread(all_exited, pids, 10.0)


def all_exited(pids: set[int], timeout: float) -> bool:
    """Whether every process has exited within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
