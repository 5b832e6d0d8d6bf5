"""Chinese patient names arrive in GB18030, GBK or UTF-8 and must read right everywhere."""

from __future__ import annotations

from service.demo.synthetic import StudySpec, make_study

CASES = [
    ("GB18030", "刘䶮"),  # U+4DAE exists only in GB18030, not in GBK
    ("GB18030", "王建国"),
    ("GBK", "赵敏"),
    ("ISO_IR 192", "陈国强^"),
    ("ISO_IR 192", "ZHANG^SAN=张^三"),
]


async def test_names_sent_by_c_store_read_right_on_the_worklist(service):
    """The worklist and the consultation API show the decoded name, whatever the charset.

    Every case is sent before any is awaited (one stable-age wait for all five, ~2 s each
    when each was a test of its own); each is a patient of its own."""
    clinic = await service.add_facility("Clinic", "township", "CLINIC_CS")
    await service.add_user("wang", "radiographer", clinic)
    headers = await service.login("wang")
    sent = {}
    for number, (charset, name) in enumerate(CASES):
        study = make_study(StudySpec(f"P{number}", name, "CR", "CHEST", charset=charset))
        assert study[0].SpecificCharacterSet == charset
        await service.c_store(study, "CLINIC_CS")
        sent[str(study[0].StudyInstanceUID)] = (charset, name)

    async def listed():
        items = (await service.worklist(headers))["items"]
        return len(items) == len(CASES) and items

    items = await service.wait_for(listed)
    assert {i["study_instance_uid"] for i in items} == set(sent)
    for item in items:
        charset, name = sent[item["study_instance_uid"]]
        expected = name.rstrip("^")
        assert item["patient_name"] == expected, (charset, name)
        detail = await service.client.get(f"/api/consultations/{item['id']}", headers=headers)
        assert (await detail.json())["patient_name"] == expected, (charset, name)
