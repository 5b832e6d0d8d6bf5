"""National identifiers captured at every border (issue 21): DICOM through the real Orthanc,
HL7 v2 through python-hl7's MLLP client, FHIR ServiceRequest and the request API, each linking
the patient's local identities across facilities; names alone only propose a likely match.

The world (one app and one real Orthanc for the module): a county hospital (AE COUNTY_CT, HL7
code COUNTY-HIS), a township clinic (AE TOWN_DR) and the regional centre, a clinician at the
county and a requester at the township. Each test uses its own patients.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydicom.dataset import Dataset

from service.cli.patients import backfill
from service.demo.synthetic import StudySpec, make_study
from service.settings import Settings
from service.storage import facilities as facility_store
from service.storage.opening import open_database

from .conftest import Service, free_port
from .module_app import running_service
from .test_hl7_orders import ack_code, send

SERIAL = itertools.count(1)
RESIDENT_OID = "2.16.156.10011.1.3"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def resident_id(birth_date: str, sex: str, region: str = "110105") -> str:
    """A valid GB 11643 number for that birth date (YYYYMMDD) and sex, new on each call."""
    serial = f"{next(SERIAL) % 100:02d}{1 if sex == 'M' else 2}"
    body = f"{region}{birth_date}{serial}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def wrong_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


@dataclass
class World:
    service: Service
    settings: Settings
    hl7_port: int
    county: int
    township: int
    clinician: dict[str, str]
    requester: dict[str, str]

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        def read(db):
            return [dict(r) for r in db.execute(sql, list(params))]

        return await self.service.database.read(read)

    async def identity(self, facility_id: int, patient_id: str) -> dict[str, Any]:
        [row] = await self.rows(
            "SELECT * FROM patient_identities WHERE facility_id = ? AND patient_id = ?",
            facility_id,
            patient_id,
        )
        return row

    async def identifiers(self, identity_id: int) -> list[tuple[str, str, str]]:
        rows = await self.rows(
            "SELECT system, value, source FROM patient_identifiers WHERE identity_id = ?"
            " ORDER BY system",
            identity_id,
        )
        return [(r["system"], r["value"], r["source"]) for r in rows]

    async def request(self, headers: dict[str, str], **fields: Any):
        body = {"accession_number": f"ACC-{next(SERIAL)}", "clinical_question": "?"} | fields
        return await self.service.client.post("/api/consultations", json=body, headers=headers)


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    port = free_port()
    directory = tmp_path_factory.mktemp("identity")
    async with running_service(directory, hl7_port=port) as (service, conf):
        county = await service.database.write(
            facility_store.add_facility, name="County Hospital", kind="county",
            aet="COUNTY_CT", timezone="Asia/Shanghai", hl7_code="COUNTY-HIS",
        )  # fmt: skip
        township = await service.add_facility("Township Clinic", "township", "TOWN_DR")
        await service.add_user("li", "clinician", county)
        await service.add_user("wu", "requester", township)
        yield World(
            service,
            conf,
            port,
            county,
            township,
            await service.login("li"),
            await service.login("wu"),
        )


def _study(patient_id: str, name: str, born: str, sex: str) -> list[Dataset]:
    spec = StudySpec(
        patient_id, name, "CR", "CHEST", instances=1, patient_birth_date=born, patient_sex=sex,
        accession_number=f"DCM-{next(SERIAL)}",
    )  # fmt: skip
    return make_study(spec)


async def _stored(world: World, datasets: list[Dataset], aet: str) -> None:
    await world.service.c_store(datasets, calling_aet=aet)
    uid = datasets[0].StudyInstanceUID

    async def filed():
        return await world.rows("SELECT id FROM consultations WHERE study_instance_uid = ?", uid)

    await world.service.wait_for(filed)


async def test_dicom_other_patient_ids_link_two_facilities_studies(world: World):
    """The county's CT carries the resident identity number in the Other Patient IDs Sequence
    (issuer named by its OID in the qualifiers sequence), the township's X-ray in Other Patient
    IDs (0010,1000) under another local ID: after both C-STOREs the two local identities are
    one person, the number recorded once per identity, tagged dicom; a local ID of another
    facility in the sequence is not taken for a national number."""
    number = resident_id("19491231", "F")
    county = _study("CY-100", "Liu^Fang", "19491231", "F")
    item = Dataset()
    item.PatientID = number
    item.TypeOfPatientID = "TEXT"
    qualifier = Dataset()
    qualifier.UniversalEntityID = RESIDENT_OID
    qualifier.UniversalEntityIDType = "ISO"
    item.IssuerOfPatientIDQualifiersSequence = [qualifier]
    local = Dataset()
    local.PatientID = "OTHER-77"
    local.IssuerOfPatientID = "SOME-HOSPITAL"
    for ds in county:
        ds.OtherPatientIDsSequence = [local, item]
    township = _study("TW-9", "刘芳", "19491231", "F")
    for ds in township:
        ds.add_new(0x00101000, "LO", ["T-55", number])
    await _stored(world, county, "COUNTY_CT")
    await _stored(world, township, "TOWN_DR")

    at_county = await world.identity(world.county, "CY-100")
    at_township = await world.identity(world.township, "TW-9")
    assert at_county["person_id"] == at_township["person_id"]
    assert await world.identifiers(at_county["id"]) == [("resident_id", number, "dicom")]
    assert await world.identifiers(at_township["id"]) == [("resident_id", number, "dicom")]
    [change] = await world.rows(
        "SELECT * FROM patient_link_changes WHERE identity_id = ?", at_township["id"]
    )
    assert (change["action"], change["method"]) == ("link", "identifier")


async def test_hl7_pid3_national_number_links_with_the_clinics_request(world: World):
    """An ORM whose PID-3 repeats the county's MR number and the resident identity number typed
    NNCHN links the county's patient with the township's, whose request form gave the number;
    a PI repetition with a wrong check character is ignored, the order still accepted."""
    number = resident_id("19610305", "M")
    answer = await world.request(
        world.requester, patient_id="TW-31", patient_name="张^伟", patient_birth_date="19610305",
        patient_sex="M", patient_identity_number=number,
    )  # fmt: skip
    assert answer.status == 201, await answer.text()
    message = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203091500+0800||ORM^O01^ORM_O01|ID-1|P"
        "|2.5|||||CHN|UNICODE UTF-8\r"
        f"PID|1||CY-31^^^COUNTY^MR~{number}^^^^NNCHN~{wrong_check(number)}^^^^PI"
        "||张^伟^^^^^L^I~Zhang^Wei^^^^^L^A||19610305|M\r"
        "ORC|NW|PO-31\r"
        "OBR|1|PO-31||CT-HEAD^CT head^L|||||||||Fall|||||CY-ACC-31||||||CT\r"
    )
    ack = await send(world.hl7_port, message)
    assert ack_code(ack) == "AA", str(ack)
    at_county = await world.identity(world.county, "CY-31")
    at_township = await world.identity(world.township, "TW-31")
    assert at_county["person_id"] == at_township["person_id"]
    assert await world.identifiers(at_county["id"]) == [("resident_id", number, "hl7")]
    assert await world.identifiers(at_township["id"]) == [("resident_id", number, "web")]


async def test_fhir_patient_identifier_of_the_national_system_is_recorded(world: World):
    """A ServiceRequest's contained Patient with identifiers of the HIS and of the resident
    identity number system (urn:oid:2.16.156.10011.1.3): the HIS's one is the Patient ID, the
    national one recorded (source fhir) and not taken for the Patient ID."""
    number = resident_id("19700304", "M")
    order = {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p",
                "identifier": [
                    {"system": f"urn:oid:{RESIDENT_OID}", "value": number},
                    {"system": "urn:his:mrn", "value": "FHIR-77"},
                ],
                "name": [{"family": "王", "given": ["小明"]}],
                "birthDate": "1970-03-04",
                "gender": "male",
            }
        ],
        "identifier": [{"value": "HIS-ORD-1"}],
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": DCM, "code": "CT"}]},
        "subject": {"reference": "#p"},
        "supportingInfo": [],
    }  # fmt: skip
    order["identifier"].append(
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
                ]
            },
            "value": "FHIR-ACC-77",
        }
    )
    headers = world.clinician | {"Content-Type": "application/fhir+json"}
    response = await world.service.client.post("/fhir/ServiceRequest", json=order, headers=headers)
    assert response.status == 201, await response.text()
    identity = await world.identity(world.county, "FHIR-77")
    assert await world.identifiers(identity["id"]) == [("resident_id", number, "fhir")]


async def test_a_request_with_a_wrong_check_character_is_refused_and_nothing_filed(world: World):
    """The API answers 400 with the check's reason, never echoing the number, and files
    nothing; a health card number of the wrong shape likewise."""
    number = wrong_check(resident_id("19800101", "F"))
    before = await world.rows("SELECT COUNT(*) AS n FROM consultations")
    answer = await world.request(
        world.requester, patient_id="TW-BAD", patient_identity_number=number
    )
    assert answer.status == 400
    body = await answer.json()
    assert "check character" in body["detail"] and number not in await answer.text()
    card = await world.request(
        world.requester, patient_id="TW-BAD", patient_health_card_number="12"
    )
    assert card.status == 400 and "health card" in (await card.json())["detail"]
    assert await world.rows("SELECT COUNT(*) AS n FROM consultations") == before
    assert await world.rows("SELECT * FROM patient_identities WHERE patient_id = 'TW-BAD'") == []


async def test_a_name_birth_date_and_sex_match_is_a_candidate_never_a_link(world: World):
    """Same Han name, birth date and sex at two facilities without a number: a pending likely
    match (ideographic), the two identities stay two persons."""
    for headers, patient_id in ((world.requester, "TW-40"), (world.clinician, "CY-40")):
        answer = await world.request(
            headers, patient_id=patient_id, patient_name="欧阳^娜", patient_birth_date="19550607",
            patient_sex="F",
        )  # fmt: skip
        assert answer.status == 201, await answer.text()
    one = await world.identity(world.township, "TW-40")
    two = await world.identity(world.county, "CY-40")
    assert one["person_id"] != two["person_id"]
    [candidate] = await world.rows(
        "SELECT * FROM patient_link_candidates WHERE identity_id = ? AND other_identity_id = ?",
        min(one["id"], two["id"]),
        max(one["id"], two["id"]),
    )
    assert candidate["status"] == "pending"
    assert candidate["reasons"] == '["birth_date", "sex", "ideographic_name"]'


async def test_pinyin_matches_the_han_name_as_a_candidate(world: World):
    """The township types the name in pinyin, the county's HIS in Han characters: a phonetic
    likely match; a different birth date proposes nothing."""
    await world.request(
        world.requester, patient_id="TW-50", patient_name="Guoqiang Chen",
        patient_birth_date="19590920", patient_sex="M",
    )  # fmt: skip
    await world.request(
        world.clinician, patient_id="CY-50", patient_name="陈^国强",
        patient_birth_date="19590920", patient_sex="M",
    )  # fmt: skip
    await world.request(
        world.clinician, patient_id="CY-51", patient_name="陈^国强",
        patient_birth_date="19590921", patient_sex="M",
    )  # fmt: skip
    one = await world.identity(world.township, "TW-50")
    rows = await world.rows(
        "SELECT * FROM patient_link_candidates WHERE identity_id = ? OR other_identity_id = ?",
        one["id"],
        one["id"],
    )
    two = await world.identity(world.county, "CY-50")
    assert [(r["identity_id"], r["other_identity_id"]) for r in rows] == [(one["id"], two["id"])]
    assert rows[0]["reasons"] == '["birth_date", "sex", "phonetic_name"]'


async def test_backfill_reads_the_numbers_of_studies_already_in_orthanc(world: World):
    """A study whose identifiers were never read (as before teleread read them: its rows are
    removed here) gets them from ``teleread patients backfill`` (its function, on a database
    connection of its own), which reads Orthanc once."""
    number = resident_id("19520229", "M")
    datasets = _study("CY-OLD", "Gao^Shan", "19520229", "M")
    for ds in datasets:
        ds.add_new(0x00101000, "LO", number)
    await _stored(world, datasets, "COUNTY_CT")
    identity = await world.identity(world.county, "CY-OLD")

    def forget(db):
        db.execute("DELETE FROM patient_identifiers WHERE identity_id = ?", [identity["id"]])

    await world.service.database.write(forget)
    database = open_database(world.settings)  # the command's own, as a shell's
    try:
        counts = await backfill(world.settings, database)
    finally:
        database.close()
    assert counts["with_identifiers"] >= 1 and counts["studies"] >= counts["with_identifiers"]
    assert await world.identifiers(identity["id"]) == [("resident_id", number, "dicom")]


async def test_an_hl7_patient_update_records_pid3_numbers_and_proposes_matches(world: World):
    """ADT^A08 that changes none of the county patient's demographics: the resident identity
    number in PID-3 (authority named by its OID) is still recorded (source hl7) on the patient's
    identity, links it with the township's patient of that number and resolves their match."""
    number = resident_id("19440808", "F")
    for headers, patient_id, extra in (
        (world.requester, "TW-60", {"patient_identity_number": number}),
        (world.clinician, "CY-60", {}),
    ):
        answer = await world.request(
            headers, patient_id=patient_id, patient_name="林^黛玉",
            patient_birth_date="19440808", patient_sex="F", **extra,
        )  # fmt: skip
        assert answer.status == 201, await answer.text()
    update = (
        "MSH|^~\\&|HIS|COUNTY-HIS|TELEREAD|REGIONAL|20261203094000+0800||ADT^A08^ADT_A01|A08-60"
        "|P|2.5|||||CHN|UNICODE UTF-8\r"
        "EVN|A08|20261203094000+0800\r"
        f"PID|1||CY-60^^^COUNTY^MR~{number}^^^&{RESIDENT_OID}&ISO^NN||林^黛玉||19440808|F\r"
    )
    ack = await send(world.hl7_port, update)
    assert ack_code(ack) == "AA", str(ack)
    county = await world.identity(world.county, "CY-60")
    assert await world.identifiers(county["id"]) == [("resident_id", number, "hl7")]
    township = await world.identity(world.township, "TW-60")
    assert county["person_id"] == township["person_id"]
    [candidate] = await world.rows(
        "SELECT status FROM patient_link_candidates"
        " WHERE identity_id = ? AND other_identity_id = ?",
        min(county["id"], township["id"]),
        max(county["id"], township["id"]),
    )
    assert candidate["status"] == "linked"  # proposed by name first, then linked by the number
