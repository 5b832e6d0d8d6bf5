"""Signed reports end to end against the real service and a real Orthanc: drafting, signing with
the re-entered password, versions, the archive copy, acknowledgements and critical findings."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.clock import utc_now
from service.demo.synthetic import StudySpec, make_study
from service.http.keys import ORTHANC
from service.intake.modalities import register_facility
from service.reports.acknowledgement import escalate_unacknowledged_critical
from service.reports.files import read_report_file
from service.runtime.orthanc.client import OrthancClient
from service.settings import Settings
from service.storage import facilities as facility_store
from tests import backends
from tests.conftest import PASSWORD, Service, free_port, start_orthanc
from tests.module_app import running_service
from tests.test_report_dicom_conformance import dciodvfy

STUDY = StudySpec(
    "P-REPORT",
    "王^小明",
    "CT",
    "HEAD",
    instances=2,
    accession_number="ACC-R1",
    patient_sex="M",
    patient_birth_date="19580301",
    study_description="CT HEAD",
)


FAST_DELIVERY = {"delivery_retry_seconds": 0.2, "delivery_max_attempts": 2}


@pytest.fixture
def settings(settings):
    """Deliveries retry fast here (the default waits 30 s)."""
    return dataclasses.replace(settings, **FAST_DELIVERY)


@pytest.fixture
async def reading(service):
    """Clinic A sent a head CT; the centre's specialist Li has claimed it."""
    return await seed_reading(service)


@dataclasses.dataclass
class SignedWorld:
    """One app whose consultation Li has signed (quality acceptable, referral advised)."""

    service: Service
    reading: dict[str, Any]
    settings: Settings
    answer: dict[str, Any]
    """The answer to the signing: version and verification code."""


@pytest.fixture(scope="module")
async def signed_world(tmp_path_factory) -> AsyncIterator[SignedWorld]:
    """The world of ``reading`` with its report signed, built once for the tests that only read
    a signed report (each built and signed its own before: ~2.5 s each)."""
    directory = tmp_path_factory.mktemp("signed_report")
    async with running_service(directory, **FAST_DELIVERY) as (service, s):
        reading = await seed_reading(service)
        answer = await signed_report(service, reading, quality="acceptable", refer=True)
        yield SignedWorld(service, reading, s, answer)


async def seed_reading(service) -> dict[str, Any]:
    """Clinic A sent a head CT; the centre's specialist Li has claimed it."""
    ids = {
        "a": await service.add_facility("青山镇卫生院", "township", "CLINIC_A"),
        "b": await service.add_facility("Clinic B", "township", "CLINIC_B"),
        "centre": await service.add_facility("县域影像中心", "regional", "CENTRE"),
    }
    ids["li"] = await service.add_user("dr_li", "specialist", ids["centre"])
    await service.add_user("dr_wu", "specialist", ids["centre"])
    await service.add_user("manager", "manager", ids["centre"])
    ids["doc_a"] = await service.add_user("doc_a", "clinician", ids["a"])
    await service.add_user("rad_a", "radiographer", ids["a"])
    await service.add_user("doc_b", "clinician", ids["b"])
    await service.c_store(make_study(STUDY), "CLINIC_A")
    li = await service.login("dr_li")

    async def arrived():
        items = (await service.worklist(li))["items"]
        return items[0]["id"] if items else None

    ids["cid"] = await service.wait_for(arrived)
    claimed = await service.client.post(f"/api/consultations/{ids['cid']}/claim", headers=li)
    assert claimed.status == 200, await claimed.text()
    return ids


def report_url(cid: int, tail: str = "") -> str:
    return f"/api/consultations/{cid}/report{tail}"


async def write(service, headers, cid, **fields):
    return await service.client.put(report_url(cid, "/draft"), headers=headers, json=fields)


async def sign(service, headers, cid, password=PASSWORD):
    return await service.client.post(
        report_url(cid, "/sign"), headers=headers, json={"password": password}
    )


async def signed_report(service, reading, **fields):
    li = await service.login("dr_li")
    draft = {"findings": "脑实质未见异常密度影。", "impression": "未见颅内出血。"} | fields
    assert (await write(service, li, reading["cid"], **draft)).status == 200
    response = await sign(service, li, reading["cid"])
    assert response.status == 201, await response.text()
    return await response.json()


