"""Several frames of a series in one answer (``GET /api/viewer/studies/{study}/series/{series}/
values?frames=``), against a real Orthanc and the real service: the same values as the per-frame
route, in the order asked; a colour frame answers its reason without costing the others their
values; scoped and audited as the per-frame route (404 outside the caller's scope or series)."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import zstandard

from service.demo.synthetic import StudySpec, make_study
from service.viewing.value_batches import (
    MOST_FRAMES,
    BadFrameList,
    FrameRequest,
    FrameValues,
    delta8,
    pack,
    parse_frames,
)

from .conftest import Service
from .module_app import running_service

SIZE = 48


def unpack(body: bytes) -> list[tuple[dict[str, Any], bytes | None]]:
    """The body as the page reads it: the index, then each frame's bytes at its offset."""
    (length,) = struct.unpack_from("<I", body)
    assert (4 + length) % 8 == 0
    index = json.loads(body[4 : 4 + length])["frames"]
    start = 4 + length
    return [
        (
            e,
            body[start + e["offset"] : start + e["offset"] + e["length"]]
            if "offset" in e
            else None,
        )
        for e in index
    ]


class TestPack:
    """The body's layout (service/viewing/value_batches.py), without a server."""

    def test_every_frame_starts_at_a_multiple_of_eight_in_the_order_given(self):
        """Odd-sized frames are padded so a Float64/Int16 view may start at each."""
        frames = [
            FrameValues(FrameRequest("1.2.3", 1), b"\x01" * 6, "int16", 1, 3, "MONOCHROME2"),
            FrameValues(FrameRequest("1.2.4", 2), status=409, error="colour_image"),
            FrameValues(FrameRequest("1.2.5", 1), b"\x02" * 12, "float32", 1, 3, "MONOCHROME1"),
        ]
        read = unpack(pack(frames))
        assert [(e["instance"], e["frame"]) for e, _ in read] == [
            ("1.2.3", 1),
            ("1.2.4", 2),
            ("1.2.5", 1),
        ]
        assert [data for _, data in read] == [b"\x01" * 6, None, b"\x02" * 12]
        assert read[1][0] == {
            "instance": "1.2.4",
            "frame": 2,
            "status": 409,
            "error": "colour_image",
        }
        assert all(e["offset"] % 8 == 0 for e, data in read if data is not None)
        assert read[2][0]["dtype"] == "float32" and read[2][0]["photometric"] == "MONOCHROME1"

    def test_the_frame_list_is_bounded_and_well_formed(self):
        """1 to MOST_FRAMES distinct uid:n pairs, frames from 1."""
        assert parse_frames("1.2.3:1,1.2.3:2") == [
            FrameRequest("1.2.3", 1),
            FrameRequest("1.2.3", 2),
        ]
        for bad in ("", "1.2.3", "1.2.3:0", "1.2.x:1", "1.2.3:1,1.2.3:1", "1.2.3:-1"):
            with pytest.raises(BadFrameList):
                parse_frames(bad)
        with pytest.raises(BadFrameList):
            parse_frames(",".join(f"1.2.{i}:1" for i in range(MOST_FRAMES + 1)))


def undelta8(packed: bytes, n: int) -> bytes:
    """The delta8 packing undone one value at a time, as its definition reads (the module
    docstring), independently of the vectorised packer."""
    values, p, value = [], 0, 0
    for _ in range(n):
        if packed[p] == 0x80:
            value = int.from_bytes(packed[p + 1 : p + 3], "little", signed=True)
            p += 3
        else:
            value = value + int.from_bytes(packed[p : p + 1], "little", signed=True) + 32768
            value = value % 65536 - 32768
            p += 1
        values.append(value)
    assert p == len(packed)
    return np.array(values, dtype="<i2").tobytes()


class TestDelta8:
    """The ``delta8`` packing of int16 frames (value_batches.py), without a server."""

    def test_small_differences_take_a_byte_the_others_an_escape_and_the_value(self):
        """The same bytes tests/js/batches.test.mjs rebuilds: +5, +127, -128 (escaped), 32767
        (escaped), +1 modulo 2**16, +127."""
        values = np.array([5, 132, 4, 32767, -32768, -32641], dtype="<i2").tobytes()
        assert list(delta8(values)) == [5, 127, 0x80, 4, 0, 0x80, 0xFF, 0x7F, 1, 127]

    @pytest.mark.parametrize("seed", [1, 2])
    def test_any_values_come_back_exactly(self, seed):
        """Random walks of every step size and random values over the whole int16 range."""
        rng = np.random.default_rng(seed)
        walk = np.cumsum(rng.integers(-300, 301, 3000)).astype("<i2")
        noise = rng.integers(-32768, 32768, 3000).astype("<i2")
        for values in (walk, noise, np.zeros(5, "<i2"), np.array([-128], "<i2")):
            assert undelta8(delta8(values.tobytes()), values.size) == values.tobytes()

    def test_only_int16_frames_are_packed_and_say_so(self):
        """float32 values stay as they are; errors have no bytes."""
        ints = np.array([1, 2, 3], dtype="<i2").tobytes()
        frames = [
            FrameValues(FrameRequest("1.2.3", 1), ints, "int16", 1, 3, "MONOCHROME2"),
            FrameValues(FrameRequest("1.2.4", 1), status=409, error="colour_image"),
            FrameValues(FrameRequest("1.2.5", 1), b"\x02" * 12, "float32", 1, 3, "MONOCHROME1"),
        ]
        (first, packed), (error, _), (floats, data) = unpack(pack(frames, "delta8"))
        assert first["packing"] == "delta8" and packed == bytes([1, 1, 1])
        assert "packing" not in error and "packing" not in floats and data == b"\x02" * 12
        assert all("packing" not in e for e, _ in unpack(pack(frames)))


