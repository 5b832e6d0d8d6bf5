"""Priors everywhere (issue 21 item 2), found through linked local identities, never a Patient ID
alone: the worklist's prior count, the report editor's prior reports (with their facility and
recognition status) and the viewer's Compare list (with a warning when demographics disagree,
the most recent comparable prior hung by default). One consortium per module, built through
the real app, a real Orthanc (C-STORE from each facility's AE title) and real SQLite; the
browser checks run in real Chromium, in English and Chinese.

The person ZHANG^SAN (born 1958-03-12) is T-100 at the township clinic and C-900 and C-901 at the
county hospital (C-901 registered with a mistyped birth date), linked by one health card
number. The clinic's T-100 was also given to WANG^WU (another person), and the county's own
T-100 is LIU^MING: neither is ever a prior of ZHANG^SAN's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from playwright.async_api import Page, expect

from service.demo.synthetic import StudySpec, make_study
from service.storage.patients import LocalPatient

from .browser import SCREENSHOTS, log_in
from .conftest import PASSWORD, Service
from .linking import link_identities
from .module_app import running_service

TOWN, COUNTY = "Dongxiang Township Clinic", "Linxia County Hospital"
ZHANG = ("ZHANG^SAN", "19580312", "M")
OLD_IMPRESSION = "Old lacunar infarct, left basal ganglia."
OLD_FINDINGS = "Small hypodensity in the left basal ganglia."
CHEST_IMPRESSION = "No active lung disease."

# name -> (AE title, Patient ID, (name, birth date, sex), modality, body part, study date)
STUDIES = {
    "county_old": ("COUNTY_CT", "C-900", ZHANG, "CT", "HEAD", datetime(2025, 1, 1, 9)),
    "town_chest": ("TOWN_DR", "T-100", ZHANG, "CR", "CHEST", datetime(2026, 3, 1, 9)),
    "namesake": ("TOWN_DR", "T-100", ("WANG^WU", "19900101", "F"), "CR", "CHEST",
                 datetime(2026, 4, 1, 9)),
    "county_typo": ("COUNTY_CT", "C-901", ("ZHANG^SAN", "19580313", "M"), "CT", "HEAD",
                    datetime(2026, 5, 1, 9)),
    "stranger": ("COUNTY_CT", "T-100", ("LIU^MING", "19900505", "M"), "CT", "HEAD",
                 datetime(2026, 6, 1, 9)),
    "current": ("TOWN_DR", "T-100", ZHANG, "CT", "HEAD", datetime(2026, 11, 2, 10)),
}  # fmt: skip


@dataclass
class World:
    service: Service
    ids: dict[str, int]
    facilities: dict[str, int]


@pytest.fixture(scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("linked_priors")
    async with running_service(directory) as (service, _):
        yield await seed(service)


@pytest.fixture
def service(world: World) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return world.service


async def seed(service: Service) -> World:
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    town = await service.add_facility(TOWN, "township", "TOWN_DR")
    county = await service.add_facility(COUNTY, "county", "COUNTY_CT")
    await service.add_user("dr_li", "specialist", centre)
    await service.add_user("doc_town", "clinician", town)
    await link_identities(
        service,
        "H1234567890",
        LocalPatient(town, "T-100", *ZHANG),
        LocalPatient(county, "C-900", *ZHANG),
        LocalPatient(county, "C-901", "ZHANG^SAN", "19580313", "M"),
    )

    def recognise(db) -> None:
        db.execute(
            "INSERT INTO recognition (facility_id, modality, body_part, status, since)"
            " VALUES (?, 'CT', 'HEAD', 'listed', '2026-01-01T00:00:00Z')",
            [county],
        )

    await service.database.write(recognise)
    uids = {}
    for name, (aet, pid, (patient, born, sex), modality, part, when) in STUDIES.items():
        spec = StudySpec(
            pid,
            patient,
            modality,
            part,
            instances=2,
            rows=32,
            patient_birth_date=born,
            patient_sex=sex,
            study_datetime=when,
        )
        study = make_study(spec)
        uids[str(study[0].StudyInstanceUID)] = name
        await service.c_store(study, aet)
    li = await service.login("dr_li")

    async def all_received():
        items = (await service.worklist(li, limit="100"))["items"]
        found = {
            uids[i["study_instance_uid"]]: i["id"]
            for i in items
            if i["study_instance_uid"] in uids and i["instances"] == 2
        }
        return found if len(found) == len(STUDIES) else None

    ids = await service.wait_for(all_received, timeout=30)
    await sign(service, li, ids["county_old"], OLD_IMPRESSION, OLD_FINDINGS)
    await sign(service, li, ids["town_chest"], CHEST_IMPRESSION)
    await sign(service, li, ids["namesake"], "Right lower lobe pneumonia.")
    return World(service, ids, {"town": town, "county": county, "centre": centre})


async def sign(
    service: Service, headers: dict[str, str], cid: int, impression: str, findings: str = "-"
) -> None:
    """Claim, draft and sign a report through the API, as the editor does."""
    claimed = await service.client.post(f"/api/consultations/{cid}/claim", headers=headers)
    assert claimed.status == 200, await claimed.text()
    draft = {"findings": findings, "impression": impression, "quality": "good"}
    saved = await service.client.put(
        f"/api/consultations/{cid}/report/draft", headers=headers, json=draft
    )
    assert saved.status == 200, await saved.text()
    signed = await service.client.post(
        f"/api/consultations/{cid}/report/sign", headers=headers, json={"password": PASSWORD}
    )
    assert signed.status == 201, await signed.text()


async def prior_counts(service: Service, username: str) -> dict[int, int]:
    """Every worklist row the user may see, open and signed: its prior count."""
    headers = await service.login(username)
    items = (await service.worklist(headers, limit="100"))["items"]
    items += (await service.worklist(headers, limit="100", status="signed"))["items"]
    return {i["id"]: i["prior_count"] for i in items}


async def test_the_worklist_counts_earlier_studies_of_the_linked_person_in_scope(world):
    """The centre's reader sees three earlier studies of ZHANG^SAN at two facilities; the
    clinic's doctor only its own one; the namesake and the county's other T-100 have none."""
    ids = world.ids
    centre = await prior_counts(world.service, "dr_li")
    assert centre[ids["current"]] == 3
    assert centre[ids["county_typo"]] == 2  # the older CT and the chest radiograph
    assert centre[ids["county_old"]] == 0
    assert centre[ids["namesake"]] == 0
    assert centre[ids["stranger"]] == 0
    clinic = await prior_counts(world.service, "doc_town")
    assert clinic[ids["current"]] == 1
    assert ids["county_old"] not in clinic


async def test_one_consultation_says_its_prior_count_too(world):
    li = await world.service.login("dr_li")
    response = await world.service.client.get(
        f"/api/consultations/{world.ids['current']}", headers=li
    )
    assert response.status == 200
    assert (await response.json())["prior_count"] == 3


async def test_the_editor_lists_signed_priors_across_facilities_with_recognition(world):
    """Both facilities' signed reports of ZHANG^SAN, with text, facility and whether that
    facility is recognised for the exam item; never the namesake's; the clinic sees its own."""
    ids, client = world.ids, world.service.client
    url = f"/api/consultations/{ids['current']}/report/priors"
    response = await client.get(url, headers=await world.service.login("dr_li"))
    assert response.status == 200, await response.text()
    items = {i["consultation_id"]: i for i in (await response.json())["items"]}
    assert set(items) == {ids["county_old"], ids["town_chest"]}
    old = items[ids["county_old"]]
    assert (old["facility_name"], old["recognition"]) == (COUNTY, "listed")
    assert (old["impression"], old["findings"]) == (OLD_IMPRESSION, OLD_FINDINGS)
    assert old["study_date"] == "20250101"
    chest = items[ids["town_chest"]]
    assert (chest["facility_name"], chest["recognition"]) == (TOWN, "")
    clinic = await client.get(url, headers=await world.service.login("doc_town"))
    assert [i["consultation_id"] for i in (await clinic.json())["items"]] == [ids["town_chest"]]


