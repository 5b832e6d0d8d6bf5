"""The consortium record, queried with care (issue 21 item 4): a doctor whose facility has a
consultation for the patient sees their facility's part at once and the rest only after stating
a reason (400 without one); a doctor without a care relationship gets 403; every view, query and
print is audited with the reason and each linked identity; a manager exports the patient's
access log as CSV; national identifiers show masked only.

One app (without Orthanc: no image is involved) and one world for the whole module; each test
logs in afresh, so a reason one test states covers no other test's session.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlite_utils
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import expect

from service.app import create_app
from service.identity_numbers import RESIDENT_ID, Identifier, mask
from service.intake.intake import ConsultationRequest, file_request
from service.storage import patients
from service.storage.patients import LocalPatient, record_local_identity
from worklists.priorities import Priority
from worklists.sla import SlaPolicy

from .browser import log_in
from .conftest import Service, suite_settings
from .test_browser_accessibility import FORBIDDEN, axe_violations

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
STAMP = "2026-12-01T02:00:00Z"


def _with_check(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


WANG = _with_check("33010219800214301")  # born 1980-02-14, male
USERS = {
    "clin_a": ("clinician", "a"),
    "radio_a": ("radiographer", "a"),
    "req_c": ("requester", "c"),
    "clin_b": ("clinician", "b"),
    "spec_r": ("specialist", "r"),
    "man_r": ("manager", "r"),
    "man_a": ("manager", "a"),
    "man_b": ("manager", "b"),
}


def _file(db, facility: int, patient_id: str, accession: str, modality: str, body: str) -> int:
    request = ConsultationRequest(
        priority=Priority.ROUTINE,
        accession_number=accession,
        patient_id=patient_id,
        patient_name="WANG^WEI",
        patient_birth_date="19800214",
        patient_sex="M",
        modality=modality,
        body_part=body,
    )
    filed = file_request(db, request, facility_id=facility, user_id=None, now=NOW, sla=SlaPolicy())
    return filed[0]


def _sign(db, consultation_id: int, impression: str) -> None:
    """A signed version as signing leaves it (the PDF a marker: no PDF is rendered here)."""
    report = db.execute(
        "INSERT INTO reports (consultation_id, state, author_id, signed_versions, created_at,"
        " updated_at) VALUES (?, 'signed', NULL, 1, ?, ?)",
        [consultation_id, STAMP, STAMP],
    ).lastrowid
    user = db.execute("SELECT id FROM users ORDER BY id LIMIT 1").fetchone()[0]
    db.execute(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf)"
        " VALUES (?, 1, '', ?, '', 0, 0, ?, 'Li', '1', ?, ?, 'http://x', ?, ?, ?)",
        [report, impression, user, STAMP, f"REC{consultation_id}", b"\0", b"\0", b"%PDF-record"],
    )


def _seed_patients(db, ids: dict[str, int]) -> dict[str, Any]:
    """Wang at township A (T-7) and the county hospital (C-9001), linked by his resident ID;
    a CT head at A (signed, A recognised for it) and a chest film at the county (signed)."""
    a_ct = _file(db, ids["a"], "T-7", "A-CT", "CT", "HEAD")
    c_cr = _file(db, ids["c"], "C-9001", "C-CR", "CR", "CHEST")
    wang = Identifier(RESIDENT_ID, WANG)
    at_a = record_local_identity(
        db, LocalPatient(ids["a"], "T-7", "WANG^WEI", "19800214", "M"), [wang]
    )
    record_local_identity(db, LocalPatient(ids["c"], "C-9001", "王伟", "19800214", "M"), [wang])
    _sign(db, a_ct, "No intracranial bleed")
    _sign(db, c_cr, "Right lower lobe pneumonia")
    db.execute(
        "INSERT INTO recognition (facility_id, modality, body_part, status, since)"
        " VALUES (?, 'CT', 'HEAD', 'listed', ?)",
        [ids["a"], STAMP],
    )
    c_identity = patients.identity(db, ids["c"], "C-9001")["id"]
    return {"identity": at_a.identity_id, "c_identity": c_identity, "a_ct": a_ct, "c_cr": c_cr}


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("patient-record")
    settings = suite_settings(directory, None)
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    try:
        service = Service(client, client.app, None)
        ids = {
            "a": await service.add_facility("Township A", "township", "TOWN_A"),
            "b": await service.add_facility("Township B", "township", "TOWN_B"),
            "c": await service.add_facility("County Hospital", "county", "COUNTY"),
            "r": await service.add_facility("Regional Centre", "regional", "CENTRE"),
        }
        for username, (role, place) in USERS.items():
            await service.add_user(username, role, ids[place])
        seeded = await service.database.write(_seed_patients, ids)
        yield {"service": service, **ids, **seeded}
    finally:
        await client.close()


async def _get(world, user: str, path: str, **kwargs: Any):
    service = world["service"]
    return await service.client.get(path, headers=await service.login(user), **kwargs)


async def _audit_rows(world, action: str) -> list[dict[str, Any]]:
    def read(db: sqlite_utils.Database) -> list[dict[str, Any]]:
        return [
            dict(r) | {"detail": json.loads(r["detail"])}
            for r in db.query("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action])
        ]

    return await world["service"].database.read(read)


async def test_a_doctor_of_another_facility_without_a_consultation_is_refused(world):
    """Township B has no consultation for Wang: 403 with a JSON reason, page and API alike."""
    for path in (f"/api/patients/{world['identity']}", f"/patients/{world['identity']}"):
        response = await _get(world, "clin_b", path)
        assert response.status == 403, path
        assert (await response.json())["error"] == "no_care_relationship"


async def test_radiographers_read_no_record(world):
    response = await _get(world, "radio_a", f"/api/patients/{world['identity']}")
    assert response.status == 403


async def test_own_facilitys_part_at_once_the_rest_after_a_stated_reason(world):
    """The township's clinician sees the township's CT at once; the county's film and identity
    only once a reason is stated, which ?beyond=true and the PDF route require."""
    service, identity = world["service"], world["identity"]
    headers = await service.login("clin_a")
    url = f"/api/patients/{identity}"
    first = await (await service.client.get(url, headers=headers)).json()
    assert first["complete"] is False
    assert [c["consultation_id"] for c in first["consultations"]] == [world["a_ct"]]
    assert first["hidden_consultations"] == 1 and first["hidden_facilities"] == 1
    assert [i["patient_id"] for i in first["identities"]] == ["T-7"]
    assert first["consultations"][0]["recognition"] == "listed"
    assert first["consultations"][0]["impression"] == "No intracranial bleed"
    beyond = await service.client.get(url, headers=headers, params={"beyond": "true"})
    assert beyond.status == 400 and (await beyond.json())["error"] == "reason_required"
    county_pdf = f"{url}/reports/{world['c_cr']}/pdf"
    assert (await service.client.get(county_pdf, headers=headers)).status == 404
    reasons = f"{url}/reasons"
    for body in ({"category": "treatment", "text": "  "}, {"text": "seeing him now"}, {}):
        refused = await service.client.post(reasons, headers=headers, json=body)
        assert refused.status == 400, body
    stated = await service.client.post(
        reasons, headers=headers, json={"category": "treatment", "text": "Cough, seeing him now"}
    )
    assert stated.status == 201, await stated.text()
    whole = await (await service.client.get(url, headers=headers)).json()
    assert whole["complete"] is True and whole["hidden_consultations"] == 0
    assert {c["consultation_id"] for c in whole["consultations"]} == {world["a_ct"], world["c_cr"]}
    assert {i["patient_id"] for i in whole["identities"]} == {"T-7", "C-9001"}
    pdf = await service.client.get(county_pdf, headers=headers)
    assert pdf.status == 200 and await pdf.read() == b"%PDF-record"
    other_session = await service.login("clin_a")
    again = await (await service.client.get(url, headers=other_session)).json()
    assert again["complete"] is False  # the reason covers the session that stated it


async def test_the_county_requester_has_a_care_relationship_through_its_own_identity(world):
    response = await _get(world, "req_c", f"/api/patients/{world['c_identity']}")
    body = await response.json()
    assert response.status == 200 and body["complete"] is False
    assert [c["consultation_id"] for c in body["consultations"]] == [world["c_cr"]]


async def test_the_centres_specialist_sees_the_whole_record_at_once(world):
    """The centre reads every facility's consultations: nothing lies beyond its scope."""
    response = await _get(world, "spec_r", f"/api/patients/{world['identity']}")
    body = await response.json()
    assert body["complete"] is True and len(body["consultations"]) == 2


