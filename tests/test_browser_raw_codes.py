"""Every page, in English and in Chinese, shows words and formatted times, never raw codes.

One consultation goes request → images → claim → message → preliminary answer → signed critical
report → critical and plain acknowledgements, so that events of every kind exist; a second is
signed without a preliminary answer. Each page is then opened in real headless Chromium as the
role that uses it, and its visible text (``inner_text`` of the body) must hold no snake_case or
dotted code (``critical_notified``, ``report_stored``, ``report.view``…), no DICOM code where
the catalogue has a word ("CHEST"), no fallback catalogue key, and in Chinese no English
catalogue message. The public verify page names the zone of its time and formats the study date.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.async_api import Browser, BrowserContext, expect

from service.demo.synthetic import StudySpec, make_study

from .conftest import PASSWORD, Service

ROOT = Path(__file__).resolve().parents[1]
STUDY_TIME = datetime(2026, 12, 2, 9, 30)
CRITICAL = StudySpec(
    "P-CODES", "WANG^FANG", "CR", "CHEST", instances=1, patient_sex="M", study_datetime=STUDY_TIME
)
PLAIN = StudySpec(
    "P-PLAIN", "李^雷", "CR", "CHEST", instances=1, patient_sex="F", study_datetime=STUDY_TIME
)
WAITING = StudySpec(
    "P-OPEN",
    "ZHAO^MIN",
    "CR",
    "CHEST",
    instances=1,
    patient_sex="M",
    study_datetime=STUDY_TIME,
    patient_birth_date="19700101",
    study_description="胸部正位",
    series_description="正位",
)

#: A snake_case word or a dotted code ("report.view"): what a person should never read.
RAW_CODE = re.compile(r"\b[a-z][a-z0-9]*(?:[_.][a-z0-9]+)+\b")
#: Visible text that looks like a code but is legitimately not a word to translate: none yet.
ALLOWED: set[str] = set()
#: Lower-case Latin words a Chinese page may show because they are data or names: the user names
#: the product's name, the ".zip" extension, and (added by the fixture) the words of the stored
#: report templates, which are text a manager wrote. Any other (a status "signed", a priority
#: "stat") is an English code.
DATA_WORDS = {"rada", "doca", "liwei", "boss", "root", "teleread", "zip"}
#: Pages whose job is to show and edit DICOM person names as DICOM writes them (the Users page's
#: "DICOM name" column and its derived default): a caret there is the data, not a raw code.
DICOM_NAME_PAGES = {"root /admin/users"}
#: HL7 message types are written with their caret ("ADT^A40") in explanations to administrators.
HL7_MESSAGE_TYPE = re.compile(r"\b(ADT|ORM|OMI|ORU)\^[A-Z][0-9]{2}\b")


def english_messages() -> set[str]:
    """Catalogue messages (several words, no placeholder) whose Chinese differs: in a Chinese
    page any of them is an untranslated string."""
    path = ROOT / "service/locale/zh_CN/LC_MESSAGES/messages.po"
    with open(path, "rb") as fh:
        catalogue = read_po(fh, locale="zh_CN")
    return {
        m.id
        for m in catalogue
        if isinstance(m.id, str)
        and " " in m.id
        and "{" not in m.id
        and m.string != m.id
        and re.search(r"[a-z]{3}", m.id)
    }


async def carry(
    service: Service, spec: StudySpec, *, critical: bool, preliminary: bool, sign: bool = True
) -> dict:
    """File a stat request, send its images, (claim, message and answer, sign); return the
    consultation id and the verification code."""
    rad = await service.login("rada")
    li = await service.login("liwei")
    datasets = make_study(spec)
    filed = await service.client.post(
        "/api/consultations",
        headers=rad,
        json={
            "study_instance_uid": datasets[0].StudyInstanceUID,
            "priority": "stat",
            "clinical_history": "发热咳嗽三天。",
            "clinical_question": "肺炎？",
        },
    )
    assert filed.status == 201, await filed.text()
    cid = (await filed.json())["id"]
    await service.c_store(datasets, "CLINICA")

    async def ready() -> bool:
        one = await service.client.get(f"/api/consultations/{cid}", headers=li)
        return one.status == 200 and (await one.json())["status"] == "ready"

    await service.wait_for(ready)
    if not sign:
        return {"cid": cid}
    draft = {"findings": "右下肺实变。", "impression": "肺炎。"}
    steps = [("post", "claim", None, 200)]
    if preliminary:
        steps += [
            ("post", "messages", {"body": "有旧片吗？"}, 201),
            ("post", "preliminary", {"text": "右下肺实变。"}, 201),
        ]
    steps += [
        ("put", "report/draft", {**draft, "critical": critical}, 200),
        ("post", "report/sign", {"password": PASSWORD}, 201),
    ]
    for method, path, body, expected in steps:
        answer = await getattr(service.client, method)(
            f"/api/consultations/{cid}/{path}", headers=li, json=body
        )
        assert answer.status == expected, (path, answer.status, await answer.text())
    return {"cid": cid, "code": (await answer.json())["verification_code"]}


@pytest.fixture
async def world(service: Service) -> dict:
    clinic = await service.add_facility("Qingshan Township Clinic", "township", "CLINICA")
    centre = await service.add_facility("County Imaging Centre", "regional", "CENTRE")
    for name, role, place in (
        ("rada", "radiographer", clinic),
        ("doca", "clinician", clinic),
        ("liwei", "specialist", centre),
        ("boss", "manager", centre),
        ("root", "admin", centre),
    ):
        await service.add_user(name, role, place)
    # Side by side: each study waits out Orthanc's StableAge (1 s) before it is ready, and the
    # three waits overlap instead of adding up.
    critical, plain, waiting = await asyncio.gather(
        carry(service, CRITICAL, critical=True, preliminary=True),
        carry(service, PLAIN, critical=False, preliminary=False),
        carry(service, WAITING, critical=False, preliminary=False, sign=False),
    )
    doc = await service.login("doca")
    for path in ("critical-acknowledgement", "acknowledgement"):
        answer = await service.client.post(
            f"/api/consultations/{critical['cid']}/report/{path}", headers=doc
        )
        assert answer.status in (200, 201), (path, await answer.text())
    boss = await service.login("boss")
    templates = await service.client.get("/api/report-templates", headers=boss)
    assert templates.status == 200, await templates.text()
    written = " ".join(str(v) for t in (await templates.json())["items"] for v in t.values())
    return {
        "critical": critical,
        "plain": plain,
        "waiting": waiting,
        "data_words": DATA_WORDS | set(re.findall(r"\b[a-z]{2,}\b", written.lower())),
    }


def pages(world: dict) -> dict[str | None, list[tuple[str, str | None]]]:
    """Per user (None: nobody logged in), the pages to read and what shows they have loaded."""
    cid, other = world["critical"]["cid"], world["plain"]["cid"]
    open_one = world["waiting"]["cid"]
    consultation = '#timeline li[data-type="acknowledged"]'
    return {
        "liwei": [
            ("/worklist", "tr.worklist-row"),
            (f"/viewer/{open_one}", '#viewer[data-state="ready"] .overlay-sex:not(:empty)'),
            (f"/consultations/{cid}", consultation),
            (f"/consultations/{other}", '#timeline li[data-type="signed"]'),
            (f"/consultations/{cid}/report", "#report-versions li"),
            ("/account", None),
        ],
        "boss": [
            ("/dashboard", "body[data-loaded=yes]"),
            ("/audit", "#audit-results tbody tr"),
            # The signing by its action: the other language's page views, newer, fill /audit.
            ("/audit?action=report.sign", "#audit-results tbody tr"),
            ("/roster", None),
            ("/report-templates", None),
        ],
        "root": [("/admin/users", None), ("/admin/facilities", None)],
        "doca": [
            ("/portal", "#portal-table[data-loaded=yes]"),
            (f"/consultations/{cid}", consultation),
            ("/worklist", "tr.worklist-row"),
            ("/account", None),
        ],
        "rada": [
            ("/upload", None),
            ("/request", None),
            ("/worklist", "#worklist[aria-busy=false]"),
        ],
        None: [(f"/verify/{world['critical']['code']}", None)],
    }


async def read_pages(
    context: BrowserContext, base: str, user: str | None, paths: list[tuple[str, str | None]]
) -> dict[str, str]:
    page = await context.new_page()
    if user:
        await page.goto(f"{base}/login?next={paths[0][0]}")
        await page.fill("#login-username", user)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_url(f"{base}{paths[0][0]}")
    texts = {}
    for path, ready in paths:
        await page.goto(base + path)
        if ready:
            await expect(page.locator(ready).first).to_be_attached(timeout=15000)
        texts[path] = await page.inner_text("body")
    return texts


async def test_no_page_shows_a_raw_code_and_the_verify_page_formats_its_times(
    service, world, browser: Browser
):
    """Both languages, then the public verify page, on one seeded world: building it (three
    signed stat reports through the real Orthanc) is most of this test's time."""
    for locale in ("en-GB", "zh-CN"):
        await pages_show_no_raw_code(service, world, browser, locale)
    await verify_page_names_the_zone_and_formats_the_study_date(service, world, browser)


