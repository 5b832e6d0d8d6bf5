"""Render workers against a real Orthanc: frames read and decoded once per worker cache, failures
contained, processes restarted and stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from service.demo.synthetic import StudySpec, make_study
from service.viewing.rendering import FileSource, FrameRef, RenderWorkers
from viewer import RenderOptions

from .conftest import store_in_orthanc


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def all_exited(pids: set[int], timeout: float) -> bool:
    """Whether every process has exited within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def workers_reading(orthanc, count: int, cache_mb: float) -> RenderWorkers:
    credentials = orthanc.config.credentials
    source = FileSource(orthanc.url, credentials.username, credentials.password)
    return RenderWorkers(count, cache_mb, source)


async def test_workers_decode_each_frame_once_and_stop_their_processes(orthanc):
    """Concurrent requests for one frame: one worker reads and decodes it once, the others hit
    its cache; cold files go from Orthanc to the worker; close ends every process."""
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    [orthanc_id] = await store_in_orthanc(orthanc, [ds])
    workers = workers_reading(orthanc, 2, 16)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), orthanc_id, 0)
        options = RenderOptions(format="png")
        first = await asyncio.gather(*(workers.render(ref, options) for _ in range(5)))
        again = await workers.render(ref, options)
        assert first[0][:4] == b"\x89PNG"
        assert len(set(first)) == 1 and again == first[0]
        stats = await workers.stats()
        assert sum(s["frames"] for s in stats) == 1
        assert sum(s["misses"] for s in stats) == 1 and sum(s["hits"] for s in stats) == 5
        values, dtype = await workers.values(ref)
        assert dtype == "int16" and len(values) == 32 * 32 * 2
        pids = set(await workers.pids())
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        await workers.close()
    assert await asyncio.to_thread(all_exited, pids, 10.0)


async def test_an_undecodable_file_fails_its_request_only(orthanc):
    """A file Orthanc holds but no decoder can read (Pixel Data cut short), or an instance
    Orthanc does not have, fails the request that asked; the worker goes on serving others."""
    good, bad = make_study(StudySpec("P1", "A^B", "CT", "HEAD", instances=2, rows=32))
    bad.PixelData = bad.PixelData[:100]
    good_id, bad_id = await store_in_orthanc(orthanc, [good, bad])
    workers = workers_reading(orthanc, 1, 16)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the decoder's own error, whatever it is
            await workers.render(FrameRef(str(bad.SOPInstanceUID), bad_id, 0), RenderOptions())
        with pytest.raises(Exception, match="404"):
            await workers.render(FrameRef("1.2.9", "no-such-instance", 0), RenderOptions())
        body = await workers.render(FrameRef(str(good.SOPInstanceUID), good_id, 0), RenderOptions())
        assert body[:2] == b"\xff\xd8"  # a JPEG
        assert sum(s["frames"] for s in await workers.stats()) == 1
    finally:
        await workers.close()


async def test_a_killed_worker_is_replaced_on_the_next_request(orthanc):
    """A worker that dies (out of memory, a crash in a decoder) costs its pending requests only."""
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    [orthanc_id] = await store_in_orthanc(orthanc, [ds])
    workers = workers_reading(orthanc, 1, 16)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), orthanc_id, 0)
        await workers.render(ref, RenderOptions())
        [pid] = await workers.pids()
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(all_exited, {pid}, 10.0)
        await asyncio.sleep(0.1)  # the channel notices the closed socket
        body = await workers.render(ref, RenderOptions())
        assert body[:2] == b"\xff\xd8"
        [new_pid] = await workers.pids()
        assert new_pid != pid
    finally:
        await workers.close()


async def test_a_frame_the_worker_dropped_is_read_again(orthanc):
    """The worker's cache is an LRU: a frame pushed out comes back from Orthanc on demand."""
    slices = make_study(StudySpec("P1", "A^B", "CT", "HEAD", instances=3, rows=512))
    ids = await store_in_orthanc(orthanc, slices)
    workers = workers_reading(orthanc, 1, 1)  # 1 MiB: room for two 512x512 16-bit frames
    try:
        refs = [FrameRef(str(ds.SOPInstanceUID), i, 0) for ds, i in zip(slices, ids, strict=True)]
        first = [await workers.render(ref, RenderOptions(format="png")) for ref in refs]
        again = await workers.render(refs[0], RenderOptions(format="png"))
        assert again == first[0]
        [stats] = await workers.stats()
        # the third frame pushed the first out; asked again, it was read again (a fourth miss)
        assert stats["misses"] == 4 and stats["evictions"] == 2 and stats["frames"] == 2
    finally:
        await workers.close()