async def test_the_claim_holder_drafts_and_signs_with_the_password(service, reading):
    """Autosave keeps the draft; a wrong password signs nothing; the right one adds version 1."""
    li = await service.login("dr_li")
    saved = await write(service, li, reading["cid"], findings="Normal.", quality="good")
    assert saved.status == 200, await saved.text()
    body = await saved.json()
    assert body["state"] == "draft" and body["draft"]["findings"] == "Normal."
    wrong = await sign(service, li, reading["cid"], password="not-my-password")
    assert wrong.status == 403 and (await wrong.json())["error"] == "wrong_password"
    assert (await (await service.client.get(report_url(reading["cid"]), headers=li)).json())[
        "versions"
    ] == []
    signed = await sign(service, li, reading["cid"])
    assert signed.status == 201, await signed.text()
    answer = await signed.json()
    assert answer["version"] == 1 and len(answer["verification_code"]) == 23
    report = await (await service.client.get(report_url(reading["cid"]), headers=li)).json()
    assert report["state"] == "signed"
    assert [v["version"] for v in report["versions"]] == [1]
    assert report["versions"][0]["signer_name"] == "dr_li"


async def test_signing_takes_the_item_off_the_reading_worklist(service, reading):
    """Signed items leave the default (open) worklist; asking for status=signed finds them."""
    await signed_report(service, reading)
    li = await service.login("dr_li")
    assert (await service.worklist(li))["items"] == []
    listed = await service.worklist(li, status="signed")
    assert [i["id"] for i in listed["items"]] == [reading["cid"]]
    claim = await service.client.post(f"/api/consultations/{reading['cid']}/claim", headers=li)
    assert claim.status == 409 and (await claim.json())["error"] == "finished"


async def test_only_the_claim_holder_writes_the_first_version(service, reading):
    """Another specialist cannot write over the claim; a clinic user cannot write at all."""
    wu = await service.login("dr_wu")
    refused = await write(service, wu, reading["cid"], findings="mine now")
    assert refused.status == 409 and (await refused.json())["error"] == "not_claim_holder"
    doc = await service.login("doc_a")
    assert (await write(service, doc, reading["cid"], findings="x")).status == 403


async def test_a_poor_quality_rating_needs_a_reason(service, reading):
    li = await service.login("dr_li")
    response = await write(service, li, reading["cid"], quality="poor")
    assert response.status == 400
    assert "reason" in (await response.json())["detail"]


async def test_null_draft_fields_clear_them(service, reading):
    """Every field the schema lets be null may be sent as null: texts become empty, flags false,
    the rating and the template unset (the texts once hit NOT NULL and answered 500)."""
    li = await service.login("dr_li")
    full = {"findings": "F.", "impression": "I.", "recommendation": "R.", "critical": True,
            "refer": True, "quality": "poor", "quality_reason": "motion"}  # fmt: skip
    assert (await write(service, li, reading["cid"], **full)).status == 200
    cleared = await write(service, li, reading["cid"], **dict.fromkeys([*full, "template_id"]))
    assert cleared.status == 200, await cleared.text()
    draft = (await cleared.json())["draft"]
    assert {k: draft[k] for k in (*full, "template_id")} == {
        "findings": "", "impression": "", "recommendation": "", "critical": 0, "refer": 0,
        "quality": None, "quality_reason": "", "template_id": None,
    }  # fmt: skip
    for field in ("findings", "impression", "recommendation", "quality_reason"):
        one = await write(service, li, reading["cid"], **{field: None})
        assert one.status == 200, (field, await one.text())


async def test_signed_events_carry_what_turnaround_needs(signed_world):
    """The timeline gets signed (with flags and quality) and the portal delivery."""
    service, reading = signed_world.service, signed_world.reading
    li = await service.login("dr_li")
    detail = await (
        await service.client.get(f"/api/consultations/{reading['cid']}", headers=li)
    ).json()
    events = {e["type"]: e for e in detail["events"]}
    assert events["signed"]["detail"]["quality"] == "acceptable"
    assert events["signed"]["detail"]["refer"] is True
    assert events["delivered"]["detail"]["channel"] == "portal"
    assert events["signed"]["actor"] == "dr_li" and events["delivered"]["actor"] is None


