"""Who has opened which study, in the database every process shares: the first to record an
opening writes its study.viewed record in the same transaction, nobody else writes one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.audit import AuditEntry
from service.clock import to_iso, utc_now
from service.storage import Database
from service.storage.viewing import Opening, open_study

from .backends import database_at

STUDY = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def database(tmp_path):
    database = database_at(tmp_path / "openings.db")
    yield database
    database.close()


def viewed(user_id: int = 7) -> AuditEntry:
    return AuditEntry(
        at=to_iso(utc_now()),
        action="study.viewed",
        outcome="success",
        user_id=user_id,
        study_instance_uid=STUDY,
    )


def audited(database: Database) -> int:
    return database.read_sync(
        lambda db: db.execute(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'study.viewed'"
        ).fetchone()[0]
    )


def test_only_the_first_opening_is_recorded_and_audited(database):
    """A second Database object on the same file stands in for another process."""
    other = database_at(database.path)
    try:
        opening = Opening(7, 11, 0, STUDY)
        now = to_iso(utc_now())
        assert database.write_sync(open_study, opening, now, viewed()) is True
        assert other.write_sync(open_study, opening, now, viewed()) is False
        assert database.write_sync(open_study, opening, now, viewed()) is False
    finally:
        other.close()
    assert audited(database) == 1


def test_each_session_and_each_api_token_opens_a_study_of_its_own(database):
    now = to_iso(utc_now())
    for opening in (Opening(7, 11, 0, STUDY), Opening(7, 12, 0, STUDY), Opening(7, 0, 3, STUDY)):
        assert database.write_sync(open_study, opening, now, viewed()) is True
    assert database.write_sync(open_study, Opening(7, 0, 3, "1.2.3"), now, viewed()) is True
    assert audited(database) == 4


def test_an_opening_without_an_entry_is_recorded_but_not_audited(database):
    """The manifest's route audits every call itself; it only marks the study opened."""
    opening = Opening(7, 11, 0, STUDY)
    assert database.write_sync(open_study, opening, to_iso(utc_now())) is True
    assert database.write_sync(open_study, opening, to_iso(utc_now()), viewed()) is False
    assert audited(database) == 0


def test_openings_older_than_the_pruning_horizon_are_forgotten(database):
    """Pruned openings are audited again on the next access; recent ones are kept."""
    now = utc_now()
    old, recent = Opening(7, 11, 0, STUDY), Opening(8, 12, 0, STUDY)
    database.write_sync(open_study, old, to_iso(now - timedelta(hours=30)))
    database.write_sync(open_study, recent, to_iso(now - timedelta(hours=1)))
    day_ago = to_iso(now - timedelta(hours=24))
    assert database.write_sync(open_study, old, to_iso(now), viewed(), prune_before=day_ago)
    assert not database.write_sync(open_study, recent, to_iso(now), viewed(8))
    assert audited(database) == 1
