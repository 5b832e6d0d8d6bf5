"""The report editor's prior reports: only the same patient's (same facility's Patient ID AND a
matching birth date or name), only what the caller may see, and every look audited."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from service.demo.synthetic import StudySpec, make_study
from service.dicom.patient_identity import PatientKey, same_patient
from service.storage import facilities as facility_store

from .conftest import PASSWORD

NAME = "张^三"
BORN = "19580312"
CURRENT = StudySpec(
    "P-CTX", NAME, "CT", "HEAD", instances=2, accession_number="ACC-NOW", patient_birth_date=BORN
)
PRIOR = StudySpec(
    "P-CTX", NAME, "CT", "HEAD", instances=1, accession_number="ACC-OLD", patient_birth_date=BORN
)
# Another person the same clinic gave the same short Patient ID.
NAMESAKE = StudySpec(
    "P-CTX", "王^五", "CR", "CHEST", accession_number="ACC-WANG", patient_birth_date="19900101"
)
# Same ID, name and birth date, but issued by another clinic: another numbering, never paired.
ELSEWHERE = StudySpec(
    "P-CTX", NAME, "CT", "HEAD", accession_number="ACC-B", patient_birth_date=BORN
)

HISTORY = "Fell from a ladder 2 h ago, brief loss of consciousness."
QUESTION = "Intracranial bleed? Skull fracture?"
PRIOR_IMPRESSION = "Old lacunar infarct, left basal ganglia."


@dataclass
class Seeded:
    current: int
    prior: int
    namesake: int
    elsewhere: int


class TestSamePatient:
    """service.dicom.patient_identity.same_patient: a Patient ID alone never pairs two records."""

    def test_id_and_birth_date_agree(self) -> None:
        """Same facility, ID and birth date (names written differently) are one patient."""
        assert same_patient(PatientKey(1, "7", BORN, "ZHANG^SAN"), PatientKey(1, "7", BORN, ""))

    def test_a_different_birth_date_is_another_patient(self) -> None:
        """The case issue 16 saw: same ID and name, other birth date, must not pair."""
        assert not same_patient(
            PatientKey(1, "7", BORN, NAME), PatientKey(1, "7", "19900101", NAME)
        )

    def test_a_different_name_is_another_patient(self) -> None:
        """Same ID and birth date but another name: not paired."""
        assert not same_patient(PatientKey(1, "7", BORN, NAME), PatientKey(1, "7", BORN, "王^五"))

    def test_the_id_alone_is_not_enough(self) -> None:
        """Nothing beyond the ID known on one side: not paired."""
        assert not same_patient(PatientKey(1, "7", BORN, NAME), PatientKey(1, "7", "", ""))

    def test_another_facility_is_another_numbering(self) -> None:
        """Everything equal except the facility that issued the ID: not paired."""
        assert not same_patient(PatientKey(1, "7", BORN, NAME), PatientKey(2, "7", BORN, NAME))

    def test_names_compare_without_case_spaces_or_carets(self) -> None:
        """ "Zhang^San" and "ZHANG SAN" with no birth dates are the same name."""
        assert same_patient(
            PatientKey(1, "7", "", "Zhang^San"), PatientKey(1, "7", "", "ZHANG SAN")
        )


async def arrive(service, spec: StudySpec, aet: str, headers: dict[str, str]) -> int:
    """C-STORE a study from ``aet``; the id of its consultation once it is on the worklist."""
    await service.c_store(make_study(spec), aet)

    async def listed():
        items = (await service.worklist(headers, limit="100"))["items"]
        found = [i for i in items if i["accession_number"] == spec.accession_number]
        return found[0]["id"] if found and found[0]["status"] != "awaiting_images" else None

    return await service.wait_for(listed, timeout=30)


async def sign(service, headers: dict[str, str], cid: int, impression: str) -> None:
    """Claim, draft and sign a report through the API, as the editor does."""
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=headers)
    assert claimed.status == 200, await claimed.text()
    draft = {"findings": "As below.", "impression": impression, "quality": "good"}
    saved = await service.client.put(
        f"/api/consultations/{cid}/report/draft", headers=headers, json=draft
    )
    assert saved.status == 200, await saved.text()
    signed = await service.client.post(
        f"/api/consultations/{cid}/report/sign", headers=headers, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()


async def seed(service, *, clinic_zone: str = "Asia/Urumqi") -> Seeded:
    """Clinic A (in ``clinic_zone``) asks an urgent question about a head CT; the same patient
    has a signed prior; a namesake at clinic A and a same-ID patient at clinic B have signed
    reports too. dr_li (centre) reads; doc_b (clinic B) may see only clinic B."""
    clinic_a = await service.add_facility("Qingshan Township Clinic", "township", "CLINIC_A")
    clinic_b = await service.add_facility("Clinic B", "township", "CLINIC_B")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    await service.database.write(facility_store.update_facility, clinic_a, timezone=clinic_zone)
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("doc_a", "clinician", clinic_a)
    await service.add_user("doc_b", "clinician", clinic_b)
    li = await service.login("dr_li")
    requested = await service.client.post(
        "/api/consultations",
        headers=await service.login("doc_a"),
        json={
            "accession_number": CURRENT.accession_number,
            "patient_id": CURRENT.patient_id,
            "modality": "CT",
            "priority": "urgent",
            "clinical_history": HISTORY,
            "clinical_question": QUESTION,
        },
    )
    assert requested.status == 201, await requested.text()
    # Sent side by side: each study waits out Orthanc's StableAge (1 s) before it is listed,
    # and the three waits overlap instead of adding up.
    prior, namesake, elsewhere = await asyncio.gather(
        arrive(service, PRIOR, "CLINIC_A", li),
        arrive(service, NAMESAKE, "CLINIC_A", li),
        arrive(service, ELSEWHERE, "CLINIC_B", li),
    )
    await sign(service, li, prior, PRIOR_IMPRESSION)
    await sign(service, li, namesake, "Right lower lobe pneumonia.")
    await sign(service, li, elsewhere, "Normal CT head (clinic B).")
    current = await arrive(service, CURRENT, "CLINIC_A", li)
    return Seeded(current, prior, namesake, elsewhere)


async def audit_rows(service, action: str) -> list[dict[str, Any]]:
    def query(db):
        sql = "SELECT * FROM audit_log WHERE action = ? ORDER BY id"
        return [dict(row) for row in db.execute(sql, [action]).fetchall()]

    return await service.database.read(query)


async def test_priors_are_the_same_patients_signed_reports_only_scoped_and_audited(service):
    """One seeded consortium (about 10 s to build), three questions:

    - another clinic gets 404 for a consultation it may not see; a reader's look is audited
      with the patient and the priors shown;
    - the prior of the same patient is listed with its impression and PDF; the namesake with
      another birth date and the same ID at another clinic are not;
    - seen from the namesake's consultation, the other patient's reports are not priors.
    """
    seeded = await seed(service)
    other = await service.client.get(
        f"/api/consultations/{seeded.current}/report/priors",
        headers=await service.login("doc_b"),
    )
    assert other.status == 404
    assert (await other.json())["error"]
    li = await service.login("dr_li")
    response = await service.client.get(
        f"/api/consultations/{seeded.current}/report/priors", headers=li
    )
    assert response.status == 200, await response.text()

    async def recorded():
        rows = await audit_rows(service, "report.priors")
        return [r for r in rows if r["outcome"] == "success"]

    rows = await service.wait_for(recorded)
    assert len(rows) == 1
    assert rows[0]["patient_id"] == "P-CTX"
    assert str(seeded.prior) in rows[0]["detail"]

    items = (await response.json())["items"]
    assert [i["consultation_id"] for i in items] == [seeded.prior]
    assert items[0]["impression"] == PRIOR_IMPRESSION
    assert items[0]["pdf"] == f"/api/consultations/{seeded.prior}/report/versions/1/pdf"
    assert items[0]["signer_name"]

    response = await service.client.get(
        f"/api/consultations/{seeded.namesake}/report/priors", headers=li
    )
    assert response.status == 200
    assert (await response.json())["items"] == []
