"""The viewer's stored study layouts: a minute's cache when built on an opening, kept a week
when the ingest built them as the study became stable."""

from __future__ import annotations

import pytest

from service.storage.viewing import save_study_layout, study_layout

from .backends import database_at

NOW = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
def database(tmp_path):
    database = database_at(tmp_path / "layouts.db")
    yield database
    database.close()


def test_a_layout_is_stored_with_whether_the_ingest_built_it(database):
    database.write_sync(save_study_layout, "1.2.3", "orthanc-a", NOW, "{}", True)
    database.write_sync(save_study_layout, "1.2.4", "orthanc-b", NOW, "{}")
    assert database.read_sync(study_layout, "1.2.3")["stable"] == 1
    assert database.read_sync(study_layout, "1.2.4")["stable"] == 0


def test_layouts_built_on_an_opening_are_dropped_after_an_hour(database):
    database.write_sync(save_study_layout, "1.2.3", "orthanc-a", NOW - 2 * HOUR, "{}")
    database.write_sync(save_study_layout, "1.2.4", "orthanc-b", NOW, "{}")
    assert database.read_sync(study_layout, "1.2.3") is None


def test_stable_layouts_are_kept_a_week(database):
    """A study sent on Friday evening is first opened on Monday."""
    database.write_sync(save_study_layout, "1.2.3", "orthanc-a", NOW - 72 * HOUR, "{}", True)
    database.write_sync(save_study_layout, "1.2.4", "orthanc-b", NOW - 8 * 24 * HOUR, "{}", True)
    database.write_sync(save_study_layout, "1.2.5", "orthanc-c", NOW, "{}")
    assert database.read_sync(study_layout, "1.2.3") is not None
    assert database.read_sync(study_layout, "1.2.4") is None
