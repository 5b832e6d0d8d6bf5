"""Before a repeat scan (issue 21 item 3): the window per exam item from the worklist TOML, the
alert at every entry (the JSON API before anything is filed, an HL7 order's ACK, a FHIR
ServiceRequest's OperationOutcome, an arriving study), proceed with a reason or withdraw (both
recorded), and the dashboard's repeat figures.

The world (one app for the module, no Orthanc: the arriving study is given to the ingest's
domain function as the change follower would): a township clinic where Li Na had a head CT
three days ago (signed, the clinic recognised for CT head) and a chest X-ray 40 days ago; the
county hospital where she is patient C-9001, linked to the township's T-7 by her resident
identity number; a second township where another woman also has the ID C-9001 and a head CT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.clock import utc_now
from service.dashboard.repeats import months_back, rate
from service.http.keys import SLA
from service.intake.intake import InstanceOrigin, ReceivedStudy
from service.intake.repeat_check import receive_checked_study
from service.storage import facilities as facility_store
from worklists.repeat_exams import RepeatWindows, parse_repeat_exams
from worklists.rules import RulesError, parse_rules

from .conftest import Service, free_port, suite_settings
from .repeat_world import link, prior_exam, recognise, rules_file
from .test_hl7_orders import ORM, send

# --- the window per exam item (pure) -------------------------------------------------------


def test_windows_per_item_come_from_the_repeat_exams_table():
    """Dotted keys (modality.body part) and a default; 0 turns an item off under it."""
    rules = parse_rules(
        "[repeat_exams]\ndefault_days = 3\nCT.HEAD = 7\n[repeat_exams.CR]\nchest = 30\nUS = 0\n"
    )
    windows = rules.repeat_exams
    assert windows.days("CT", "HEAD") == 7 and windows.days("cr", "Chest") == 30
    assert windows.days("MR", "KNEE") == 3 and windows.days("CR", "US") == 0
    assert windows.days("CT", "") == 0  # no body part: nothing to compare
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert windows.since("CT", "HEAD", now) == now - timedelta(days=7)
    assert parse_rules("").repeat_exams == RepeatWindows()  # no table: no alert
    assert RepeatWindows().since("CT", "HEAD", now) is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("CT.HEAD = -1", "[repeat_exams] CT.HEAD: days must be"),
        ('CT.HEAD = "7"', "[repeat_exams] CT.HEAD: days must be"),
        ("default_days = 1.5", "[repeat_exams] default_days: days must be"),
        ("CT = 7", "[repeat_exams] CT: give a body part"),
        ('"C-T".HEAD = 7', "[repeat_exams] C-T: modality 'C-T' is not a DICOM code"),
    ],
)
def test_a_bad_window_is_refused_with_the_key_named(text, named):
    with pytest.raises(RulesError, match="^rules " + named.replace("[", r"\[").replace("]", r"\]")):
        parse_rules(f"[repeat_exams]\n{text}\n")
    with pytest.raises(ValueError):
        parse_repeat_exams("not a table")


def test_the_dashboard_counts_whole_months_in_the_callers_zone():
    """Twelve months back from 2027-01-01 00:30 in Shanghai (still December in UTC) start on
    2026-02-01 in Shanghai; the rate is repeats per request filed, in percent."""
    shanghai = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    assert months_back(now, shanghai) == datetime(2026, 2, 1, tzinfo=shanghai)
    assert months_back(now, UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert (rate(1, 3), rate(0, 5), rate(2, 0)) == (33.3, 0.0, None)


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    service: Service
    port: int
    county: int
    township: int
    other: int
    prior_ct: int

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        def read(db):
            return [dict(r) for r in db.execute(sql, list(params))]

        return await self.service.database.read(read)

    async def alerts(self) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM repeat_alerts ORDER BY id")


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("repeats")
    port = free_port()
    settings = replace(
        suite_settings(directory, None), hl7_port=port, worklist_rules=rules_file(directory)
    )
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    try:
        service = Service(client, client.app, None)
        db = service.database
        county = await db.write(
            facility_store.add_facility, name="County People's Hospital", kind="county",
            aet="COUNTY_CT", timezone="Asia/Shanghai", hl7_code="COUNTY-HIS",
        )  # fmt: skip
        township = await service.add_facility("Dongxiang Township", "township", "DONGXIANG")
        other = await service.add_facility("Xixiang Township", "township", "XIXIANG")
        await service.add_user("zhao", "clinician", county)
        await service.add_user("wang", "manager", county)
        signer = await service.add_user("li", "specialist", township)
        now = utc_now()
        prior_ct = await db.write(
            prior_exam, township, "T-7", "CT.HEAD", now - timedelta(days=3), "DX-1",
            "No intracranial haemorrhage.", signer,
        )  # fmt: skip
        await db.write(prior_exam, township, "T-7", "CR.CHEST", now - timedelta(days=40), "DX-2")
        await db.write(prior_exam, other, "C-9001", "CT.HEAD", now - timedelta(days=1), "XX-1")
        await db.write(recognise, township, "CT.HEAD", now - timedelta(days=90))
        await db.write(link, township, "T-7")
        await db.write(link, county, "C-9001")
        yield World(service, port, county, township, other, prior_ct)
    finally:
        await client.close()


def body(accession: str, item: str = "CT.HEAD", patient_id: str = "C-9001", **extra: Any):
    modality, body_part = item.split(".")
    return {
        "accession_number": accession,
        "patient_id": patient_id,
        "modality": modality,
        "body_part": body_part,
        "clinical_question": "Headache",
    } | extra


# --- the JSON API: asked before anything is filed --------------------------------------------


async def test_the_api_stops_a_repeat_with_409_and_files_it_with_a_reason(world):
    """A county request for Li Na's head CT: 409 repeat_exam naming the township's exam (when
    in Shanghai time, its impression, recognised), nothing filed; sent again with a reason it
    is filed and the alert recorded proceeded with the reason, the user and the consultation."""
    client, headers = world.service.client, await world.service.login("zhao")
    response = await client.post("/api/consultations", json=body("CY-1"), headers=headers)
    assert response.status == 409, await response.text()
    answer = await response.json()
    assert answer["error"] == "repeat_exam" and answer["window_days"] == 7
    [match] = answer["matches"]  # the other township's C-9001 is another person: not named
    assert (match["facility_name"], match["consultation_id"]) == (
        "Dongxiang Township",
        world.prior_ct,
    )
    assert match["impression"] == "No intracranial haemorrhage." and match["recognised"] is True
    shanghai = datetime.fromisoformat(match["performed_at"].replace("Z", "+00:00")) + timedelta(
        hours=8
    )
    assert match["performed_at_local"] == shanghai.strftime("%Y-%m-%d %H:%M")
    assert await world.rows("SELECT id FROM consultations WHERE accession_number = 'CY-1'") == []
    [alert] = [a for a in await world.alerts() if a["id"] == answer["alert_id"]]
    assert (alert["decision"], alert["source"], alert["consultation_id"]) == (
        "pending",
        "web",
        None,
    )

    other = body("CY-1", "CR.CHEST", repeat_reason="Cough", repeat_alert_id=alert["id"])
    response = await client.post("/api/consultations", json=other, headers=headers)
    assert (response.status, (await response.json())["error"]) == (409, "alert_mismatch")
    again = body("CY-1", repeat_reason="Worse since, new weakness", repeat_alert_id=alert["id"])
    response = await client.post("/api/consultations", json=again, headers=headers)
    assert response.status == 201, await response.text()
    filed = (await response.json())["id"]
    [alert] = [a for a in await world.alerts() if a["id"] == answer["alert_id"]]
    assert (alert["decision"], alert["reason"], alert["consultation_id"]) == (
        "proceeded",
        "Worse since, new weakness",
        filed,
    )
    page = await client.get(f"/consultations/{filed}", headers=headers)
    assert "Worse since, new weakness" in await page.text()  # the centre sees why
    [audit] = await world.rows(
        "SELECT detail FROM audit_log WHERE action = 'consultation.request' AND outcome ="
        " 'success' AND resource_id = ?",
        str(filed),
    )
    assert '"repeat_decision": "proceeded"' in audit["detail"]


async def test_withdrawing_files_nothing_and_counts_an_avoided_repeat(world):
    """The requester withdraws at the alert: nothing filed, the alert withdrawn (once), audited,
    and the dashboard counts it avoided for the county's CT head."""
    client, headers = world.service.client, await world.service.login("zhao")
    response = await client.post("/api/consultations", json=body("CY-2"), headers=headers)
    alert_id = (await response.json())["alert_id"]
    answer = await client.post(f"/api/repeat-alerts/{alert_id}/withdraw", headers=headers)
    assert answer.status == 200 and (await answer.json())["decision"] == "withdrawn"
    again = await client.post(f"/api/repeat-alerts/{alert_id}/withdraw", headers=headers)
    assert again.status == 409
    assert await world.rows("SELECT id FROM consultations WHERE accession_number = 'CY-2'") == []
    [audit] = await world.rows(
        "SELECT * FROM audit_log WHERE action = 'repeat_alert.withdraw' AND outcome = 'success'"
    )
    assert (audit["resource_id"], audit["patient_id"]) == (str(alert_id), "C-9001")

    manager = await world.service.login("wang")
    page = await (await client.get("/dashboard", headers=manager)).text()
    row = page.split('data-exam="CT.HEAD"', 1)[1].split("</tr>", 1)[0]
    assert 'class="repeat-avoided">1<' in row