async def pages_show_no_raw_code(service, world, browser: Browser, locale: str) -> None:
    base = str(service.client.make_url("/")).rstrip("/")
    untranslated = english_messages() if locale == "zh-CN" else set()
    texts: dict[str, str] = {}
    for user, paths in pages(world).items():
        context = await browser.new_context(locale=locale, timezone_id="UTC")
        try:
            read = await read_pages(context, base, user, paths)
        finally:
            await context.close()
        texts |= {f"{user} {path}": text for path, text in read.items()}
    problems = {}
    for where, text in texts.items():
        codes = {m for m in RAW_CODE.findall(text) if m not in ALLOWED}
        codes |= {word for word in ("CHEST", "CR / CHEST") if word in text}
        codes |= {m for m in untranslated if m in text}
        if where not in DICOM_NAME_PAGES:  # a DICOM person name as stored: "WANG^FANG"
            codes |= set(re.findall(r"\S*\^\S*", HL7_MESSAGE_TYPE.sub("", text)))
        if locale == "zh-CN":
            codes |= set(re.findall(r"\b[a-z]{2,}\b", text)) - world["data_words"]
        if codes:
            problems[where] = sorted(codes)
    assert not problems, f"{locale}: " + "\n".join(
        f"{where}: {codes}" for where, codes in problems.items()
    )

    cid, other = world["critical"]["cid"], world["plain"]["cid"]
    signed = texts[f"liwei /consultations/{other}"]
    for stale in ("Not yet claimed", "No preliminary answer yet", "尚未认领", "暂无初步意见"):
        assert stale not in signed
    assert ("Read by liwei" if locale == "en-GB" else "阅片医师：liwei") in signed
    assert ("Chest" if locale == "en-GB" else "胸部") in texts[f"doca /consultations/{cid}"]
    assert "李雷" in texts["doca /portal"] and "WANG FANG" in texts["doca /portal"]
    viewer = texts[f"liwei /viewer/{world['waiting']['cid']}"]
    assert ("Sex Male" if locale == "en-GB" else "性别 男") in viewer
    timeline = texts[f"liwei /consultations/{cid}"]
    for event in (
        ("Clinic alerted to a critical finding", "已向送检机构通报危急值"),
        ("Report stored in the archive", "报告已存入影像归档"),
    ):
        assert event[locale == "zh-CN"] in timeline
    audit = texts["boss /audit?action=report.sign"]
    assert ("Report signed" if locale == "en-GB" else "报告已签发") in audit
    dashboard = texts["boss /dashboard"]
    assert "-0" not in dashboard
    assert re.search(r"\d+ min" if locale == "en-GB" else r"\d+ 分钟", dashboard)


async def verify_page_names_the_zone_and_formats_the_study_date(
    service, world, browser: Browser
) -> None:
    """A public reader in UTC sees the signing time in the clinic's zone (Asia/Shanghai), named,
    exactly as on the PDF, and the study date as a date, not "20261202"."""
    base = str(service.client.make_url("/")).rstrip("/")
    code = world["critical"]["code"]
    li = await service.login("liwei")
    report = await service.client.get(
        f"/api/consultations/{world['critical']['cid']}/report", headers=li
    )
    signed_at = datetime.fromisoformat((await report.json())["versions"][0]["signed_at"])
    from zoneinfo import ZoneInfo

    local = signed_at.astimezone(ZoneInfo("Asia/Shanghai"))
    context = await browser.new_context(locale="en-GB", timezone_id="UTC")
    try:
        page = await context.new_page()
        await page.goto(f"{base}/verify/{code}")
        await expect(page.locator("#verify-signed-at")).to_have_text(
            f"{local:%Y-%m-%d %H:%M} (Asia/Shanghai, UTC+08:00)"
        )
        await expect(page.locator("#verify-study-date")).to_have_text("2026-12-02")
    finally:
        await context.close()
