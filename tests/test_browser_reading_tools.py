"""In a real browser, against a real Orthanc: the reading tools of issue 16 item 3. A CT opens
with its most recent comparable prior hung beside it (not a newer radiograph of the same patient,
never another patient given the same ID); orientation markers follow Image Orientation (Patient)
through a rotation; the scale bar measures what the zoom shows; each series counts its frames
while they load; Sync makes the prior follow scrolling (by slice position, the two stacks sharing
a frame of reference) and windowing, until it is switched off. In English and Chinese."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from playwright.async_api import Page, expect

from service.demo.synthetic import StudySpec, make_study
from service.storage.patients import LocalPatient

from .browser import log_in
from .conftest import Service
from .frame_gate import FRAME_REQUESTS, FrameGate
from .linking import link_identities
from .module_app import running_service

ROWS = 64
SPACING_MM = 240.0 / ROWS  # synthetic CT HEAD: a 240 mm field of view
SLICES, PRIOR_SLICES = 10, 4
TEXT = {
    "en": {
        "slice": "Im {n}/{total}",
        "wl": "W {width} L {center}",
        "loading": r"^[1-9]/10 loaded$",
        "loaded": "10 images",
        "bar": r"^\d+ (cm|mm)$",
    },
    "zh_CN": {
        "slice": "图像 {n}/{total}",
        "wl": "窗宽 {width} 窗位 {center}",
        "loading": r"^已加载 [1-9]/10$",
        "loaded": "10 幅图像",
        "bar": r"^\d+ (厘米|毫米)$",
    },
}


def ct_head(slices: int, when: datetime, birth_date: str = "19600101", **kwargs) -> list:
    return make_study(
        StudySpec(
            "PID-READ",
            "WANG^XIAO",
            "CT",
            "HEAD",
            instances=slices,
            rows=ROWS,
            patient_birth_date=birth_date,
            study_datetime=when,
            **kwargs,
        )
    )


@dataclass
class Reading:
    """The module's running app (with its Orthanc) and the seeded consultations' ids by name."""

    service: Service
    ids: dict[str, int]


@pytest.fixture(scope="module")
async def reading_world(tmp_path_factory) -> AsyncIterator[Reading]:
    """One app, one Orthanc and one seeded set of studies for the module's eight tests (built
    for each before, ~3 s each): the tests only read them, each in a page of its own."""
    directory = tmp_path_factory.mktemp("reading_tools")
    async with running_service(directory) as (service, _):
        yield Reading(service, await seed(service))


@pytest.fixture
def service(reading_world: Reading) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return reading_world.service


@pytest.fixture
def reading(reading_world: Reading) -> dict[str, int]:
    return reading_world.ids


async def seed(service: Service) -> dict[str, int]:
    """Current CT head from the township; from the county: an older CT head of the same patient
    (same frame of reference: slices 5 mm apart at -7.5 .. 7.5 mm), a newer chest radiograph of
    the same patient, and a CT head of another patient with the same ID (another birth date)."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    township = await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    county = await service.add_facility("Linxia County Hospital", "county", "LX_CT")
    await service.add_user("dr_li", "specialist", centre)
    await link_identities(
        service, "H1234567890", LocalPatient(township, "PID-READ"), LocalPatient(county, "PID-READ")
    )
    current = ct_head(SLICES, datetime(2026, 11, 2, 10, 0))
    prior = ct_head(PRIOR_SLICES, datetime(2025, 1, 1, 9, 0))
    for ds in prior:
        ds.FrameOfReferenceUID = current[0].FrameOfReferenceUID
    radiograph = make_study(
        StudySpec(
            "PID-READ",
            "WANG^XIAO",
            "CR",
            "CHEST",
            patient_birth_date="19600101",
            study_datetime=datetime(2026, 6, 1, 9, 0),
        )
    )
    impostor = ct_head(2, datetime(2026, 10, 1, 9, 0), birth_date="19900505")
    for ds in impostor:
        ds.PatientName = "LIU^MING"
    await service.c_store(prior, "LX_CT")
    await service.c_store(radiograph, "LX_CT")
    await service.c_store(impostor, "LX_CT")
    await service.c_store(current, "DX_CT")
    headers = await service.login("dr_li")
    uids = {
        current[0].StudyInstanceUID: ("current", SLICES),
        prior[0].StudyInstanceUID: ("prior", PRIOR_SLICES),
        radiograph[0].StudyInstanceUID: ("radiograph", 1),
        impostor[0].StudyInstanceUID: ("impostor", 2),
    }

    async def all_received():
        items = (await service.worklist(headers))["items"]
        found = {
            uids[i["study_instance_uid"]][0]: i["id"]
            for i in items
            if i["study_instance_uid"] in uids
            and i["instances"] == uids[i["study_instance_uid"]][1]
        }
        return found if len(found) == 4 else None

    return await service.wait_for(all_received, timeout=30)