async def test_no_alert_outside_the_window_or_for_a_same_id_of_another_person(world):
    """The chest X-ray was 40 days ago (window 30): filed as before. An unlinked county patient
    whose ID is the other township's patient's: no alert either."""
    client, headers = world.service.client, await world.service.login("zhao")
    response = await client.post(
        "/api/consultations", json=body("CY-3", "CR.CHEST"), headers=headers
    )
    assert response.status == 201, await response.text()
    assert set(await response.json()) == {"id", "status", "created"}  # the answer as before
    await world.service.database.write(
        prior_exam, world.other, "Z-1", "CT.HEAD", utc_now() - timedelta(days=1), "XX-2"
    )
    response = await client.post(
        "/api/consultations", json=body("CY-4", patient_id="Z-1"), headers=headers
    )
    assert response.status == 201, await response.text()


# --- orders from hospital systems: filed, recorded, told -------------------------------------


async def test_an_hl7_order_repeating_an_exam_is_acked_with_a_warning(world):
    """ORM^O01 NW for C-9001's head CT (body part in OBR-15.4): AA, filed, the alert recorded,
    and the ACK carries an ERR with severity W and the alert's text (also in MSA-3)."""
    text = (
        ORM.format(id="REP-1")
        .replace("CY9001^^^COUNTY^MR", "C-9001^^^COUNTY^MR")
        .replace("CY-ACC-77", "CY-ACC-R1")
        .replace("PO-77", "PO-R1")
    )
    segments = text.split("\r")
    obr = segments[4].split("|")
    assert obr[0] == "OBR"
    obr[15] = "^^^HEAD"  # OBR-15.4: the specimen source's body site
    segments[4] = "|".join(obr)
    ack = await send(world.port, "\r".join(segments))
    assert str(ack.segment("MSA")(1)) == "AA"
    err = ack.segment("ERR")
    assert str(err(4)) == "W"
    warning = ack.unescape(str(err(8)))
    assert warning.startswith("Repeat exam: ")  # the county's own request filed above, and:
    assert "CT HEAD done at Dongxiang Township on " in warning
    assert "(recognised); impression: No intracranial haemorrhage." in warning
    assert ack.unescape(str(ack.segment("MSA")(3))) == warning
    [row] = await world.rows("SELECT id FROM consultations WHERE accession_number = 'CY-ACC-R1'")
    [alert] = [a for a in await world.alerts() if a["consultation_id"] == row["id"]]
    assert (alert["source"], alert["decision"]) == ("hl7", "recorded")