@pytest.fixture(scope="module")
async def batch_world(tmp_path_factory) -> AsyncIterator[dict[str, Any]]:
    """Clinic A sent a 4-slice CT and a two-image CR series whose second image is RGB; a
    specialist of the regional centre reads; clinic B's clinician may not."""
    directory = tmp_path_factory.mktemp("viewer_batch")
    async with running_service(directory) as (service, _settings):
        a = await service.add_facility("Township clinic A", "township", "CLINIC_A")
        b = await service.add_facility("Township clinic B", "township", "CLINIC_B")
        centre = await service.add_facility("Regional centre", "regional", "CENTRE")
        await service.add_user("li_b", "clinician", b)
        await service.add_user("zhao_c", "specialist", centre)
        del a
        ct = make_study(StudySpec("P_BATCH_1", "WANG^BATCH", "CT", "HEAD", instances=4, rows=SIZE))
        grey, colour = make_study(StudySpec("P_BATCH_2", "LI^BATCH", "CR", "HAND", 2, rows=32))
        rgb = np.zeros((32, 32, 3), dtype=np.uint8)
        rgb[..., 1] = 120
        colour.set_pixel_data(rgb, "RGB", 8, generate_instance_uid=False)
        await service.c_store(ct, "CLINIC_A")
        await service.c_store([grey, colour], "CLINIC_A")
        specialist = await service.login("zhao_c")

        async def received():
            items = (await service.worklist(specialist))["items"]
            return len(items) == 2 and all(i["received_at"] for i in items) and items

        await service.wait_for(received, timeout=30)
        yield {
            "service": service,
            "ct": ct,
            "cr": [grey, colour],
            "specialist": specialist,
            "other": await service.login("li_b"),
        }


@pytest.fixture
def service(batch_world) -> Service:
    return batch_world["service"]


def batch_path(datasets: list, frames: list[tuple[Any, int]]) -> str:
    ds = datasets[0]
    listed = ",".join(f"{f.SOPInstanceUID}:{n}" for f, n in frames)
    return (
        f"/api/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/values?frames={listed}"
    )


def frame_path(ds) -> str:
    return (
        f"/api/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1/values"
    )


async def test_a_batch_holds_the_per_frame_answers_in_the_order_asked(service, batch_world):
    """Three slices out of order: each entry equals the values route's body and headers;
    gzip and identity carry the same bytes."""
    ct, headers = batch_world["ct"], batch_world["specialist"]
    asked = [ct[2], ct[0], ct[3]]
    path = batch_path(ct, [(ds, 1) for ds in asked])
    packed = await service.client.get(path, headers={**headers, "Accept-Encoding": "gzip"})
    plain = await service.client.get(path, headers={**headers, "Accept-Encoding": "identity"})
    assert packed.status == plain.status == 200
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Cache-Control"] == "private, no-store"
    body = await packed.read()
    assert body == await plain.read()
    read = unpack(body)
    assert [e["instance"] for e, _ in read] == [str(ds.SOPInstanceUID) for ds in asked]
    for (entry, data), ds in zip(read, asked, strict=True):
        single = await service.client.get(frame_path(ds), headers=headers)
        assert data == await single.read()
        assert entry["dtype"] == single.headers["X-Teleread-Dtype"] == "int16"
        assert (entry["rows"], entry["columns"]) == (SIZE, SIZE)
        assert entry["photometric"] == single.headers["X-Teleread-Photometric"]


async def test_a_colour_frame_answers_its_reason_and_the_others_their_values(service, batch_world):
    """The RGB image of the series: 409 colour_image in its entry, the greyscale one's values."""
    grey, colour = batch_world["cr"]
    response = await service.client.get(
        batch_path([grey], [(colour, 1), (grey, 1)]), headers=batch_world["specialist"]
    )
    assert response.status == 200
    (entry, data), (grey_entry, grey_data) = unpack(await response.read())
    assert entry["status"] == 409 and entry["error"] == "colour_image" and data is None
    assert grey_entry["rows"] == 32 and len(grey_data or b"") == 32 * 32 * 2