async def test_compare_offers_linked_priors_and_says_which_demographics_disagree(world):
    ids = world.ids
    li = await world.service.login("dr_li")
    response = await world.service.client.get(
        f"/api/consultations/{ids['current']}/viewer", headers=li
    )
    assert response.status == 200
    priors = (await response.json())["priors"]
    assert [(p["consultation_id"], p["disagrees"]) for p in priors] == [
        (ids["county_typo"], ["birth_date"]),
        (ids["town_chest"], []),
        (ids["county_old"], []),
    ]
    assert [p["demographics_agree"] for p in priors] == [False, True, True]


WARNING = {
    "en": (
        "Check the patient: this prior's record gives a different birth date",
        "⚠ different birth date",
    ),
    "zh_CN": ("请核对患者：此既往检查的出生日期与当前检查不一致", "⚠ 出生日期不一致"),
}


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_compare_hangs_the_latest_comparable_prior_and_warns_it_disagrees(
    world, page: Page, lang: str
):
    """The CT head registered with another birth date is the most recent comparable prior: it
    hangs by default, its pane and its menu entry say the birth date differs; the older CT
    head agrees and shows no warning. The menu names each study once ("CT HEAD")."""
    ids = world.ids
    base = str(world.service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await log_in(page, base, "dr_li")
    await page.goto(f"{base}/viewer/{ids['current']}?lang={lang}")
    await expect(page.locator("#viewer")).to_have_attribute(
        "data-hung", str(ids["county_typo"]), timeout=15000
    )
    warning = page.locator("#viewport-1 #prior-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text(WARNING[lang][0])
    await expect(warning).to_have_attribute("data-disagrees", "birth_date")
    await page.screenshot(path=str(SCREENSHOTS / f"viewer-compare-warning-{lang}.png"))
    option = page.locator(f'#prior-select option[value="{ids["county_typo"]}"]')
    await expect(option).to_contain_text(WARNING[lang][1])
    offered = await page.locator("#prior-select option").evaluate_all(
        "(options) => options.map((o) => [o.value, o.textContent])"
    )
    values = [value for value, _ in offered]
    assert str(ids["namesake"]) not in values and str(ids["stranger"]) not in values
    for _, text in offered:
        assert "CT CT" not in text and "CR CR" not in text, text
    assert any(value == str(ids["county_old"]) and "CT HEAD" in text for value, text in offered)

    await page.select_option("#prior-select", str(ids["county_old"]))
    await expect(page.locator("#viewport-1")).to_be_visible()
    await expect(warning).to_be_hidden()


SHOWN = {
    "en": {"badge": "3 priors", "listed": "Recognised", "none": "Not recognised"},
    "zh_CN": {"badge": "既往 3", "listed": "互认中", "none": "未互认"},
}


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_the_worklist_and_the_editor_show_the_linked_priors(world, page: Page, lang: str):
    """At 1280×800 the worklist row says how many earlier studies there are (what they are in
    its tooltip) and the worklist does not scroll sideways; the report editor lists both
    facilities' signed reports beside the draft, each with its facility and whether that
    facility is recognised for the exam item."""
    ids, words = world.ids, SHOWN[lang]
    base = str(world.service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await log_in(page, base, "dr_li")
    await page.goto(f"{base}/worklist?lang={lang}")
    row = page.locator(f'tr.worklist-row[data-consultation-id="{ids["current"]}"]')
    await expect(row).to_have_attribute("data-prior-count", "3")
    badge = row.locator(".prior-count")
    await expect(badge).to_have_text(words["badge"])
    await expect(badge).to_be_visible()
    assert await badge.get_attribute("title")
    stranger = page.locator(f'tr.worklist-row[data-consultation-id="{ids["stranger"]}"]')
    await expect(stranger).to_have_attribute("data-prior-count", "0")
    await expect(stranger.locator(".prior-count")).to_have_count(0)
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, overflow
    await page.screenshot(path=str(SCREENSHOTS / f"worklist-priors-{lang}.png"))

    await page.goto(f"{base}/consultations/{ids['current']}/report?lang={lang}")
    priors = page.locator("#report-priors li.report-prior")
    await expect(priors).to_have_count(2)
    old = page.locator(f'#report-priors li[data-consultation-id="{ids["county_old"]}"]')
    await expect(old).to_have_attribute("data-recognition", "listed")
    await expect(old.locator(".report-prior-facility")).to_have_text(COUNTY)
    await expect(old.locator(".recognition")).to_have_text(words["listed"])
    await expect(old).to_contain_text(OLD_IMPRESSION)
    chest = page.locator(f'#report-priors li[data-consultation-id="{ids["town_chest"]}"]')
    await expect(chest.locator(".report-prior-facility")).to_have_text(TOWN)
    await expect(chest.locator(".recognition")).to_have_text(words["none"])
    await expect(page.locator("#report-priors")).not_to_contain_text("pneumonia")
    await page.screenshot(path=str(SCREENSHOTS / f"report-editor-priors-{lang}.png"))