async def test_a_fhir_service_request_repeating_an_exam_answers_a_warning(world):
    """POST /fhir/ServiceRequest for C-9001's head CT: 201 with the Location of the filed order
    and an OperationOutcome whose issue is a warning (business-rule, repeat_exam)."""
    client, headers = world.service.client, await world.service.login("zhao")
    resource = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"identifier": {"value": "C-9001"}, "display": "LI^NA"},
        "identifier": [
            {
                "type": {"coding": [{"code": "ACSN"}]},
                "value": "CY-F1",
            }
        ],
        "code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                             "code": "CT"}]},
        "bodySite": [{"coding": [{"code": "HEAD"}]}],
    }  # fmt: skip
    response = await client.post(
        "/fhir/ServiceRequest",
        json=resource,
        headers=headers | {"Content-Type": "application/fhir+json"},
    )
    assert response.status == 201, await response.text()
    outcome = await response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    warning = outcome["issue"][0]
    assert (warning["severity"], warning["code"]) == ("warning", "business-rule")
    assert warning["details"]["coding"][0]["code"] == "repeat_exam"
    assert "Dongxiang Township" in warning["diagnostics"]
    filed = int(response.headers["Location"].rsplit("/", 1)[1])
    [alert] = [a for a in await world.alerts() if a["consultation_id"] == filed]
    assert (alert["source"], alert["decision"]) == ("fhir", "recorded")


# --- a study arriving --------------------------------------------------------------------------


async def test_a_study_arriving_records_the_repeat_once(world):
    """The county's CT sends a head CT of C-9001 with no request: the consultation it starts
    has a recorded alert (source ingest); the same study processed again adds none."""
    study = ReceivedStudy(
        orthanc_id="o-repeat",
        study_instance_uid="1.2.826.0.1.3680043.10.21.3",
        patient_id="C-9001",
        patient_name="LI^NA",
        accession_number="CY-I1",
        modalities=("CT",),
        body_part="HEAD",
        instances_count=1,
        origins=(InstanceOrigin("DicomProtocol", "COUNTY_CT", "10.0.0.7"),),
    )
    sla = world.service.app[SLA]
    outcome = await world.service.database.write(
        receive_checked_study, study, now=utc_now(), sla=sla
    )
    [consultation] = outcome.created
    [alert] = [a for a in await world.alerts() if a["consultation_id"] == consultation]
    assert (alert["source"], alert["decision"]) == ("ingest", "recorded")
    await world.service.database.write(receive_checked_study, study, now=utc_now(), sla=sla)
    assert len([a for a in await world.alerts() if a["consultation_id"] == consultation]) == 1
