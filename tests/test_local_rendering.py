"""Rendering inside the web process: files read once, pixel work off the loop, failures contained;
and the blocking file reader against a real Orthanc."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import pytest

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.runtime.orthanc.client import OrthancError
from service.runtime.orthanc.file_reader import OrthancFileReader
from service.viewing.local_rendering import InProcessRenderer
from service.viewing.rendering import FrameRef
from viewer import RenderOptions, parse_window

from .conftest import store_in_orthanc


class CountingReader:
    """A blocking file source that records which files were read, and on which thread."""

    def __init__(self, files: dict[str, bytes], delay: float = 0.0) -> None:
        self.files, self.delay = files, delay
        self.reads: list[str] = []
        self.threads: set[str] = set()

    def __call__(self, orthanc_id: str) -> bytes:
        self.reads.append(orthanc_id)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if orthanc_id not in self.files:
            raise OrthancError(404, "unknown resource")
        return self.files[orthanc_id]


async def test_concurrent_requests_share_one_read_and_decode_and_the_loop_does_no_pixel_work():
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=64))
    reader = CountingReader({"o1": dataset_bytes(ds)}, delay=0.2)
    renderer = InProcessRenderer(16, reader)
    try:
        ref = FrameRef(str(ds.SOPInstanceUID), "o1", 0)
        options = RenderOptions(window=parse_window("40,400"), format="png")
        first = await asyncio.gather(*(renderer.render(ref, options) for _ in range(5)))
        values, dtype = await renderer.values(ref)
        again = await renderer.render(ref, options)
        assert reader.reads == ["o1"]
        assert len(set(first)) == 1 and again == first[0] and first[0][:4] == b"\x89PNG"
        assert dtype == "int16" and len(values) == 64 * 64 * 2
        assert all(name.startswith("render") for name in reader.threads)
        assert (await renderer.stats())[0]["frames"] == 1
    finally:
        await renderer.close()


async def test_a_failed_read_fails_its_request_only_and_is_tried_again_next_time():
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    files = {"good": dataset_bytes(ds), "junk": b"not a DICOM file"}
    reader = CountingReader(files)
    renderer = InProcessRenderer(16, reader)
    try:
        with pytest.raises(OrthancError):
            await renderer.render(FrameRef("1.2.3", "missing", 0), RenderOptions())
        with pytest.raises(Exception):  # noqa: B017 - whatever pydicom raises for junk
            await renderer.render(FrameRef("1.2.4", "junk", 0), RenderOptions())
        good = await renderer.render(FrameRef(str(ds.SOPInstanceUID), "good", 0), RenderOptions())
        assert good[:2] == b"\xff\xd8"
        files["missing"] = files["good"]
        await renderer.render(FrameRef("1.2.3", "missing", 0), RenderOptions())
        assert reader.reads.count("missing") == 2  # a failure is not cached
    finally:
        await renderer.close()


async def test_a_multi_frame_file_is_read_once_for_all_its_frames_and_prefetch_warms():
    [ds] = make_study(StudySpec("P1", "A^B", "MR", "HEAD", rows=32))
    frames = np.stack([np.full((32, 32), 100 * (k + 1), dtype=np.uint16) for k in range(3)])
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    reader = CountingReader({"multi": dataset_bytes(ds)})
    renderer = InProcessRenderer(16, reader)
    try:
        refs = [FrameRef(str(ds.SOPInstanceUID), "multi", k, 3) for k in range(3)]
        renderer.prefetch("study", refs)
        for _ in range(100):
            if (await renderer.stats())[0]["frames"] == 3:
                break
            await asyncio.sleep(0.02)
        assert (await renderer.stats())[0]["frames"] == 3
        firsts = [np.frombuffer((await renderer.values(ref))[0], dtype="<i2")[0] for ref in refs]
        assert firsts == [100, 200, 300]  # each frame its own pixels
        assert reader.reads == ["multi"]
    finally:
        await renderer.close()


async def test_the_file_reader_reads_instances_and_survives_a_dropped_connection(orthanc):
    [ds] = make_study(StudySpec("P1", "A^B", "CT", "HEAD", rows=32))
    data = dataset_bytes(ds)
    [orthanc_id] = await store_in_orthanc(orthanc, [data])
    credentials = orthanc.config.credentials
    reader = OrthancFileReader(orthanc.url, credentials.username, credentials.password)
    try:  # blocking calls on this thread, so the thread's connection is the one dropped below
        assert reader.read(orthanc_id) == data
        # Orthanc (or anything between) closed the kept-alive connection: reconnect once.
        reader._connection().sock.shutdown(socket.SHUT_RDWR)
        assert reader.read(orthanc_id) == data
        with pytest.raises(OrthancError) as missing:
            reader.read("no-such-instance")
        assert missing.value.status == 404
        wrong = OrthancFileReader(orthanc.url, credentials.username, "wrong password")
        with pytest.raises(OrthancError) as refused:
            wrong.read(orthanc_id)
        assert refused.value.status == 401
        wrong.close()
    finally:
        reader.close()
