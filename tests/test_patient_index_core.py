"""The master patient index's core (issue 21 item 1): resident identity numbers checked by
GB 11643's check character, local identities linked only by a checked identifier (never by a
name), a contradicting identifier kept but never linking, an administrator's unlink that no
automatic link undoes, and every change reversible exactly once.

One migrated in-memory database per test: no Orthanc, no web app."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlite_utils

from service.identity_numbers import (
    HEALTH_CARD,
    RESIDENT_ID,
    Identifier,
    checked,
    contradiction,
    mask,
    recognise,
    resident_id_problem,
)
from service.intake.intake import ConsultationRequest, file_request
from service.storage import facilities as facility_store
from service.storage import patients
from service.storage.patients import LocalPatient, record_local_identity
from service.storage.schema import migrations
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .backends import connection_at

GB_EXAMPLE = "11010519491231002X"
"""The worked example printed in GB 11643-1999 (born 1949-12-31, a woman)."""

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _with_check(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return (
        first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    )


WANG = _with_check("33010219800214301")  # born 1980-02-14, male (1 odd)


@pytest.fixture
def db(tmp_path: Path, migrated_database: Path) -> Iterator[sqlite_utils.Database]:
    """On the engine under test (tests/backends.py: a copy of the migrated file, or a
    PostgreSQL database); rows read by name as ``service.storage.database.connect`` gives them."""
    database = connection_at(tmp_path / "t.db", migrated_database)
    database.conn.row_factory = sqlite3.Row  # PostgreSQL's rows are read by name already
    for name, aet in (("Township A", "TOWN_A"), ("Township B", "TOWN_B"), ("County", "CTY")):
        facility_store.add_facility(
            database, name=name, kind="township", aet=aet, timezone="Asia/Shanghai"
        )
    yield database
    database.close()


def test_check_character_accepts_the_standards_example_and_refuses_each_kind_of_mistake():
    assert resident_id_problem(GB_EXAMPLE) is None
    assert recognise("110105 19491231 002x") == Identifier(RESIDENT_ID, GB_EXAMPLE)
    assert recognise("１１０１０５１９４９１２３１００２Ｘ") == Identifier(RESIDENT_ID, GB_EXAMPLE)
    one_digit_wrong = "11010519491231003X"
    swapped = "11010519491213002X"
    assert "check character" in resident_id_problem(one_digit_wrong)
    assert resident_id_problem(swapped) is not None
    assert "18 characters" in resident_id_problem("1101051949123100")
    assert resident_id_problem(_with_check("11010519490231002")) is not None  # 31 February
    assert recognise("P-000123") is None and recognise("") is None
    assert checked(HEALTH_CARD, "h1234 5678 90") == Identifier(HEALTH_CARD, "H1234567890")
    assert checked(HEALTH_CARD, "12") is None
    assert mask(GB_EXAMPLE) == "1101**********002X"


def test_contradiction_names_the_field_that_disagrees():
    identifier = Identifier(RESIDENT_ID, WANG)
    assert contradiction(identifier, "19800214", "M") is None
    assert "birth date" in contradiction(identifier, "19800215", "M")
    assert "sex" in contradiction(identifier, "", "F")
    assert contradiction(Identifier(HEALTH_CARD, "H1234567890"), "19990101", "F") is None


def test_every_consultation_indexes_its_patient_and_same_name_never_links(db):
    """Two facilities' patients with the same name, birth date and sex stay two persons."""
    for facility, accession in ((1, "A1"), (2, "B1")):
        request = ConsultationRequest(
            priority=Priority.ROUTINE,
            accession_number=accession,
            patient_id="P-1",
            patient_name="WANG^FANG",
            patient_birth_date="19800214",
            patient_sex="M",
            modality="CT",
        )
        file_request(db, request, facility_id=facility, user_id=None, now=NOW, sla=SlaPolicy())
    a = patients.identity(db, 1, "P-1")
    b = patients.identity(db, 2, "P-1")
    assert a and b and a["person_id"] != b["person_id"]
    assert a["name"] == "WANG^FANG" and a["birth_date"] == "19800214" and a["sex"] == "M"
    assert [i["facility_id"] for i in patients.linked_identities(db, 1, "P-1")] == [1]


def test_a_shared_identifier_links_across_facilities_and_the_cte_finds_both(db):
    wang = Identifier(RESIDENT_ID, WANG)
    first = record_local_identity(db, LocalPatient(1, "T-7", "WANG^WEI", "19800214", "M"), [wang])
    assert first.links == ()
    second = record_local_identity(db, LocalPatient(3, "C-9001", "王伟", "", "M"), [wang], "hl7")
    assert len(second.links) == 1 and second.person_id == first.person_id
    linked = patients.linked_identities(db, 3, "C-9001")
    assert [(i["facility_id"], i["patient_id"]) for i in linked] == [(3, "C-9001"), (1, "T-7")]
    rows = db.execute(
        f"WITH {patients.LINKED_IDENTITIES} SELECT facility_id, patient_id FROM linked"
        " ORDER BY facility_id",
        patients.linked_parameters(1, "T-7"),
    ).fetchall()
    assert [tuple(r) for r in rows] == [(1, "T-7"), (3, "C-9001")]
    unknown = db.execute(
        f"WITH {patients.LINKED_IDENTITIES} SELECT facility_id, patient_id FROM linked",
        patients.linked_parameters(2, "NOBODY"),
    ).fetchall()
    assert [tuple(r) for r in unknown] == [(2, "NOBODY")]
    change = patients.get_change(db, second.links[0])
    assert (change["action"], change["method"], change["identifier_system"]) == (
        "link",
        "identifier",
        RESIDENT_ID,
    )