async def open_viewer(page: Page, service, consultation_id: int, lang: str) -> FrameGate:
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await log_in(page, base, "dr_li")
    held = FrameGate(3)  # three frames pass, one by one or in a batch (tests/frame_gate.py)
    await page.route(FRAME_REQUESTS, held.handle)
    await page.goto(f"{base}/viewer/{consultation_id}?lang={lang}")
    return held


async def edges(page: Page, viewport: str) -> dict[str, str]:
    return await page.evaluate(
        """(selector) => Object.fromEntries([...document.querySelectorAll(
             `${selector} .orientation-marker`)].map((m) => [m.dataset.edge, m.textContent]))""",
        viewport,
    )


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_orientation_markers_and_scale_bar_follow_the_view(
    service, reading, page: Page, lang: str
):
    """Axial HFS: R left, L right, A top, P bottom; a quarter turn clockwise moves L to the
    bottom. The bar's length is a round number of mm drawn at the image's own scale."""
    held = await open_viewer(page, service, reading["current"], lang)
    held.let_through(1000)
    await expect(page.locator("#viewport-0")).to_have_attribute(
        "data-state", "shown", timeout=15000
    )
    assert await edges(page, "#viewport-0") == {
        "left": "R",
        "right": "L",
        "top": "A",
        "bottom": "P",
    }
    await page.locator("#viewport-0 canvas").focus()
    await page.keyboard.press("r")
    await expect(page.locator('#viewport-0 .orientation-marker[data-edge="bottom"]')).to_have_text(
        "L"
    )
    assert await edges(page, "#viewport-0") == {
        "left": "P",
        "right": "A",
        "top": "R",
        "bottom": "L",
    }
    await page.keyboard.press("Backspace")
    await expect(page.locator('#viewport-0 .orientation-marker[data-edge="right"]')).to_have_text(
        "L"
    )

    bar = page.locator("#viewport-0 .scale-bar")
    await expect(bar).to_be_visible()
    await expect(bar.locator(".scale-bar-label")).to_have_text(re.compile(TEXT[lang]["bar"]))
    box = await page.locator("#viewport-0 canvas").bounding_box()
    assert box is not None
    css_scale = min(box["width"], box["height"]) / ROWS  # screen px per image pixel, fitted
    mm = float(await bar.get_attribute("data-mm") or "nan")
    line = await bar.locator(".scale-bar-line").bounding_box()
    assert line is not None
    assert mm in {1, 2, 5, 10, 20, 50, 100, 200}, mm
    assert abs(line["width"] * SPACING_MM / css_scale - mm) / mm < 0.03, (line, mm, css_scale)
    pixels = await bar.get_attribute("data-pixels") or ""
    await page.keyboard.press("=")  # zoom in: the bar follows
    await expect(bar).not_to_have_attribute("data-pixels", pixels)


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_the_series_list_counts_frames_while_they_load(
    service, reading, page: Page, lang: str
):
    """With only a few frames through, the series says how many of its ten are here; then
    it says its image count again."""
    held = await open_viewer(page, service, reading["current"], lang)
    count = page.locator("#thumbnails .thumbnail .thumb-count").first
    await expect(count).to_have_attribute("data-loading", "true", timeout=15000)
    await expect(count).to_have_text(re.compile(TEXT[lang]["loading"]))
    held.let_through(1000)
    await expect(count).to_have_text(TEXT[lang]["loaded"], timeout=15000)
    await expect(count).to_have_attribute("data-done", str(SLICES))


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_the_comparable_prior_hangs_beside_the_current_study_and_follows_it_while_synced(
    service, reading, page: Page, lang: str
):
    """The older CT head hangs, not the newer radiograph; the impostor is not even offered.

    Same frame of reference: current Im 3 (-12.5 mm) shows prior Im 1 (-7.5 mm) and Im 8
    (12.5 mm) prior Im 4 (7.5 mm), where index proportion would give Im 2 and Im 3. A preset
    on the current windows the prior too. Sync off: the prior stays put.
    (One test: both questions begin with the same opening of the viewer, ~2 s each.)"""
    held = await open_viewer(page, service, reading["current"], lang)
    held.let_through(1000)
    slice_label, wl = TEXT[lang]["slice"], TEXT[lang]["wl"]
    viewer = page.locator("#viewer")
    await expect(viewer).to_have_attribute("data-hung", str(reading["prior"]), timeout=15000)
    await expect(page.locator("#viewport-1")).to_be_visible()
    await expect(page.locator("#prior-select")).to_have_value(str(reading["prior"]))
    offered = await page.locator("#prior-select option").evaluate_all(
        "(options) => options.map((o) => o.value)"
    )
    assert str(reading["radiograph"]) in offered
    assert str(reading["impostor"]) not in offered
    await expect(page.locator("#viewport-0")).to_have_attribute("data-active", "true")
    await expect(page.locator("#prior-slice-label")).to_have_text(
        slice_label.format(n=1, total=PRIOR_SLICES), timeout=15000
    )

    sync = page.locator("#sync-button")
    await expect(sync).to_be_visible()
    await expect(sync).to_have_attribute("aria-pressed", "true")
    await page.locator("#viewport-0 canvas").focus()
    for _ in range(2):
        await page.keyboard.press("ArrowDown")
    await expect(page.locator("#slice-label")).to_have_text(
        slice_label.format(n=3, total=SLICES), timeout=15000
    )
    await expect(page.locator("#prior-slice-label")).to_have_text(
        slice_label.format(n=1, total=PRIOR_SLICES), timeout=15000
    )
    await expect(sync).to_have_attribute("data-by", "position")
    for _ in range(5):
        await page.keyboard.press("ArrowDown")
    await expect(page.locator("#prior-slice-label")).to_have_text(
        slice_label.format(n=4, total=PRIOR_SLICES), timeout=15000
    )
    await page.keyboard.press("4")  # lung preset
    await expect(page.locator("#wl-label")).to_have_text(wl.format(width=1500, center=-600))
    await expect(page.locator("#prior-wl-label")).to_have_text(wl.format(width=1500, center=-600))

    await sync.click()
    await expect(sync).to_have_attribute("aria-pressed", "false")
    await page.locator("#viewport-0 canvas").focus()
    await page.keyboard.press("Home")
    await page.keyboard.press("1")  # brain preset
    await expect(page.locator("#slice-label")).to_have_text(slice_label.format(n=1, total=SLICES))
    await expect(page.locator("#wl-label")).to_have_text(wl.format(width=80, center=40))
    await expect(page.locator("#prior-slice-label")).to_have_text(
        slice_label.format(n=4, total=PRIOR_SLICES)
    )
    await expect(page.locator("#prior-wl-label")).to_have_text(wl.format(width=1500, center=-600))
