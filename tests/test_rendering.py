"""Render workers: frames decoded once per worker cache, files fetched once, failures contained,
processes restarted and stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from service.rendering import FrameRef, RenderWorkers
from service.synthetic import StudySpec, dataset_bytes, make_study
from viewer import RenderOptions


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


async def test_workers_fetch_each_file_once_and_stop_their_processes():
    """Concurrent misses share one fetch; later renders come from the cache; close ends all."""
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
        pids = set(await workers.pids())
        assert len(pids) == 2 and os.getpid() not in pids
        stats = await workers.stats()
        assert sum(s["frames"] for s in stats) == 1
    finally:
        await workers.close()
    assert await asyncio.to_thread(all_exited, pids, 10.0)


async def test_an_undecodable_file_fails_its_request_only():
    """A broken file raises for the request that asked; the worker goes on serving others."""
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    files = {"good": dataset_bytes(ds), "bad": b"not a DICOM file at all"}

    async def fetch(orthanc_id: str) -> bytes:
        return files[orthanc_id]

    workers = RenderWorkers(1, 16, fetch)
    try:
        with pytest.raises(Exception):  # noqa: B017 - pydicom's own error, whatever it is
            await workers.render(FrameRef("1.2.3", "bad", 0), RenderOptions())
        good = await workers.render(FrameRef(str(ds.SOPInstanceUID), "good", 0), RenderOptions())
        assert good[:2] == b"\xff\xd8"  # a JPEG
    finally:
        await workers.close()


async def test_a_killed_worker_is_replaced_on_the_next_request():
    """A worker that dies (out of memory, a crash in a decoder) costs its pending requests only."""
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))

    async def fetch(orthanc_id: str) -> bytes:
        return dataset_bytes(ds)

    workers = RenderWorkers(1, 16, fetch)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), "x", 0)
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


async def test_a_frame_the_worker_dropped_is_fetched_again():
    """The worker's cache is an LRU: a frame pushed out comes back from Orthanc on demand."""
    slices = make_study(StudySpec("P1", "A^B", "CT", "HEAD", instances=3, rows=512))
    files = {str(ds.SOPInstanceUID): dataset_bytes(ds) for ds in slices}
    fetched: list[str] = []

    async def fetch(orthanc_id: str) -> bytes:
        fetched.append(orthanc_id)
        return files[orthanc_id]

    workers = RenderWorkers(1, 1, fetch)  # 1 MiB: room for one 512x512 frame and a half
    try:
        refs = [FrameRef(uid, uid, 0) for uid in files]
        for ref in refs:
            await workers.render(ref, RenderOptions())
        again = await workers.render(refs[0], RenderOptions())
        assert again[:2] == b"\xff\xd8"
        assert fetched == [*files, refs[0].orthanc_id]
    finally:
        await workers.close()


async def test_workers_with_a_file_source_read_from_orthanc_themselves(orthanc):
    """Cold files go from Orthanc straight to the worker: the main process fetches nothing."""
    from service.orthanc.client import OrthancClient
    from service.rendering import FileSource

    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    try:
        stored = await client.request(
            "POST",
            "/instances",
            data=dataset_bytes(ds),
            headers={"Content-Type": "application/dicom"},
        )
    finally:
        await client.close()

    async def fetch(orthanc_id: str) -> bytes:
        raise AssertionError("the main process should not fetch files")

    source = FileSource(orthanc.url, credentials.username, credentials.password)
    workers = RenderWorkers(2, 16, fetch, source)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), stored["ID"], 0)
        body = await workers.render(ref, RenderOptions(format="png"))
        assert body[:4] == b"\x89PNG"
        values, dtype = await workers.values(ref)
        assert dtype == "int16" and len(values) == 32 * 32 * 2
        with pytest.raises(Exception, match="404"):
            await workers.render(FrameRef("1.2.9", "no-such-instance", 0), RenderOptions())
        assert sum(s["frames"] for s in await workers.stats()) == 1
    finally:
        await workers.close()