def test_a_contradicting_identifier_is_kept_disputed_and_links_nothing(db):
    wang = Identifier(RESIDENT_ID, WANG)
    record_local_identity(db, LocalPatient(1, "T-7", "WANG^WEI", "19800214", "M"), [wang])
    other = record_local_identity(db, LocalPatient(2, "X-1", "LI^NA", "19921003", "F"), [wang])
    assert other.links == () and len(other.disputed) == 1
    assert len(patients.linked_identities(db, 2, "X-1")) == 1
    (row,) = patients.identifiers_of(db, [other.identity_id])
    assert "birth date" in row["disputed"]


def test_unlink_blocks_relinking_and_reversals_restore_exactly_once(db):
    wang = Identifier(RESIDENT_ID, WANG)
    a = record_local_identity(db, LocalPatient(1, "T-7", "WANG^WEI", "19800214", "M"), [wang])
    b = record_local_identity(db, LocalPatient(2, "B-7", "WANG^WEI", "19800214", "M"), [wang])
    unlink = patients.separate_identity(db, b.identity_id, None, "two people, one card copied")
    assert len(patients.linked_identities(db, 2, "B-7")) == 1
    again = record_local_identity(db, LocalPatient(2, "B-7"), [wang])
    assert again.links == () and len(patients.linked_identities(db, 2, "B-7")) == 1
    patients.reverse_change(db, unlink, None, "it was one person after all")
    assert len(patients.linked_identities(db, 2, "B-7")) == 2
    with pytest.raises(ValueError):
        patients.reverse_change(db, unlink, None, "twice")
    link = b.links[0]
    patients.reverse_change(db, link, None, "undo the automatic link")
    assert len(patients.linked_identities(db, 1, "T-7")) == 1
    assert record_local_identity(db, LocalPatient(1, "T-7"), [wang]).links == ()
    history = patients.link_changes(db, [b.identity_id])
    assert [(h["action"], h["method"]) for h in history] == [
        ("unlink", "reversal"),
        ("link", "reversal"),
        ("unlink", "administrator"),
        ("link", "identifier"),
    ]
    assert [h["action"] for h in patients.link_changes(db, [a.identity_id])] == ["unlink", "link"]


@pytest.mark.sqlite_file  # SQLite's migrations; PostgreSQL's schema starts after them
def test_migration_indexes_the_patients_of_existing_consultations():
    """A database from before the index: each (facility, Patient ID) becomes one identity with
    the latest consultation's demographics, one person each; blank IDs are not indexed."""
    database = sqlite_utils.Database(sqlite3.connect(":memory:", isolation_level=None))
    database.conn.row_factory = sqlite3.Row
    migrations.apply(database, stop_before="m042_patient_identities")
    facility = facility_store.add_facility(
        database, name="Township A", kind="township", aet="TOWN_A", timezone="Asia/Shanghai"
    )
    for n, (patient_id, name) in enumerate([("P-1", "OLD^NAME"), ("P-1", "NEW^NAME"), ("", "")]):
        database.execute(
            "INSERT INTO consultations (facility_id, patient_id, patient_name, status, due_at,"
            " created_at, updated_at) VALUES (?, ?, ?, 'requested', ?, ?, ?)",
            [facility, patient_id, name, f"2026-12-0{n + 1}", "2026-12-01", "2026-12-02"],
        )
    migrations.apply(database)
    rows = [dict(r) for r in database.query("SELECT * FROM patient_identities")]
    assert [(r["facility_id"], r["patient_id"], r["name"]) for r in rows] == [
        (facility, "P-1", "NEW^NAME")
    ]
    assert database.execute("SELECT COUNT(*) FROM patient_persons").fetchone()[0] == 1


def test_recent_exams_finds_the_same_item_at_a_linked_facility_only(db):
    wang = Identifier(RESIDENT_ID, WANG)
    for facility, patient_id, modality, body_part, accession in (
        (1, "T-7", "CT", "HEAD", "A1"),
        (1, "T-7", "CR", "CHEST", "A2"),
        (2, "T-7", "CT", "HEAD", "B1"),  # same local ID elsewhere: another person
    ):
        request = ConsultationRequest(
            priority=Priority.ROUTINE,
            accession_number=accession,
            patient_id=patient_id,
            patient_name="WANG^WEI",
            modality=modality,
            body_part=body_part,
        )
        file_request(db, request, facility_id=facility, user_id=None, now=NOW, sla=SlaPolicy())
    record_local_identity(db, LocalPatient(1, "T-7", "WANG^WEI", "19800214", "M"), [wang])
    record_local_identity(db, LocalPatient(3, "C-1", "WANG^WEI", "19800214", "M"), [wang])
    found = patients.recent_exams(db, 3, "C-1", "CT", "HEAD", "2026-11-26T00:00:00Z")
    assert [(r["facility_id"], r["accession_number"]) for r in found] == [(1, "A1")]
    assert found[0]["facility_name"] == "Township A" and found[0]["recognition"] == ""
    assert patients.recent_exams(db, 3, "C-1", "CT", "HEAD", "2026-12-04T00:00:00Z") == []