async def test_a_frame_outside_the_series_or_the_instance_is_404(service, batch_world):
    """Another series' instance, an unknown one, or frame 2 of a one-frame image: 404."""
    ct, grey = batch_world["ct"], batch_world["cr"][0]
    headers = batch_world["specialist"]
    bad = (
        batch_path(ct, [(ct[0], 1), (grey, 1)]),
        batch_path(ct, [(ct[0], 2)]),
        batch_path(ct, [(ct[0], 1)]).replace(str(ct[0].SOPInstanceUID), "1.2.3.4.5"),
    )
    for path in bad:
        response = await service.client.get(path, headers=headers)
        assert response.status == 404, path
    missing = await service.client.get(batch_path(ct, [(ct[0], 1)]).split("?")[0], headers=headers)
    assert missing.status == 400


async def test_another_facility_sees_nothing_and_the_first_access_is_audited_once(
    service, batch_world
):
    """Clinic B's clinician: 404 with nothing of the study. A new session of the specialist:
    one study.viewed record for its first batch, none for the next."""
    ct = batch_world["ct"]
    path = batch_path(ct, [(ct[0], 1), (ct[1], 1)])
    refused = await service.client.get(path, headers=batch_world["other"])
    assert refused.status == 404
    assert "WANG" not in await refused.text()

    async def viewed() -> int:
        return await service.database.read(
            lambda db: db.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'study.viewed'"
            ).fetchone()[0]
        )

    headers = await service.login("zhao_c")
    before = await viewed()
    for _ in range(2):
        assert (await service.client.get(path, headers=headers)).status == 200
    assert await viewed() == before + 1


def _decoded(body: bytes, coding: str | None) -> bytes:
    """The body as a client decodes it, with decoders from outside the service."""
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompress(body)
    if coding == "gzip":
        return gzip.decompress(body)
    assert coding is None
    return body


async def _answer(service, path: str, headers, accept: str) -> tuple[bytes, Any]:
    response = await service.client.get(
        path, headers={**headers, "Accept-Encoding": accept}, auto_decompress=False
    )
    assert response.status == 200
    assert "Accept-Encoding" in response.headers["Vary"]
    return await response.read(), response.headers


@pytest.mark.parametrize("route", ["batch", "frame"])
async def test_a_client_that_accepts_zstd_gets_zstd_of_the_same_bytes(service, batch_world, route):
    """Chromium's Accept-Encoding (``gzip, deflate, br, zstd``): a zstd frame (RFC 8878) that
    the zstandard package decodes to exactly the identity answer, on both values routes."""
    ct, headers = batch_world["ct"], batch_world["specialist"]
    path = batch_path(ct, [(ds, 1) for ds in ct]) if route == "batch" else frame_path(ct[1])
    plain, plain_headers = await _answer(service, path, headers, "identity")
    packed, packed_headers = await _answer(service, path, headers, "gzip, deflate, br, zstd")
    assert "Content-Encoding" not in plain_headers
    assert packed_headers["Content-Encoding"] == "zstd"
    assert len(packed) < len(plain)
    assert _decoded(packed, "zstd") == plain


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br", "gzip"),
        ("gzip, zstd;q=0", "gzip"),
        ("zstd;q=0.5, gzip", "gzip"),
        ("*, zstd;q=0", "gzip"),
        ("zstd;q=0, gzip;q=0", None),
        ("identity", None),
        ("", None),
    ],
)
async def test_zstd_refused_or_not_offered_falls_back_to_gzip_then_identity(
    service, batch_world, accept, coding
):
    """zstd only when the client weighs it highest (ties: zstd, then gzip, then identity); the
    same values whatever the coding."""
    ct, headers = batch_world["ct"], batch_world["specialist"]
    path = batch_path(ct, [(ds, 1) for ds in ct[:2]])
    plain, _ = await _answer(service, path, headers, "identity")
    body, answer_headers = await _answer(service, path, headers, accept)
    assert answer_headers.get("Content-Encoding") == coding
    assert _decoded(body, coding) == plain


async def test_a_batch_packed_as_delta8_holds_the_same_values(service, batch_world):
    """``packing=delta8`` (what the viewer asks for): each int16 frame packed, and unpacked it
    is the per-frame route's body; zstd on top when accepted; any other packing is 400."""
    ct, headers = batch_world["ct"], batch_world["specialist"]
    path = batch_path(ct, [(ds, 1) for ds in ct])
    body, answer_headers = await _answer(
        service, path + "&packing=delta8", headers, "gzip, deflate, br, zstd"
    )
    assert answer_headers["Content-Encoding"] == "zstd"
    for (entry, data), ds in zip(unpack(_decoded(body, "zstd")), ct, strict=True):
        assert entry["packing"] == "delta8" and entry["length"] == len(data)
        single = await service.client.get(frame_path(ds), headers=headers)
        assert undelta8(data, SIZE * SIZE) == await single.read()
    bad = await service.client.get(path + "&packing=zip", headers=headers)
    assert bad.status == 400
