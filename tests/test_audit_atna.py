"""Audit records as DICOM audit messages (PS3.15 A.5, IHE ATNA).

Unit tests build messages from stored-row shapes, one for every action the service records; the
integration test exports real records of the real app (logins, a worklist query, consultation
views, an upload into the real Orthanc) through ``GET /api/audit/atna``. Every message is
validated against the standard's own schema (tests/data/dicom-audit-message.rnc, PS3.15
A.5.1.1, with lxml: tests/atna_schema.py), with Chinese names and usernames.
"""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest

from service.audit.atna import (
    ACTIONS,
    AuditSource,
    Names,
    audit_message,
    event_kind,
    to_xml,
)
from service.audit.labels import action_labels
from service.auth.passwords import hash_password
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.storage import users as user_store

from .atna_schema import assert_schema_valid
from .conftest import PASSWORD, Service

SOURCE = AuditSource("teleread@test.example", "Consortium")


# --------------------------------------------------------------------------- helpers


def row(**values: Any) -> dict[str, Any]:
    """A stored audit_log row with defaults."""
    base = {
        "id": 1,
        "at": "2026-11-23T08:00:00.123456Z",
        "user_id": 7,
        "username": "dr.li",
        "role": "specialist",
        "facility_id": 3,
        "action": "consultation.view",
        "resource_type": "consultation",
        "resource_id": "12",
        "patient_id": "P-001",
        "study_instance_uid": "1.2.3.4",
        "client_ip": "10.1.2.3",
        "outcome": "success",
        "detail": "{}",
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    return base | values


def message(values: dict[str, Any], names: Names | None = None) -> ET.Element:
    """Build, serialise, validate against the A.5.1 schema and parse back: what a collector
    would receive."""
    xml = to_xml(audit_message(values, SOURCE, names))
    assert_schema_valid(xml)
    return ET.fromstring(xml)


def event_id(msg: ET.Element) -> str:
    return msg.find("EventIdentification/EventID").get("csd-code")


def type_codes(msg: ET.Element) -> set[str]:
    return {e.get("csd-code") for e in msg.findall("EventIdentification/EventTypeCode")}


def requestor(msg: ET.Element) -> ET.Element:
    return next(p for p in msg.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true")


def objects(msg: ET.Element, type_code: str, role: str) -> list[ET.Element]:
    return [
        o
        for o in msg.findall("ParticipantObjectIdentification")
        if o.get("ParticipantObjectTypeCode") == type_code
        and o.get("ParticipantObjectTypeCodeRole") == role
    ]


def patients(msg: ET.Element) -> dict[str, str | None]:
    """Patient objects: id -> name (type 1 Person, role 1 Patient, id type 2 Patient Number)."""
    found = {}
    for obj in objects(msg, "1", "1"):
        id_type = obj.find("ParticipantObjectIDTypeCode")
        assert (id_type.get("csd-code"), id_type.get("codeSystemName")) == ("2", "RFC-3881")
        found[obj.get("ParticipantObjectID")] = obj.findtext("ParticipantObjectName")
    return found


def studies(msg: ET.Element) -> list[str]:
    """Study objects (type 2 System Object, role 3 Report, id type 110180 Study Instance UID)."""
    found = []
    for obj in objects(msg, "2", "3"):
        id_type = obj.find("ParticipantObjectIDTypeCode")
        assert (id_type.get("csd-code"), id_type.get("codeSystemName")) == ("110180", "DCM")
        found.append(obj.get("ParticipantObjectID"))
    return found


# --------------------------------------------------------------------------- unit


class TestEventKind:
    @pytest.mark.parametrize(
        ("action", "event", "code", "event_type"),
        [
            ("auth.login", "110114", "E", ("110122", "Login")),
            ("auth.logout", "110114", "E", ("110123", "Logout")),
            ("worklist.query", "110112", "E", None),
            ("consultation.view", "110110", "R", None),
            ("consultation.request", "110109", "C", None),
            ("study.upload", "110107", "C", None),
            ("study.stow", "110107", "C", None),
            ("quarantine.view", "110103", "R", None),
            ("audit.search", "110101", "R", None),
            ("audit.export", "110106", "R", None),
        ],
    )
    def test_each_teleread_action_has_its_message(self, action, event, code, event_type):
        """The actions the service records map to the A.5.3 messages they are."""
        kind = event_kind(action)
        assert (kind.event_id[0], kind.action_code, kind.event_type) == (event, code, event_type)

    @pytest.mark.parametrize(
        ("action", "resource", "has_patient", "event", "code"),
        [
            ("report.print", "report", True, "110106", "R"),
            ("study.download", "study", True, "110106", "R"),
            ("series.open", "series", True, "110103", "R"),
            ("report.sign", "report", True, "110103", "U"),
            ("consultation.claim", "consultation", True, "110110", "U"),
            ("user.disable", "user", False, "110113", "E"),
            ("something.else", "", False, "110100", "E"),
        ],
    )
    def test_unknown_actions_read_sensibly_by_verb_and_resource(
        self, action, resource, has_patient, event, code
    ):
        """Future actions need no table entry to become a reasonable message."""
        assert action not in ACTIONS
        kind = event_kind(action, resource, has_patient)
        assert (kind.event_id[0], kind.action_code) == (event, code)


class TestAuditMessage:
    def test_a_view_names_requestor_source_patient_study_and_facility(self):
        """Every part of A.5.1 is there, with the stored values."""
        msg = message(row(), Names({7: "李明"}, {3: "中心医院"}, {"P-001": "张伟"}))
        event = msg.find("EventIdentification")
        assert event.get("EventDateTime") == "2026-11-23T08:00:00.123456Z"
        assert event_id(msg) == "110110" and event.get("EventActionCode") == "R"
        user = requestor(msg)
        assert (user.get("UserID"), user.get("UserName")) == ("dr.li", "李明")
        assert user.get("NetworkAccessPointID") == "10.1.2.3"
        assert user.get("NetworkAccessPointTypeCode") == "2"
        assert {r.get("csd-code") for r in user.findall("RoleIDCode")} == {"specialist"}
        source = msg.find("AuditSourceIdentification")
        assert source.get("AuditSourceID") == "teleread@test.example"
        assert source.get("AuditEnterpriseSiteID") == "Consortium"
        assert patients(msg) == {"P-001": "张伟"}
        assert studies(msg) == ["1.2.3.4"]
        (facility,) = objects(msg, "3", "2")
        assert facility.get("ParticipantObjectID") == "3"
        assert facility.findtext("ParticipantObjectName") == "中心医院"

    @pytest.mark.parametrize(("outcome", "indicator"), [("success", "0"), ("denied", "4")])
    def test_outcomes_map_to_the_outcome_indicator(self, outcome, indicator):
        """success 0, denied 4 (minor failure), failed 8 (serious failure)."""
        msg = message(row(outcome=outcome, detail=json.dumps({"status": 404})))
        assert msg.find("EventIdentification").get("EventOutcomeIndicator") == indicator

    def test_a_failure_is_8_and_described(self):
        """A failed call says what failed in EventOutcomeDescription."""
        msg = message(row(outcome="failed", detail=json.dumps({"status": 503})))
        event = msg.find("EventIdentification")
        assert event.get("EventOutcomeIndicator") == "8"
        assert event.findtext("EventOutcomeDescription") == "failed (HTTP 503)"

    def test_an_upload_of_two_patients_names_both_and_their_studies(self):
        """Uploads join patients and studies with commas; each becomes its own object."""
        msg = message(
            row(
                action="study.upload",
                resource_type="study",
                resource_id="",
                patient_id="P1,P2",
                study_instance_uid="1.2.1,1.2.2",
            )
        )
        assert event_id(msg) == "110107"
        assert set(patients(msg)) == {"P1", "P2"}
        assert studies(msg) == ["1.2.1", "1.2.2"]
        assert requestor(msg).find("RoleIDCode").get("csd-code") == "110153"

    def test_a_failed_login_identifies_the_name_that_was_tried(self):
        """No user is logged in: UserID is the attempted username."""
        msg = message(
            row(
                action="auth.login",
                resource_type="user",
                resource_id="",
                user_id=None,
                username="",
                role="",
                facility_id=None,
                patient_id="",
                study_instance_uid="",
                outcome="denied",
                detail=json.dumps({"username": "王医生", "status": 401}),
            )
        )
        assert event_id(msg) == "110114" and type_codes(msg) >= {"110122"}
        assert requestor(msg).get("UserID") == "王医生"
        assert msg.find("EventIdentification").get("EventOutcomeIndicator") == "4"

    def test_hostile_text_is_escaped_and_each_message_is_one_line(self):
        """Markup, quotes, line breaks and control characters cannot break the XML."""
        nasty = '</AuditMessage><x a="1">&\n\x01\ud800'
        xml = to_xml(
            audit_message(
                row(username=nasty, detail=json.dumps({"patients": [nasty]})), SOURCE, Names()
            )
        )
        assert "\n" not in xml
        assert_schema_valid(xml)
        msg = ET.fromstring(xml)
        assert requestor(msg).get("UserID").startswith('</AuditMessage><x a="1">&\n')
        assert "\x01" not in requestor(msg).get("UserID")


#: Every action some route records (each has a label) and every one mapped to a message.
EVERY_ACTION = sorted(set(action_labels(str)) | set(ACTIONS))


class TestEveryAction:
    @pytest.mark.parametrize("action", EVERY_ACTION)
    def test_every_action_makes_a_valid_message_for_a_patient(self, action):
        """With a patient and a study, known names or not: valid, every object named."""
        resource = action.split(".")[0]
        for names in (Names(), Names({7: "李明"}, {3: "中心医院"}, {"P-001": "张伟"})):
            msg = message(row(action=action, resource_type=resource), names)
            assert all(
                o.find("ParticipantObjectName") is not None
                or o.find("ParticipantObjectQuery") is not None
                for o in msg.findall("ParticipantObjectIdentification")
            )

    @pytest.mark.parametrize("action", EVERY_ACTION)
    def test_every_action_makes_a_valid_message_when_refused_anonymously(self, action):
        """No user, no facility, no patient, a refusal: still valid."""
        message(
            row(
                action=action,
                resource_type="",
                user_id=None,
                username="",
                role="",
                facility_id=None,
                patient_id="",
                study_instance_uid="",
                client_ip="",
                outcome="denied",
                detail=json.dumps({"status": 403, "filters": {"q": "x"}}),
            )
        )


# --------------------------------------------------------------------------- integration


@pytest.fixture
async def activity(service: Service) -> dict[str, Any]:
    """Real records with Chinese names: logins, a request, an upload, a query, two views."""
    clinic = await service.add_facility("东乡卫生院", "township", "DONGXIANG")
    centre = await service.add_facility("区域影像中心", "regional", "CENTRE")
    await service.database.write(
        user_store.add_user,
        username="王医生",
        password_hash=hash_password(PASSWORD),
        role="radiographer",
        facility_id=clinic,
        display_name="王建国",
    )
    await service.add_user("李专家", "specialist", centre)
    await service.add_user("boss", "manager", centre)
    service.client.session.cookie_jar.clear()
    await service.client.post("/api/login", json={"username": "王医生", "password": "wrong"})
    radiographer = await service.login("王医生")
    filed = await service.client.post(
        "/api/consultations",
        headers=radiographer,
        json={"accession_number": "ACC1", "patient_id": "P-001", "patient_name": "张伟"},
    )
    assert filed.status == 201
    study = make_study(StudySpec("P-UP", "李^娜", "CR", "CHEST"))
    form = aiohttp.FormData()
    form.add_field(
        "files",
        io.BytesIO(dataset_bytes(study[0])),
        filename="a.dcm",
        content_type="application/dicom",
    )
    uploaded = await service.client.post("/api/studies", headers=radiographer, data=form)
    assert uploaded.status == 200, await uploaded.text()
    specialist = await service.login("李专家")
    uid = study[0].StudyInstanceUID

    async def ingested():
        items = (await service.worklist(specialist))["items"]
        return next((i for i in items if i["study_instance_uid"] == uid), None)

    item = await service.wait_for(ingested)
    for consultation_id in (item["id"], (await filed.json())["id"]):
        response = await service.client.get(
            f"/api/consultations/{consultation_id}", headers=specialist
        )
        assert response.status == 200
    return {"uid": uid}


async def test_the_atna_export_of_real_records_is_valid_and_keeps_chinese_names(service, activity):
    """Every exported message has the A.5.1 structure; logins, the query, the views and the
    upload carry the right codes, and Chinese usernames and patient names round-trip."""
    response = await service.client.get("/api/audit/atna", headers=await service.login("boss"))
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    document = exported(await response.read())
    by_action: dict[str, list[ET.Element]] = {}
    for msg in document:
        (local,) = [
            e.get("csd-code")
            for e in msg.findall("EventIdentification/EventTypeCode")
            if e.get("codeSystemName") == "99TELEREAD"
        ]
        by_action.setdefault(local, []).append(msg)

    failed, *logins = by_action["auth.login"]
    assert failed.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert requestor(failed).get("UserID") == "王医生"
    assert all(type_codes(m) >= {"110122"} and event_id(m) == "110114" for m in logins)
    assert "王医生" in {requestor(m).get("UserID") for m in logins}

    query = by_action["worklist.query"][-1]
    assert event_id(query) == "110112"
    (query_object,) = objects(query, "2", "24")
    assert json.loads(base64.b64decode(query_object.findtext("ParticipantObjectQuery"))) == {}
    assert patients(query)["P-001"] == "张伟"

    views = by_action["consultation.view"]
    assert {event_id(m) for m in views} == {"110110"}
    assert patients(views[0]) == {"P-UP": "李^娜"}
    assert studies(views[0]) == [activity["uid"]]
    assert patients(views[1]) == {"P-001": "张伟"}
    assert requestor(views[1]).get("UserID") == "李专家"

    (upload,) = by_action["study.upload"]
    assert event_id(upload) == "110107"
    assert upload.find("EventIdentification").get("EventActionCode") == "C"
    assert requestor(upload).get("UserName") == "王建国"
    assert studies(upload) == [activity["uid"]]
    assert "P-UP" in patients(upload)
    (facility,) = objects(upload, "3", "2")
    assert facility.findtext("ParticipantObjectName") == "东乡卫生院"


async def test_the_atna_export_is_itself_recorded(service, activity):
    """Exporting is an audit.export record, which the next export shows as an Export."""
    headers = await service.login("boss")
    first = await service.client.get(
        "/api/audit/atna", headers=headers, params={"action": "auth.login"}
    )
    await first.read()
    await service.wait_for(lambda: exports_recorded(service))  # written once the body is sent
    response = await service.client.get(
        "/api/audit/atna", headers=headers, params={"action": "audit.export"}
    )
    (msg,) = exported(await response.read())
    assert event_id(msg) == "110106"
    assert requestor(msg).get("UserID") == "boss"
    (log,) = objects(msg, "2", "13")
    assert log.findtext("ParticipantObjectName") == "Security Audit Log"


async def exports_recorded(service: Service) -> int:
    def count(db):
        return db.execute(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'audit.export'"
        ).fetchone()[0]

    return await service.database.read(count)


def exported(body: bytes) -> list[ET.Element]:
    """The ATNA export: one whole ``AuditMessage`` document per line, each valid, no wrapper."""
    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with LF
    for line in lines[:-1]:
        assert_schema_valid(line)
    return [ET.fromstring(line) for line in lines[:-1]]
