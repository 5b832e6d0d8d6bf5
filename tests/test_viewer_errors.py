"""Frames that cannot be decoded answer 422 with the reason, logged once per instance, never 500;
pydicom's 12-bit JPEG Extended ``JPEG-lossy.dcm`` (which dcmtk decodes) renders.

The undecodable files come from ``tests/malformed.py`` and reach the archive over C-STORE, as a
broken modality would send them (their headers are sound; only decoding finds the fault).
"""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from service.http.keys import FOLLOWER
from viewer import UndecodableFrame, decode_frame

from . import malformed
from .test_malformed_files import c_store_files

JPEG_LOSSY = Path(get_testdata_file("JPEG-lossy.dcm", download=False))
JPEG_LOSSY_BYTES = JPEG_LOSSY.read_bytes()


def read(data: bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def viewer_paths(ds: pydicom.Dataset) -> dict[str, str]:
    study = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    instance = f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    return {
        "rendered": f"{instance}/frames/1/rendered",
        "thumbnail": f"{instance}/thumbnail",
        "values": (
            f"/api/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1/values"
        ),
    }


@pytest.fixture
async def reader(service):
    """A clinic AE title that C-STOREs, and a logged-in specialist of the regional centre."""
    clinic = await service.add_facility("Township clinic", "township", "CLINIC_X")
    centre = await service.add_facility("Regional centre", "regional", "CENTRE")
    await service.add_user("dr-zhao", "specialist", centre)
    del clinic
    return await service.login("dr-zhao")


async def stored_and_listed(service, headers, files: dict[str, bytes], tmp_path: Path) -> None:
    """C-STORE the files as they are (one association) and wait for their consultations."""
    paths = []
    for name, data in files.items():
        paths.append(tmp_path / f"{name}.dcm")
        paths[-1].write_bytes(data)
    port = service.orthanc.config.dicom_port
    statuses = await asyncio.to_thread(c_store_files, paths, port, "CLINIC_X")
    assert statuses == [0] * len(paths)
    wanted = {str(read(data).StudyInstanceUID) for data in files.values()}

    async def listed():
        items = (await service.worklist(headers))["items"]
        return wanted <= {i["study_instance_uid"] for i in items}

    await service.wait_for(listed, timeout=30)


async def test_undecodable_frames_answer_422_with_a_reason_logged_once(
    service, reader, caplog, tmp_path, monkeypatch
):
    """Corrupt RLE, corrupt JPEG-LS, Rows 65535, 10^6 frames and Bits Allocated 7: rendered
    frame, thumbnail and values each answer 422 JSON naming why; each instance is logged once
    however often it is asked for.

    Ingest now quarantines the last three (their file fails the check uploads pass); archives
    ingested before that check hold such instances, so here ingest's file check lets all pass.
    """
    monkeypatch.setattr("service.intake.ingest._file_check", lambda content, limit: "")
    monkeypatch.setattr(service.app[FOLLOWER], "file_checks", None)  # a thread sees the patch
    files = {name: make() for name, make in malformed.UNDECODABLE.items()}
    datasets = {name: read(data) for name, data in files.items()}
    await stored_and_listed(service, reader, files, tmp_path)
    caplog.set_level(logging.WARNING, logger="service.viewing.rendering")

    for name, ds in datasets.items():
        for kind, path in viewer_paths(ds).items():
            for _ in range(2):
                response = await service.client.get(path, headers=reader)
                assert response.status == 422, (name, kind, await response.text())
                body = await response.json()
                assert body["error"] == "undecodable_image"
                assert body["detail"].startswith("the image's pixels cannot be decoded: ")
                assert body["instance"] == ds.SOPInstanceUID
    for name, ds in datasets.items():
        logged = [r for r in caplog.records if ds.SOPInstanceUID in r.getMessage()]
        assert len(logged) == 1, (name, [r.getMessage() for r in logged])


@pytest.mark.parametrize("name", sorted(malformed.UNDECODABLE))
def test_decode_frame_raises_undecodable_frame_with_the_reason(name):
    """The pixel pipeline's own refusal: UndecodableFrame, never a decoder's raw error."""
    with pytest.raises(UndecodableFrame) as caught:
        decode_frame(malformed.UNDECODABLE[name](), 0)
    assert str(caught.value)


def test_jpeg_lossy_12_bit_decodes_as_dcmtk_does(tmp_path):
    """pydicom's JPEG-lossy.dcm (12-bit JPEG Extended, whose scan header libjpeg 9 refuses)
    decodes to exactly the samples dcmtk's dcmdjpeg gives."""
    reference = tmp_path / "dcmtk.dcm"
    subprocess.run(["dcmdjpeg", str(JPEG_LOSSY), str(reference)], check=True, capture_output=True)
    expected = pydicom.dcmread(reference).pixel_array

    frame = decode_frame(JPEG_LOSSY_BYTES, 0)

    assert frame.pixels.dtype == np.uint16
    assert np.array_equal(frame.pixels, expected)


async def test_jpeg_lossy_12_bit_renders_and_gives_values(service, reader, tmp_path):
    """Rendered frame, thumbnail and values of JPEG-lossy.dcm answer 200."""
    ds = pydicom.dcmread(JPEG_LOSSY)
    await stored_and_listed(service, reader, {"lossy": JPEG_LOSSY_BYTES}, tmp_path)

    for kind, path in viewer_paths(ds).items():
        response = await service.client.get(path, headers=reader)
        assert response.status == 200, (kind, await response.text())
        body = await response.read()
        if kind == "values":
            assert len(body) == ds.Rows * ds.Columns * 2
            assert response.headers["X-Teleread-Dtype"] == "int16"
        else:
            assert body[:2] == b"\xff\xd8"  # a JPEG


async def test_malformed_files_c_stored_never_give_a_500_and_a_valid_study_lands(
    service, reader, tmp_path, monkeypatch
):
    """Over C-STORE, Orthanc stores the malformed files that a sender can encode (all but the
    damaged deflate streams, which pynetdicom and dcmtk cannot even read to send). Ingest now
    quarantines them (tests/test_malformed_files.py); archives ingested before that check made
    them consultations, as this test's ingest (file check off) does. Opening each in the viewer
    (manifest, rendered frame, thumbnail, values) answers 200 or a 4xx with a reason, never a
    500; a valid study sent after lands."""
    monkeypatch.setattr("service.intake.ingest._file_check", lambda content, limit: "")
    monkeypatch.setattr(service.app[FOLLOWER], "file_checks", None)  # a thread sees the patch
    files = {m.name: m.make() for m in malformed.REFUSED_AT_INGEST if "deflated" not in m.name}
    await stored_and_listed(service, reader, files, tmp_path)
    items = {i["study_instance_uid"]: i for i in (await service.worklist(reader))["items"]}

    for name, data in files.items():
        ds = read(data)
        consultation = items[str(ds.StudyInstanceUID)]["id"]
        paths = {"manifest": f"/api/consultations/{consultation}/viewer", **viewer_paths(ds)}
        for kind, path in paths.items():
            response = await service.client.get(path, headers=reader)
            assert response.status < 500, (name, kind, await response.text())
            if response.status >= 400:
                assert (await response.json())["detail"], (name, kind)
    valid = malformed.valid_instance("OK2")
    await stored_and_listed(service, reader, {"valid": pydicom_bytes(valid)}, tmp_path)


def pydicom_bytes(ds: pydicom.Dataset) -> bytes:
    from service.demo.synthetic import dataset_bytes

    return dataset_bytes(ds)
