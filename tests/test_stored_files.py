"""Cold frames read the managed Orthanc's files from its storage area
(``service/runtime/orthanc/stored_files.py``): the same bytes as over HTTP, and HTTP whenever the
file is not exactly the one Orthanc listed. A real Orthanc, a real SQLite layout store."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from service.demo.synthetic import StudySpec, make_study
from service.runtime.orthanc.client import OrthancClient, OrthancError
from service.runtime.orthanc.file_reader import OrthancFileReader
from service.runtime.orthanc.stored_files import StoredFiles
from service.viewing.viewing import Viewing, index_from_json, index_to_json

from .backends import database_at
from .conftest import store_in_orthanc


async def test_files_come_from_the_storage_area_once_a_layout_listed_them(orthanc, tmp_path):
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    reader = OrthancFileReader(orthanc.url, credentials.username, credentials.password)
    database = database_at(tmp_path / "layouts.db")
    try:
        slices = make_study(StudySpec("SF1", "STORED^FILES", "CT", "HEAD", 3, rows=64))
        ids = await store_in_orthanc(orthanc, slices)
        study = (await client.get(f"/instances/{ids[0]}/study"))["ID"]
        stored = StoredFiles.beside(orthanc.config.directory / "storage", reader.read)
        assert stored is not None
        assert StoredFiles.beside(tmp_path / "no-such-storage", reader.read) is None

        assert stored.read(ids[0]) == reader.read(ids[0])  # not listed yet: over HTTP
        assert (stored.from_disk, stored.over_http) == (0, 1)

        viewing = Viewing(database, client, stored)
        index = await viewing.index(str(slices[0].StudyInstanceUID), study)
        entries = {entry.orthanc_id: entry for entry in index.instances.values()}
        for orthanc_id in ids:
            assert entries[orthanc_id].file_size > 0 and entries[orthanc_id].file_uuid
            assert stored.read(orthanc_id) == reader.read(orthanc_id)
        assert (stored.from_disk, stored.over_http) == (3, 1)

        # A file that is not the size Orthanc listed, or gone, is read over HTTP instead.
        entry = entries[ids[1]]
        stored.note(ids[1], entry.file_uuid, entry.file_size + 1)
        assert stored.read(ids[1]) == reader.read(ids[1])
        await client.request("DELETE", f"/instances/{ids[2]}")
        with pytest.raises(OrthancError):
            stored.read(ids[2])
        assert stored.from_disk == 3
        # A uuid that is not Orthanc's shape is never made into a path.
        stored.note(ids[0], "../../../../etc/passwd", 10)
        assert stored.read(ids[0]) == reader.read(ids[0])
        assert stored.from_disk == 4  # still the listed location
    finally:
        await client.close()
        reader.close()
        database.close()


def test_a_layout_stored_before_file_locations_still_reads() -> None:
    """Layouts in study_layouts written by older code have no file fields: their files come
    over HTTP (an empty uuid is never noted)."""
    slices = make_study(StudySpec("SF2", "STORED^FILES", "CT", "HEAD", 1, rows=16))
    written = {
        "uid": str(slices[0].StudyInstanceUID),
        "orthanc_id": "study-1",
        "study": {},
        "series": [],
    }
    index = index_from_json(written, 0.0)
    assert index.instances == {}
    series = {
        "uid": "1.2.3",
        "number": 1,
        "modality": "CT",
        "description": "",
        "body_part": "",
        "instances": [
            {
                "uid": "1.2.3.4",
                "orthanc_id": "o1",
                "series_uid": "1.2.3",
                "number": 1,
                "frames": 1,
                "rows": 16,
                "columns": 16,
                "pixel_spacing": None,
                "spacing_source": None,
                "photometric": "MONOCHROME2",
                "windows": [],
                "slice_location": None,
            }
        ],
    }
    index = index_from_json({**written, "series": [series]}, 0.0)
    entry = index.instances["1.2.3.4"]
    assert (entry.file_uuid, entry.file_size) == ("", 0)
    again = json.loads(json.dumps(index_to_json(index)))
    assert asdict(index_from_json(again, 0.0).instances["1.2.3.4"]) == asdict(entry)


def test_storage_paths_are_orthancs(tmp_path: Path) -> None:
    """``<storage>/<uuid[0:2]>/<uuid[2:4]>/<uuid>``, read whole; a longer file is refused."""
    uuid = "0123abcd-0000-4000-8000-000000000001"
    folder = tmp_path / "01" / "23"
    folder.mkdir(parents=True)
    (folder / uuid).write_bytes(b"DICM-bytes")
    asked: list[str] = []
    stored = StoredFiles(tmp_path, lambda orthanc_id: asked.append(orthanc_id) or b"http")
    stored.note("a", uuid, 10)
    stored.note("b", uuid, 9)
    assert stored.read("a") == b"DICM-bytes"
    assert stored.read("b") == b"http"
    assert asked == ["b"]