async def test_the_report_is_stored_into_the_study_in_orthanc(signed_world, tmp_path):
    """The Encapsulated PDF and the SR land in the same study; the SR carries the signed form;
    dciodvfy finds nothing to say about either as Orthanc stored them."""
    service = signed_world.service
    orthanc = service.app[ORTHANC]

    async def stored():
        events = await service.database.read(
            lambda db: db.execute(
                "SELECT detail FROM consultation_events WHERE type = 'report_stored'"
            ).fetchall()
        )
        return events

    await service.wait_for(stored, timeout=20)
    studies = await orthanc.get("/studies")
    assert len(studies) == 1
    instances = await orthanc.study_instances(studies[0])
    modalities = set()
    stored = {}
    for instance in instances:
        tags = await orthanc.instance_tags(instance["ID"])
        modalities.add(tags.get("Modality"))
        if tags.get("Modality") in ("SR", "DOC"):
            stored[tags["Modality"]] = await orthanc.get(f"/instances/{instance['ID']}/file")
    assert {"CT", "DOC", "SR"} <= modalities
    for modality, data in stored.items():
        assert dciodvfy(data, tmp_path / f"{modality}.dcm") == [], modality
    sr_bytes = stored["SR"]
    found = read_report_file(sr_bytes)
    assert found.canonical is not None and found.signature is not None
    verified = await service.client.post("/api/verify", data=sr_bytes)
    assert verified.status == 200, await verified.text()
    assert (await verified.json())["valid"] is True


async def test_the_originating_clinic_opens_and_acknowledges(service, reading):
    """Portal lists it; opening is an event; acknowledging closes the consultation."""
    await signed_report(service, reading)
    doc = await service.login("doc_a")
    portal = await (await service.client.get("/api/portal/reports", headers=doc)).json()
    assert [i["consultation_id"] for i in portal["items"]] == [reading["cid"]]
    pdf = await service.client.get(portal["items"][0]["pdf"], headers=doc)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert (await pdf.read()).startswith(b"%PDF")
    ack = await service.client.post(report_url(reading["cid"], "/acknowledgement"), headers=doc)
    assert ack.status == 200, await ack.text()
    assert (await ack.json())["acknowledged_version"] == 1
    li = await service.login("dr_li")
    assert (await service.worklist(li, status="closed"))["items"][0]["id"] == reading["cid"]
    detail = await (
        await service.client.get(f"/api/consultations/{reading['cid']}", headers=li)
    ).json()
    assert {"opened", "acknowledged"} <= {e["type"] for e in detail["events"]}


async def test_another_clinic_sees_nothing(signed_world):
    service, reading = signed_world.service, signed_world.reading
    other = await service.login("doc_b")
    portal = await (await service.client.get("/api/portal/reports", headers=other)).json()
    assert portal["items"] == []
    for url in (report_url(reading["cid"]), report_url(reading["cid"], "/versions/1/pdf")):
        assert (await service.client.get(url, headers=other)).status == 404


async def test_a_correction_is_a_new_version_that_supersedes(service, reading):
    """Version 1 stays; version 2 references it; the clinic must acknowledge again."""
    first = await signed_report(service, reading)
    doc = await service.login("doc_a")
    await service.client.post(report_url(reading["cid"], "/acknowledgement"), headers=doc)
    wu = await service.login("dr_wu")
    opened = await service.client.post(report_url(reading["cid"], "/correction"), headers=wu)
    assert opened.status == 200, await opened.text()
    li = await service.login("dr_li")
    assert (await write(service, li, reading["cid"], impression="x")).status == 409
    assert (
        await write(service, wu, reading["cid"], impression="左侧基底节区小出血灶。")
    ).status == 200
    second = await sign(service, wu, reading["cid"])
    assert second.status == 201, await second.text()
    answer = await second.json()
    assert answer["version"] == 2 and answer["verification_code"] != first["verification_code"]
    report = await (await service.client.get(report_url(reading["cid"]), headers=doc)).json()
    assert [(v["version"], v["supersedes_version"]) for v in report["versions"]] == [
        (1, None),
        (2, 1),
    ]
    assert report["versions"][0]["impression"] == "未见颅内出血。"
    assert report["acknowledged_version"] is None
    portal = await (await service.client.get("/api/portal/reports", headers=doc)).json()
    assert portal["items"][0]["corrected"] is True
    for version in (1, 2):
        pdf = await service.client.get(
            report_url(reading["cid"], f"/versions/{version}/pdf"), headers=doc
        )
        assert pdf.status == 200
    public = await (await service.client.get(f"/api/verify/{first['verification_code']}")).json()
    assert public["superseded"] is True and public["latest_version"] == 2