async def test_identifiers_show_masked_and_never_in_full(world):
    service, identity = world["service"], world["identity"]
    headers = await service.login("spec_r")
    api = await (await service.client.get(f"/api/patients/{identity}", headers=headers)).text()
    page = await (await service.client.get(f"/patients/{identity}", headers=headers)).text()
    for text in (api, page):
        assert WANG not in text and mask(WANG) in text
    trail = await service.database.read(
        lambda db: [r[0] for r in db.execute("SELECT detail FROM audit_log")]
    )
    assert not any(WANG in detail for detail in trail)


async def test_every_view_query_and_print_is_audited_with_the_reason_and_each_identity(world):
    service, identity = world["service"], world["identity"]
    headers = await service.login("clin_a")
    reason = {"category": "comparison", "text": "Compare with the county film"}
    await service.client.post(f"/api/patients/{identity}/reasons", headers=headers, json=reason)
    for path in (
        f"/api/patients/{identity}",
        f"/patients/{identity}",
        f"/patients/{identity}/print",
    ):
        assert (await service.client.get(path, headers=headers)).status == 200, path
    both = [
        {"facility_id": world["a"], "patient_id": "T-7"},
        {"facility_id": world["c"], "patient_id": "C-9001"},
    ]
    for action in ("patient_record.query", "patient_record.view", "patient_record.print",
                   "patient_record.reason"):  # fmt: skip
        last = (await _audit_rows(world, action))[-1]
        assert last["username"] == "clin_a", action
        assert sorted(last["detail"]["identities"], key=str) == sorted(both, key=str), action
        assert last["detail"]["reason"] == reason, action
    indexed = await service.database.read(
        lambda db: {
            r[0]
            for r in db.execute(
                "SELECT p.patient_id FROM audit_patients p JOIN audit_log a ON a.id = p.audit_id"
                " WHERE a.action = 'patient_record.print'"
            )
        }
    )
    assert indexed == {"T-7", "C-9001"}  # in each identity's trail


