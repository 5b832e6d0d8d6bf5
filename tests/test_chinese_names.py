"""Chinese patient names arrive in GB18030, GBK or UTF-8 and must read right everywhere."""

from __future__ import annotations

import pytest

from service.demo.synthetic import StudySpec, make_study

CASES = [
    ("GB18030", "刘䶮"),  # U+4DAE exists only in GB18030, not in GBK
    ("GB18030", "王建国"),
    ("GBK", "赵敏"),
    ("ISO_IR 192", "陈国强^"),
    ("ISO_IR 192", "ZHANG^SAN=张^三"),
]


@pytest.mark.parametrize(("charset", "name"), CASES)
async def test_name_sent_by_c_store_reads_right_on_the_worklist(service, charset, name):
    """The worklist and the consultation API show the decoded name, whatever the charset."""
    clinic = await service.add_facility("Clinic", "township", "CLINIC_CS")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    study = make_study(StudySpec("P1", name, "CR", "CHEST", charset=charset))
    assert study[0].SpecificCharacterSet == charset
    await service.c_store(study, "CLINIC_CS")

    async def listed():
        return (await service.worklist(headers))["items"]

    (item,) = await service.wait_for(listed)
    expected = name.rstrip("^")
    assert item["patient_name"] == expected
    detail = await service.client.get(f"/api/consultations/{item['id']}", headers=headers)
    assert (await detail.json())["patient_name"] == expected