async def test_a_critical_finding_tells_the_clinic_and_needs_a_clinician(service, reading):
    """The clinic's clinicians are notified; a radiographer cannot acknowledge; a clinician can."""
    await signed_report(service, reading, critical=True)
    doc = await service.login("doc_a")
    notes = await (await service.client.get("/api/notifications", headers=doc)).json()
    assert any(n["kind"] == "critical_finding" for n in notes["items"])
    rad = await service.login("rad_a")
    refused = await service.client.post(
        report_url(reading["cid"], "/critical-acknowledgement"), headers=rad
    )
    assert refused.status == 403
    ok = await service.client.post(
        report_url(reading["cid"], "/critical-acknowledgement"), headers=doc
    )
    assert ok.status == 200 and (await ok.json())["critical_acknowledged_at"]
    later = utc_now() + timedelta(hours=1)
    assert await service.database.write(escalate_unacknowledged_critical, later, 15) == []


async def test_an_unacknowledged_critical_finding_escalates_once(service, reading):
    await signed_report(service, reading, critical=True)
    await service.add_user("duty_manager", "manager", reading["centre"])
    later = utc_now() + timedelta(minutes=16)
    notices = await service.database.write(escalate_unacknowledged_critical, later, 15)
    assert [n.consultation_id for n in notices] == [reading["cid"]]
    assert notices[0].user_ids
    again = await service.database.write(escalate_unacknowledged_critical, later, 15)
    assert again == []
    soon = await service.database.write(
        escalate_unacknowledged_critical, utc_now() + timedelta(minutes=5), 15
    )
    assert soon == []


async def test_the_public_verification_shows_initials_only(signed_world):
    service, signed = signed_world.service, signed_world.answer
    response = await service.client.get(f"/api/verify/{signed['verification_code']}")
    assert response.status == 200
    text = await response.text()
    body = await response.json()
    assert body["valid"] is True and body["patient_initials"] == "王**"
    assert "小明" not in text and "P-REPORT" not in text
    assert (await service.client.get("/api/verify/AAAAA-BBBBB-CCCCC-DDDDD")).status == 404
    page = await service.client.get(f"/verify/{signed['verification_code']}")
    assert page.status == 200


async def test_revoking_the_signers_certificate_shows_in_verification(service, reading):
    signed = await signed_report(service, reading)
    li = await service.login("dr_li")
    identities = await (await service.client.get("/api/signing/identities", headers=li)).json()
    serial = identities["items"][0]["serial"]
    manager = await service.login("manager")
    revoked = await service.client.post(
        f"/api/certificates/{serial}/revoke",
        headers=manager,
        json={"reason": "key compromise"},
    )
    assert revoked.status == 200, await revoked.text()
    body = await (await service.client.get(f"/api/verify/{signed['verification_code']}")).json()
    assert body["revoked"] is True and body["valid"] is False
    assert any("revoked" in reason for reason in body["reasons"])


async def test_a_changed_pdf_fails_verification(signed_world):
    service, reading = signed_world.service, signed_world.reading
    signed = signed_world.answer
    doc = await service.login("doc_a")
    pdf = await (
        await service.client.get(report_url(reading["cid"], "/versions/1/pdf"), headers=doc)
    ).read()
    good = await (await service.client.post("/api/verify", data=pdf)).json()
    assert good["valid"] is True, good
    position = pdf.index(b"/Contents") // 2  # inside the signed range, before the signature
    tampered = pdf[:position] + bytes([pdf[position] ^ 0x01]) + pdf[position + 1 :]
    bad = await (await service.client.post("/api/verify", data=tampered)).json()
    assert bad["valid"] is False and bad["reasons"]
    assert signed["verification_code"]


