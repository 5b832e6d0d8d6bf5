"""Patient merges (HL7 ADT^A40, issue 18): a hospital system retires a patient id in favour of
another within its own facility; the merge is recorded with what it changed, audited, and an
administrator reverses it exactly, once.

One migrated database for the domain (on the engine under test); one app without Orthanc for
the admin API."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import hl7
import pytest

from service.audit.labels import action_labels, resource_labels
from service.hl7.patient_merge_messages import (
    MergeMessageRefused,
    PatientMergeOrder,
    apply_adt_a40,
    merges_from_adt_a40,
)
from service.intake.intake import ConsultationRequest, file_request
from service.intake.patient_merges import (
    PatientIdentity,
    audit_merge,
    merge_patients,
    reverse_merge,
)
from service.storage import Conflict
from service.storage import consultations as store
from service.storage import facilities as facility_store
from service.storage import patient_merges as merge_store
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .backends import connection_at

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)

ADT_A40 = "\r".join(
    [
        "MSH|^~\\&|HIS|COUNTY_HIS|TELEREAD|REGION|20261203083000+0800||ADT^A40^ADT_A39|"
        "MSG00042|P|2.5.1|||||CHN|UNICODE UTF-8",
        "EVN|A40|20261203083000+0800",
        "PID|1||P-100^^^COUNTY&2.16.156.1&ISO^MR~110101199001011234^^^CHNMOH^NNCHN||"
        "Wang^Fang^^^^^L^A~王^芳^^^^^L^I||19900101|F",
        "MRG|P-1^^^COUNTY&2.16.156.1&ISO^MR",
        "PID|2||P-200^^^COUNTY^MR||Li\\S\\Ming",
        "MRG|P-2^^^COUNTY^MR~P-3^^^COUNTY^MR",
    ]
)


@pytest.fixture
def app_orthanc() -> None:
    """No image is stored or shown here: the app runs without Orthanc (conftest)."""
    return None


def _request(db, facility_id: int, patient_id: str, name: str, accession: str) -> int:
    request = ConsultationRequest(
        priority=Priority.ROUTINE,
        accession_number=accession,
        patient_id=patient_id,
        patient_name=name,
        modality="CR",
        patient_sex="M",
    )
    consultation_id, _ = file_request(
        db, request, facility_id=facility_id, user_id=None, now=NOW, sla=SlaPolicy()
    )
    return consultation_id


def _patient(db, consultation_id: int) -> tuple[str, str, str, str]:
    row = merge_store.patient_fields(db, consultation_id)
    return tuple(row[k] for k in merge_store.PATIENT_FIELDS)


def _events(db, consultation_id: int, kind: str) -> list[dict]:
    return [e for e in store.events_of(db, consultation_id) if e["type"] == kind]


def test_merge_moves_one_facilitys_consultations_and_reverses_field_by_field(
    tmp_path, migrated_database
):
    """Facility A's two consultations of P-1 move to P-100 (with the message's name, birth date
    and sex), B's P-1 (another person) stays; each gets a timeline event and the record keeps
    the values before. A later change to one field survives the reversal; everything else
    comes back; a second reversal is refused and changes nothing. A merge with nothing to
    change is recorded and says so."""
    db = connection_at(tmp_path / "t.db", migrated_database)  # the engine under test
    db.conn.row_factory = sqlite3.Row  # as service.storage.database.connect sets it
    county = facility_store.add_facility(
        db, name="County", kind="county", aet="COUNTY_CT", timezone="Asia/Shanghai"
    )
    other = facility_store.add_facility(
        db, name="Other", kind="township", aet="OTHER_DR", timezone="Asia/Shanghai"
    )
    first = _request(db, county, "P-1", "WANG^F", "A1")
    second = _request(db, county, "P-1", "WANG^F", "A2")
    unrelated = _request(db, county, "P-9", "ZHAO^L", "A3")
    elsewhere = _request(db, other, "P-1", "CHEN^Y", "B1")
    surviving = PatientIdentity("P-100", "COUNTY", "Wang^Fang=王^芳", "19900101", "F")

    record = merge_patients(
        db,
        facility_id=county,
        surviving=surviving,
        prior=PatientIdentity("P-1", "COUNTY"),
        source="HL7 ADT^A40 COUNTY_HIS MSG00042",
        actor_user_id=None,
        now=NOW,
    )
    assert record.consultation_ids == (first, second) and not record.changed_nothing
    for consultation_id in (first, second):
        assert _patient(db, consultation_id) == ("P-100", "Wang^Fang=王^芳", "19900101", "F")
        (event,) = _events(db, consultation_id, "patient_merged")
        assert event["actor_user_id"] is None
        assert event["detail"]["merge_id"] == record.id
        assert event["detail"]["changed"] == sorted(
            ["patient_id", "patient_name", "patient_birth_date", "patient_sex"]
        )
    assert _patient(db, unrelated)[0] == "P-9"
    assert _patient(db, elsewhere) == ("P-1", "CHEN^Y", "", "M")
    saved = merge_store.get_merge(db, record.id)
    assert saved["consultations_changed"] == 2 and saved["reversed_at"] is None
    assert saved["changes"][0]["prior_values"] == {
        "patient_id": "P-1",
        "patient_name": "WANG^F",
        "patient_birth_date": "",
        "patient_sex": "M",
    }
    audit_id = audit_merge(db, record, username="hl7:COUNTY_HIS", client_ip="10.1.2.3")
    audit = dict(db.execute("SELECT * FROM audit_log WHERE id = ?", [audit_id]).fetchone())
    assert (audit["action"], audit["resource_id"], audit["facility_id"]) == (
        "patient.merged",
        str(record.id),
        county,
    )
    assert json.loads(audit["detail"])["consultations"] == [first, second]
    patients = {r[0] for r in db.execute("SELECT patient_id FROM audit_patients")}
    assert {"P-1", "P-100"} <= patients

    # After the merge, the HIS corrects the second consultation's name (ADT^A08, say).
    store.update_consultation(db, second, {"patient_name": "Wang^Fang^Corrected"})
    later = NOW + timedelta(hours=1)
    reversal = reverse_merge(db, record.id, actor_user_id=None, now=later)
    assert _patient(db, first) == ("P-1", "WANG^F", "", "M")
    assert _patient(db, second) == ("P-1", "Wang^Fang^Corrected", "", "M")
    assert reversal.kept == {second: ["patient_name"]}
    assert reversal.consultation_ids == [first, second]
    (event,) = _events(db, second, "patient_merge_reversed")
    assert (
        event["detail"]["kept"] == ["patient_name"] and "patient_id" in event["detail"]["restored"]
    )
    assert _patient(db, elsewhere)[0] == "P-1"

    with pytest.raises(Conflict) as refused:
        reverse_merge(db, record.id, actor_user_id=None, now=later + timedelta(hours=1))
    assert refused.value.code == "already_reversed"
    assert len(_events(db, first, "patient_merge_reversed")) == 1

    with pytest.raises(Conflict):
        merge_patients(
            db, facility_id=county, surviving=PatientIdentity("P-9"),
            prior=PatientIdentity("P-9"), source="test", actor_user_id=None, now=later,
        )  # fmt: skip
    empty = merge_patients(
        db, facility_id=other, surviving=PatientIdentity("Q-2"), prior=PatientIdentity("Q-1"),
        source="HL7 ADT^A40 OTHER MSG1", actor_user_id=None, now=later,
    )  # fmt: skip
    assert empty.changed_nothing and "no consultation" in empty.summary
    listed = merge_store.list_merges(db)
    assert [m["id"] for m in listed] == [empty.id, record.id]
    assert listed[1]["consultation_ids"] == [first, second] and listed[1]["reversed_at"]
    assert [m["id"] for m in merge_store.list_merges(db, facility_id=other)] == [empty.id]
    db.close()


def test_adt_a40_message_becomes_merge_orders_and_bad_ones_are_refused_with_a_reason():
    """Two PID/MRG groups: the first pairs by assigning authority and carries the Chinese name
    (A and I representations), birth date and sex; the second retires two ids; escapes are
    undone. Missing PID-3, MRG-1, an MRG without a PID, or no MRG at all: refused, located."""
    orders = merges_from_adt_a40(hl7.parse(ADT_A40))
    assert orders == [
        PatientMergeOrder(
            PatientIdentity("P-100", "COUNTY", "Wang^Fang=王^芳", "19900101", "F"),
            PatientIdentity("P-1", "COUNTY"),
        ),
        PatientMergeOrder(
            PatientIdentity("P-200", "COUNTY", "Li^Ming"), PatientIdentity("P-2", "COUNTY")
        ),
        PatientMergeOrder(
            PatientIdentity("P-200", "COUNTY", "Li^Ming"), PatientIdentity("P-3", "COUNTY")
        ),
    ]
    header = ADT_A40.split("\r")[:2]
    cases = {
        "PID|1||^^^COUNTY^MR||Wang\rMRG|P-1": ("PID", 1, 3, "PID-3"),
        "PID|1||P-100\rMRG|": ("MRG", 1, 1, "MRG-1"),
        "PID|1||P-100\rMRG|P-1\rMRG|P-2": ("MRG", 2, 1, "without a PID"),
        "PID|1||P-100": ("MRG", 1, 1, "MRG-1"),
        "": ("PID", 1, 3, "PID-3"),
        "PID|1||P-100\rMRG|P-100": ("MRG", 1, 1, "itself"),
    }
    for body, (segment, sequence, field, words) in cases.items():
        text = "\r".join([*header, body]) if body else "\r".join(header)
        with pytest.raises(MergeMessageRefused) as refused:
            merges_from_adt_a40(hl7.parse(text))
        problem = refused.value
        assert isinstance(problem, ValueError)
        assert (problem.segment, problem.sequence, problem.field) == (segment, sequence, field)
        assert words in problem.reason, (body, problem.reason)


async def test_admin_lists_and_reverses_a_merge_once(service, people):
    """GET lists the merge with its facility, ids, source and consultations; POST .../reverse
    restores them (audited ``patient.merge_reversed``); a second reversal is 409 with the
    reason; anyone but an administrator is refused (403) and nothing changes."""
    ids = await people.seed(
        {"centre": ("Centre", "regional", "CENTRE"), "county": ("County", "county", "COUNTY")},
        {"root": ("admin", "centre"), "dr.li": ("specialist", "centre")},
    )
    database = service.database

    def merge(db):
        consultation_id = _request(db, ids["county"], "P-1", "WANG^F", "A1")
        message = hl7.parse("\r".join(ADT_A40.split("\r")[:4]))  # the first group
        records = apply_adt_a40(
            db, message, facility_id=ids["county"], sender="COUNTY", client_ip="10.1.2.3", now=NOW
        )
        return consultation_id, records

    consultation_id, records = await database.write(merge)
    (record,) = records
    assert record.consultation_ids == (consultation_id,)
    admin, specialist = await service.login("root"), await service.login("dr.li")
    path = f"/api/admin/patient-merges/{record.id}/reverse"

    response = await service.client.get("/api/admin/patient-merges", headers=admin)
    assert response.status == 200, await response.text()
    (item,) = (await response.json())["items"]
    assert item["facility_name"] == "County" and item["source"] == "HL7 ADT^A40 COUNTY MSG00042"
    assert (item["prior_patient_id"], item["surviving_patient_id"]) == ("P-1", "P-100")
    assert (item["surviving_name"], item["prior_authority"]) == ("Wang^Fang=王^芳", "COUNTY")
    assert item["consultation_ids"] == [consultation_id] and item["reversed_at"] is None
    for method, url in (("GET", "/api/admin/patient-merges"), ("POST", path)):
        response = await service.client.request(method, url, headers=specialist)
        assert response.status == 403, (method, url)
    assert (await database.read(merge_store.patient_fields, consultation_id))["patient_id"] == (
        "P-100"
    )

    response = await service.client.post(path, headers=admin)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["consultations_restored"] == [consultation_id] and answer["kept"] == {}
    assert await database.read(_patient, consultation_id) == ("P-1", "WANG^F", "", "M")
    response = await service.client.post(path, headers=admin)
    assert response.status == 409
    assert (await response.json())["error"] == "already_reversed"
    response = await service.client.post("/api/admin/patient-merges/999/reverse", headers=admin)
    assert response.status == 404

    response = await service.client.get("/api/admin/patient-merges", headers=admin)
    (item,) = (await response.json())["items"]
    assert item["reversed_at"] and item["reversed_by_name"] == "root"

    rows = await database.read(
        lambda db: [
            dict(r)
            for r in db.execute(
                "SELECT action, outcome, username, resource_id, patient_id FROM audit_log"
                " WHERE action LIKE 'patient.%' ORDER BY id"
            )
        ]
    )
    assert [(r["action"], r["outcome"], r["username"]) for r in rows] == [
        ("patient.merged", "success", "hl7:COUNTY"),
        ("patient.merge_reversed", "denied", "dr.li"),
        ("patient.merge_reversed", "success", "root"),
        ("patient.merge_reversed", "failed", "root"),
        ("patient.merge_reversed", "denied", "root"),
    ]
    assert rows[2]["resource_id"] == str(record.id) and rows[2]["patient_id"] == "P-100,P-1"
    assert "Patient merged" in action_labels(lambda text: text).values()
    assert "patient_merge" in resource_labels(lambda text: text)