async def test_a_manager_exports_the_access_log_as_csv_with_reasons(world):
    service, identity = world["service"], world["identity"]
    doctor = await service.login("clin_a")
    reason = {"category": "referral", "text": "Referred up for the cough"}
    await service.client.post(f"/api/patients/{identity}/reasons", headers=doctor, json=reason)
    await service.client.get(f"/api/patients/{identity}", headers=doctor)
    refused = await _get(world, "clin_b", f"/api/patients/{identity}")
    assert refused.status == 403
    for manager, patient in (
        ("man_r", identity),
        ("man_a", identity),
        ("man_r", world["c_identity"]),
    ):
        response = await _get(world, manager, f"/api/patients/{patient}/access-log",
                              params={"format": "csv"})  # fmt: skip
        assert response.status == 200, (manager, patient)
        assert response.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert "at_local (Asia/Shanghai)" in rows[0]
        ours = [r for r in rows if r["username"] == "clin_a" and r["reason"] == reason["text"]]
        assert {r["action"] for r in ours} >= {"patient_record.reason", "patient_record.query"}
        assert all(r["reason_category"] == "referral" for r in ours)
        assert any(r["username"] == "clin_b" and r["outcome"] == "denied" for r in rows)
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", r["at_local (Asia/Shanghai)"]) for r in rows
        )
    as_json = await (await _get(world, "man_r", f"/api/patients/{identity}/access-log")).json()
    assert as_json["timezone"] == "Asia/Shanghai" and as_json["items"]
    page = await (await _get(world, "man_r", f"/patients/{identity}")).text()
    assert 'id="access-log"' in page and "Referred up for the cough" in page
    for user in ("man_b", "clin_a"):
        response = await _get(world, user, f"/api/patients/{identity}/access-log")
        assert response.status == 403, user


