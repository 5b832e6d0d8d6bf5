"""What orders from hospital systems rest on: facilities known by their HIS code, requests that
carry a patient's birth date, sex, procedure and order number, filed by a system rather than a
person, and cancelled while open (issue 18)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest

from service.cli.main import main
from service.intake.cancellation import cancel_request
from service.intake.intake import (
    ConsultationRequest,
    InstanceOrigin,
    ReceivedStudy,
    file_request,
    receive_study,
)
from service.storage import Conflict, Database
from service.storage import consultations as store
from service.storage import facilities as facility_store
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .backends import database_at, database_url_at

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def teleread(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_facility_hl7_settings_by_command_line(tmp_path, monkeypatch, capsys):
    """`teleread facility add|update` set the HL7 code, the results endpoint and the character
    set; a code another facility uses (as code or as AE title) is refused; '' clears."""
    monkeypatch.setenv("TELEREAD_DATA_DIR", str(tmp_path / "var"))
    if url := database_url_at(tmp_path / "var" / "teleread.db"):
        monkeypatch.setenv("TELEREAD_DATABASE_URL", url)
    monkeypatch.setenv("TELEREAD_ORTHANC_HTTP_PORT", "1")  # nothing listens: not registered
    code, out, err = teleread(
        capsys, "facility", "add", "--name", "Dongxiang", "--kind", "township",
        "--aet", "DONGXIANG_DR", "--hl7-code", "DXWSY", "--character-set", "GB18030",
    )  # fmt: skip
    assert code == 0, err
    first = int(out)
    code, out, err = teleread(
        capsys, "facility", "add", "--name", "County", "--kind", "county", "--aet", "COUNTY_CT"
    )
    second = int(out)
    code, out, err = teleread(capsys, "facility", "update", str(second), "--hl7-code", "DXWSY")
    assert code == 1 and "DXWSY" in err
    code, out, err = teleread(
        capsys, "facility", "update", str(second), "--hl7-code", "DONGXIANG_DR"
    )
    assert code == 1 and "already names facility" in err
    code, out, err = teleread(capsys, "facility", "update", str(second), "--hl7-endpoint", "x")
    assert code == 1 and "host:port" in err
    code, out, err = teleread(
        capsys, "facility", "update", str(second),
        "--hl7-code", "COUNTY-HIS", "--hl7-endpoint", "his.county.example:2575",
    )  # fmt: skip
    assert code == 0, err
    updated = json.loads(out)
    assert (updated["hl7_code"], updated["hl7_endpoint"]) == (
        "COUNTY-HIS",
        "his.county.example:2575",
    )
    assert updated["character_set"] == "ISO_IR 192"

    database = database_at(tmp_path / "var" / "teleread.db")
    try:
        by_code = database.read_sync(facility_store.facility_by_hl7_code, "COUNTY-HIS")
        by_aet = database.read_sync(facility_store.facility_by_hl7_code, "DONGXIANG_DR")
        by_own_code = database.read_sync(facility_store.facility_by_hl7_code, "DXWSY")
        unknown = database.read_sync(facility_store.facility_by_hl7_code, "NOBODY")
        assert (by_code["id"], by_aet["id"], by_own_code["id"]) == (second, first, first)
        assert by_own_code["character_set"] == "GB18030"
        assert unknown is None
    finally:
        database.close()
    code, out, err = teleread(capsys, "facility", "update", str(second), "--hl7-endpoint", "")
    assert code == 0 and json.loads(out)["hl7_endpoint"] is None


@pytest.fixture
def database(tmp_path) -> Database:
    database = database_at(tmp_path / "teleread.db")
    database.write_sync(
        facility_store.add_facility,
        name="Dongxiang", kind="township", aet="DONGXIANG_DR", timezone="Asia/Shanghai",
    )  # fmt: skip
    yield database
    database.close()


def test_an_order_from_a_system_is_filed_found_and_cancelled(database):
    """An HL7/FHIR order has no user: the request keeps the channel, the order number and the
    patient's birth date and sex; open_by_placer_order finds it until it is cancelled, and a
    second cancel is refused as finished without a second event."""
    order = ConsultationRequest(
        priority=Priority.URGENT,
        accession_number="ACC1",
        patient_id="P1",
        patient_name="Wang^Fang=王^芳",
        patient_birth_date="19560304",
        patient_sex="F",
        modality="CT",
        requested_procedure="CT chest plain",
        requested_procedure_code="CTCHEST",
        placer_order_number="HIS-42",
        via="hl7",
    )
    consultation_id, created = database.write_sync(
        file_request, order, facility_id=1, user_id=None, now=NOW, sla=SlaPolicy()
    )
    assert created
    row = database.read_sync(store.open_by_placer_order, 1, "HIS-42")
    assert row["id"] == consultation_id
    assert (row["patient_birth_date"], row["patient_sex"], row["requested_via"]) == (
        "19560304",
        "F",
        "hl7",
    )
    assert (row["requested_procedure"], row["requested_procedure_code"]) == (
        "CT chest plain",
        "CTCHEST",
    )
    assert row["requested_by"] is None
    assert database.read_sync(store.open_by_accession, 1, "ACC1")["id"] == consultation_id
    events = database.read_sync(store.events_of, consultation_id)
    assert events[-1]["type"] == "requested"
    assert events[-1]["actor_user_id"] is None

    database.write_sync(
        cancel_request, consultation_id, user_id=None, reason="order withdrawn", now=NOW, via="hl7"
    )
    assert database.read_sync(store.open_by_placer_order, 1, "HIS-42") is None
    with pytest.raises(Conflict):
        database.write_sync(
            cancel_request, consultation_id, user_id=None, reason="again", now=NOW, via="hl7"
        )
    events = database.read_sync(store.events_of, consultation_id)
    assert [e["type"] for e in events].count("cancelled") == 1
    status, cancelled_at = database.read_sync(
        lambda db: db.execute(
            "SELECT c.status, t.cancelled_at FROM consultations c"
            " JOIN turnaround_facts t ON t.consultation_id = c.id WHERE c.id = ?",
            [consultation_id],
        ).fetchone()
    )
    assert status == "cancelled" and cancelled_at is not None

    # The exam happened after all: its images do not revive the withdrawn request but wait
    # for one of their own.
    study = ReceivedStudy(
        orthanc_id="o-late",
        study_instance_uid="1.2.3.4",
        patient_id="P1",
        accession_number="ACC1",
        modalities=("CT",),
        instances_count=3,
        origins=(InstanceOrigin("DicomProtocol", "DONGXIANG_DR", "10.0.0.9"),),
    )
    outcome = database.write_sync(receive_study, study, now=NOW, sla=SlaPolicy())
    assert outcome.created and outcome.consultation_ids[0] != consultation_id
    statuses = database.read_sync(
        lambda db: dict(db.execute("SELECT id, status FROM consultations").fetchall())
    )
    assert statuses == {consultation_id: "cancelled", outcome.created[0]: "awaiting_request"}


def test_hl7_codes_are_unique_in_the_database(database):
    """The partial unique index holds even for a writer that skips the storage function."""
    database.write_sync(facility_store.update_facility, 1, hl7_code="DX")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        database.write_sync(
            lambda db: db.execute(
                "INSERT INTO facilities (name, kind, aet, hl7_code, created_at)"
                " VALUES ('x', 'county', 'X', 'DX', '2026')"
            )
        )