async def test_teleread_verify_checks_a_file_offline(signed_world, tmp_path):
    """The CLI says VALID (exit 0) for the PDF as delivered, signed when in the clinic's zone,
    INVALID (1) with one byte changed."""
    service, reading = signed_world.service, signed_world.reading
    settings = signed_world.settings
    doc = await service.login("doc_a")
    pdf = await (
        await service.client.get(report_url(reading["cid"], "/versions/1/pdf"), headers=doc)
    ).read()
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(pdf)
    position = pdf.index(b"/Contents") // 2
    bad.write_bytes(pdf[:position] + bytes([pdf[position] ^ 0x01]) + pdf[position + 1 :])
    env = backends.cli_environment(settings)
    ok = await asyncio.to_thread(run_cli, env, "verify", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("VALID") and "dr_li" in ok.stdout
    assert re.search(r"signed by dr_li at [\d-]+ [\d:]+ \(Asia/Shanghai, UTC\+08:00\)", ok.stdout)
    broken = await asyncio.to_thread(run_cli, env, "verify", str(bad))
    assert broken.returncode == 1 and broken.stdout.startswith("INVALID")


def run_cli(env, *args) -> subprocess.CompletedProcess:
    teleread = str(Path(sys.executable).with_name("teleread"))
    return subprocess.run([teleread, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_a_password_change_keeps_the_signing_key(service, reading):
    """The key is relocked with the new password: the next signature uses the same certificate."""
    await signed_report(service, reading)
    li = await service.login("dr_li")
    changed = await service.client.post(
        "/api/me/password",
        headers=li,
        json={"current_password": PASSWORD, "new_password": "a-brand-new-passphrase"},
    )
    assert changed.status == 200, await changed.text()
    assert (
        await service.client.post(report_url(reading["cid"], "/correction"), headers=li)
    ).status == 200
    assert (await write(service, li, reading["cid"], impression="更正。")).status == 200
    signed = await sign(service, li, reading["cid"], password="a-brand-new-passphrase")
    assert signed.status == 201, await signed.text()
    identities = await (await service.client.get("/api/signing/identities", headers=li)).json()
    assert len(identities["items"]) == 1 and identities["items"][0]["revoked_at"] is None


async def test_an_administrators_reset_revokes_the_unrecoverable_key(service, reading):
    """After a reset the old key cannot be opened: its certificate is revoked, a new one issued."""
    await signed_report(service, reading)
    admin_id = await service.add_user("root", "admin", reading["centre"])
    assert admin_id
    admin = await service.login("root")
    reset = await service.client.post(
        f"/api/admin/users/{reading['li']}/password",
        headers=admin,
        json={"password": "reset-by-the-admin-1"},
    )
    assert reset.status == 200, await reset.text()
    li = await service.client.post(
        "/api/login", json={"username": "dr_li", "password": "reset-by-the-admin-1"}
    )
    headers = {"Authorization": f"Bearer {(await li.json())['token']}"}
    rows = await (await service.client.get("/api/signing/identities", headers=headers)).json()
    assert rows["items"][0]["revoked_at"] is not None
    await service.client.post(report_url(reading["cid"], "/correction"), headers=headers)
    await write(service, headers, reading["cid"], impression="再次确认。")
    signed = await sign(service, headers, reading["cid"], password="reset-by-the-admin-1")
    assert signed.status == 201, await signed.text()
    rows = await (await service.client.get("/api/signing/identities", headers=headers)).json()
    assert [r["revoked_at"] is None for r in rows["items"]] == [False, True]


@pytest.fixture
async def clinic_node(tmp_path):
    """Clinic A's own PACS: a second real Orthanc that receives the report by C-STORE."""
    process = await start_orthanc(tmp_path / "clinic-orthanc", "CLINIC_A")
    credentials = process.config.credentials
    client = OrthancClient(process.url, credentials.username, credentials.password)
    yield process, client
    await client.close()
    await process.kill()


async def test_the_report_reaches_the_clinics_dicom_node(service, reading, clinic_node):
    """With a DICOM node on the facility, the PDF and SR arrive there; delivery is an event."""
    process, clinic = clinic_node

    def point_at_node(db):
        facility_store.update_facility(
            db, reading["a"], dicom_host="127.0.0.1", dicom_port=process.config.dicom_port
        )
        return facility_store.get_facility(db, reading["a"])

    facility = await service.database.write(point_at_node)
    await register_facility(service.app[ORTHANC], facility)
    await signed_report(service, reading)

    async def delivered():
        return await clinic.get("/instances")

    instances = await service.wait_for(delivered, timeout=30)
    modalities = set()
    for instance in await service.wait_for(lambda: _all_arrived(clinic), timeout=30):
        modalities.add((await clinic.instance_tags(instance))["Modality"])
    assert modalities == {"DOC", "SR"}, instances
    li = await service.login("dr_li")
    report = await (await service.client.get(report_url(reading["cid"]), headers=li)).json()
    channels = {d["channel"]: d for d in report["deliveries"]}
    assert channels["dicom"]["status"] == "done" and channels["orthanc"]["status"] == "done"
    events = await (
        await service.client.get(f"/api/consultations/{reading['cid']}", headers=li)
    ).json()
    delivered_by = [e["detail"]["channel"] for e in events["events"] if e["type"] == "delivered"]
    assert delivered_by == ["portal", "dicom"]


async def _all_arrived(clinic):
    instances = await clinic.get("/instances")
    return instances if len(instances) == 2 else None


async def test_an_unreachable_clinic_node_is_retried_then_reported(service, reading):
    """Every attempt is logged; after the last one the delivery fails and managers hear of it."""

    def point_nowhere(db):
        facility_store.update_facility(
            db, reading["a"], dicom_host="127.0.0.1", dicom_port=free_port()
        )
        return facility_store.get_facility(db, reading["a"])

    facility = await service.database.write(point_nowhere)
    await register_facility(service.app[ORTHANC], facility)
    await signed_report(service, reading)
    li = await service.login("dr_li")

    async def failed():
        report = await (await service.client.get(report_url(reading["cid"]), headers=li)).json()
        dicom = [d for d in report["deliveries"] if d["channel"] == "dicom"]
        return dicom and dicom[0]["status"] == "failed" and dicom[0]

    delivery = await service.wait_for(failed, timeout=60)
    assert delivery["attempts"] == 2 and len(delivery["attempt_log"]) == 2
    assert not any(a["ok"] for a in delivery["attempt_log"])
    manager = await service.login("manager")
    notes = await (await service.client.get("/api/notifications", headers=manager)).json()
    assert any(n["kind"] == "delivery_failed" for n in notes["items"])


async def test_templates_are_data_managers_edit(service, reading):
    """Shipped templates fit by modality and body part; managers add; specialists only read."""
    li = await service.login("dr_li")
    listed = await service.client.get(
        "/api/report-templates", headers=li, params={"modality": "ct", "body_part": "head"}
    )
    assert listed.status == 200, await listed.text()
    items = (await listed.json())["items"]
    assert items[0]["modality"] == "CT" and items[0]["body_part"] == "HEAD"
    assert all(i["modality"] in ("CT", "") for i in items)
    body = {
        "name": "MR brain",
        "modality": "mr",
        "body_part": "brain",
        "findings": "No abnormal signal.",
        "macros": [{"label": "DWI", "field": "findings", "text": "No restricted diffusion."}],
    }
    assert (await service.client.post("/api/report-templates", headers=li, json=body)).status == 403
    manager = await service.login("manager")
    created = await service.client.post("/api/report-templates", headers=manager, json=body)
    assert created.status == 201, await created.text()
    assert (await created.json())["modality"] == "MR"
    again = await service.client.post("/api/report-templates", headers=manager, json=body)
    assert again.status == 409
    bad = await service.client.post(
        "/api/report-templates", headers=manager, json=body | {"macros": [{"field": "x"}]}
    )
    assert bad.status == 400


async def test_the_portal_list_indexes_the_patients_it_listed(signed_world):
    """``report.list`` writes a per-patient index row for each patient it showed, so the
    search by patient finds the clinician who saw the report in the portal list."""
    service, reading = signed_world.service, signed_world.reading
    doc = await service.login("doc_a")
    portal = await (await service.client.get("/api/portal/reports", headers=doc)).json()
    assert len(portal["items"]) == 1

    def indexed(db):
        (patient,) = db.execute(
            "SELECT patient_id FROM consultations WHERE id = ?", [reading["cid"]]
        ).fetchone()
        rows = db.execute(
            "SELECT p.patient_id FROM audit_patients p JOIN audit_log a ON a.id = p.audit_id"
            " WHERE a.action = 'report.list' AND a.username = 'doc_a'"
        ).fetchall()
        return patient, [r[0] for r in rows]

    patient, rows = await service.database.read(indexed)
    assert patient and rows == [patient]