async def test_the_consultation_page_leads_to_its_patients_record(world):
    response = await _get(
        world, "clin_a", f"/consultations/{world['a_ct']}/patient", allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/patients/{world['identity']}"
    hidden = await _get(
        world, "clin_b", f"/consultations/{world['a_ct']}/patient", allow_redirects=False
    )
    assert hidden.status == 404


@pytest.mark.sqlite_file  # SQLite's query plans (bench/patients.py)
def test_the_link_lookup_and_the_repeat_check_use_indexes(migrated_database):
    """The bench's two queries (bench/patients.py) search indexes, never scan a big table."""
    db = sqlite_utils.Database(sqlite3.connect(f"file:{migrated_database}?mode=ro", uri=True))
    link = db.execute(
        "EXPLAIN QUERY PLAN SELECT DISTINCT i.id, i.person_id FROM patient_identifiers x"
        " JOIN patient_identities i ON i.id = x.identity_id WHERE x.system = ? AND x.value = ?"
        " AND x.disputed = '' AND x.identity_id != ?",
        ["resident_id", WANG, 1],
    ).fetchall()
    sql = (
        f"WITH {patients.LINKED_IDENTITIES} SELECT c.id FROM linked l JOIN consultations c"
        " ON c.facility_id = l.facility_id AND c.patient_id = l.patient_id"
        " WHERE c.modality = ? AND c.body_part = ?"
    )
    repeat = db.execute(
        f"EXPLAIN QUERY PLAN {sql}", [*patients.linked_parameters(1, "T-7"), "CT", "HEAD"]
    ).fetchall()
    for plan in (link, repeat):
        details = " | ".join(str(row[3]) for row in plan)
        for table in ("patient_identifiers", "patient_identities", "consultations"):
            assert f"SCAN {table}" not in details, details


async def test_in_a_browser_the_doctor_states_a_reason_and_sees_the_whole_record(world, browser):
    """Axe finds no serious or critical violation on the record page (English and Chinese); the
    reason form, filled in, brings the county's film and identity onto the page."""
    service, identity = world["service"], world["identity"]
    base = str(service.client.make_url("/")).rstrip("/")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        await log_in(page, base, "clin_a", f"/patients/{identity}")
        assert await page.locator("#record-studies tbody tr").count() == 1
        await expect(page.locator("#record-hidden")).to_be_visible()
        for language in ("zh_CN", "en"):
            await page.goto(f"{base}/patients/{identity}?lang={language}")
            serious = [v for v in await axe_violations(page) if v["impact"] in FORBIDDEN]
            assert serious == [], (language, serious)
        await page.select_option("#record-reason-category", "emergency")
        await page.fill("#record-reason-text", "Fell this morning")
        await page.click("#record-reason-form button[type=submit]")
        await expect(page.locator("#record-reason")).to_contain_text("Fell this morning")
        await expect(page.locator("#record-studies tbody tr")).to_have_count(2)
        await expect(page.locator("#record-identities")).to_contain_text("C-9001")
        await expect(page.locator("#record-identities")).to_contain_text(mask(WANG))
    finally:
        await context.close()
