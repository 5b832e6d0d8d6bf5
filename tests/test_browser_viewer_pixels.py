"""In a real browser: real-world files (pydicom's own test files) show exactly the server's
pixels. The canvas at 1:1 is read back and compared, pixel for pixel, with the server's lossless
PNG render of the same frame and window (the render tests/test_dcmtk_parity.py holds equal to
dcmtk's): a CT, an MR and a MONOCHROME1 CR, at the image's default window and after a drag."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from playwright.async_api import Page, expect
from pydicom.data import get_testdata_file

from viewer.window import Window, apply_window

from .browser import log_in
from .conftest import Service
from .module_app import running_service

ROOT = Path(__file__).resolve().parents[1]

# name in pydicom's test files -> what the test expects of it
FILES = {
    "CT_small.dcm": "MONOCHROME2",
    "MR_small.dcm": "MONOCHROME2",
    "6154": "MONOCHROME1",  # a 16x16 CR from pydicom's DICOMDIR test set
}

COLOUR_FILE = "SC_rgb_rle.dcm"  # RGB (RLE Lossless, sent decompressed)
OVERLAY_FILE = "examples_overlay.dcm"  # an MR with a lesion marked in overlay plane 6000
OVERLAY_LABELS = {"en": "Overlays", "zh_CN": "叠加层"}

# The canvas region where a 1:1, centred, unrotated image lies, compared with the server's PNG
# of `rendered` (with the query `query` when given), decoded by the same browser.
COMPARE = """async ([rendered, query]) => {
  const canvas = document.querySelector("#viewport-0 canvas");
  const url = query ? `${rendered}?${query}` : rendered;
  const response = await fetch(url, { headers: { Accept: "image/png" } });
  if (!response.ok) return { status: response.status };
  const bitmap = await createImageBitmap(await response.blob());
  const w = bitmap.width, h = bitmap.height;
  const scratch = document.createElement("canvas");
  scratch.width = w;
  scratch.height = h;
  const sctx = scratch.getContext("2d");
  sctx.drawImage(bitmap, 0, 0);
  const server = sctx.getImageData(0, 0, w, h).data;
  const left = Math.round(canvas.width / 2 - w / 2);
  const top = Math.round(canvas.height / 2 - h / 2);
  const shown = canvas.getContext("2d").getImageData(left, top, w, h).data;
  let differ = 0, brighter = 0, sum = 0;
  for (let i = 0; i < w * h * 4; i += 4) {
    sum += server[i];
    const same = shown[i] === server[i] && shown[i + 1] === server[i + 1];
    if (!same || shown[i + 2] !== server[i + 2]) differ += 1;
    if (shown[i] > server[i]) brighter += 1;
  }
  return { status: response.status, w, h, differ, brighter, mean: sum / (w * h) };
}"""


def read_file(name: str) -> Any:
    """A pydicom test file (never downloaded); old files warn about their VR, harmlessly."""
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ds.PixelData  # noqa: B018 - read the pixels now, while warnings are ignored
    return ds


@pytest.fixture(scope="module")
async def stored(tmp_path_factory) -> AsyncIterator[tuple[Service, dict]]:
    """One app, Orthanc and set of stored files for the module (built for each test before,
    ~2 s each): the tests only read them, each in a page of its own."""
    directory = tmp_path_factory.mktemp("viewer_pixels")
    async with running_service(directory) as (service, _):
        yield service, await store_files(service)


@pytest.fixture
def service(stored) -> Service:
    """The module's app (replaces conftest's app-per-test fixture of the same name)."""
    return stored[0]


@pytest.fixture
def real_files(stored) -> dict[str, dict]:
    return stored[1]


async def store_files(service: Service) -> dict[str, dict]:
    """The files stored in the real Orthanc by C-STORE (one consultation each) and a reader."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Linxia County Hospital", "county", "LX_CT")
    await service.add_user("dr_li", "specialist", centre)
    datasets = {name: read_file(name) for name in [*FILES, OVERLAY_FILE, COLOUR_FILE]}
    datasets[COLOUR_FILE].decompress()  # Orthanc's SCP accepts uncompressed syntaxes only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await service.c_store(list(datasets.values()), "LX_CT")
    headers = await service.login("dr_li")
    wanted = {ds.StudyInstanceUID: name for name, ds in datasets.items()}

    async def received():
        items = (await service.worklist(headers))["items"]
        found = {
            wanted[i["study_instance_uid"]]: i for i in items if i["study_instance_uid"] in wanted
        }
        return found if len(found) == len(wanted) else None

    found = await service.wait_for(received, timeout=30)
    return {name: {"id": item["id"], "ds": datasets[name]} for name, item in found.items()}


async def compare(page: Page, rendered: str, query: str | None) -> dict:
    result = await page.evaluate(COMPARE, [rendered, query])
    assert result["status"] == 200, result
    return result


async def open_at_one_to_one(page: Page, base: str, consultation_id: int, lang: str) -> dict:
    """Open the viewer, wait for the first image, show it 1:1; the instance's manifest entry."""
    await page.goto(f"{base}/viewer/{consultation_id}?lang={lang}")
    await expect(page.locator("#viewport-0")).to_have_attribute(
        "data-state", "shown", timeout=10000
    )
    manifest = await page.evaluate(
        "async (id) => (await fetch(`/api/consultations/${id}/viewer`)).json()", consultation_id
    )
    await page.locator("#viewport-0 canvas").focus()
    await page.keyboard.press("o")  # 1:1: one image pixel per canvas pixel
    return manifest["series"][0]["instances"][0]


async def test_browser_pixels_equal_the_servers_render(service, real_files, page: Page):
    """CT, MR and MONOCHROME1 CR: not one pixel differs from the server's PNG, at the default
    window and after a window drag (the old rounding made about half of them one level brighter)."""
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1200, "height": 800})
    await log_in(page, base, "dr_li")
    for name, photometric in FILES.items():
        study = real_files[name]
        viewport = page.locator("#viewport-0")
        instance = await open_at_one_to_one(page, base, study["id"], "en")
        assert instance["photometric"] == photometric
        assert instance["overlays"] is False

        default = await compare(page, instance["rendered"], None)
        ds = study["ds"]
        assert (default["w"], default["h"]) == (ds.Columns, ds.Rows)
        assert default["differ"] == 0, (name, "default window", default)

        before = await viewport.get_attribute("data-window")
        box = await page.locator("#viewport-0 canvas").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        await page.mouse.move(x, y)
        await page.mouse.down()
        await page.mouse.move(x - 37, y + 23, steps=4)
        await page.mouse.up()
        win = await viewport.get_attribute("data-window")
        assert win and win != before, (name, before, win)
        dragged = await compare(page, instance["rendered"], f"window={win}")
        assert dragged["differ"] == 0, (name, win, dragged)
        assert 0 < dragged["mean"] < 255, (name, win, dragged)  # a real picture, not flat


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_dicom_overlays_are_drawn_and_can_be_hidden(service, real_files, page: Page, lang):
    """examples_overlay.dcm: shown by default with its marked lesion, pixel for pixel the
    server's ``overlays=true`` render; the toggle (button or G) hides it, leaving exactly the
    plain render. No colour or greyscale frame costs a failed request."""
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1200, "height": 800})
    await log_in(page, base, "dr_li")
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    instance = await open_at_one_to_one(page, base, real_files[OVERLAY_FILE]["id"], lang)
    assert instance["overlays"] is True
    button = page.locator("#overlays-button")
    await expect(button).to_contain_text(OVERLAY_LABELS[lang])
    await expect(button).to_have_attribute("aria-pressed", "true")

    viewport = page.locator("#viewport-0")
    await expect(viewport).to_have_attribute("data-overlays", "shown")
    burnt = await compare(page, instance["rendered"], "overlays=true")
    plain = await compare(page, instance["rendered"], None)
    assert burnt["differ"] == 0, burnt
    assert plain["differ"] > 50, plain  # the lesion's mark: visible, and only with overlays

    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "false")
    await expect(viewport).to_have_attribute("data-overlays", "none")
    assert (await compare(page, instance["rendered"], None))["differ"] == 0
    await page.locator("#viewport-0 canvas").focus()
    await page.keyboard.press("g")
    await expect(button).to_have_attribute("aria-pressed", "true")
    await expect(viewport).to_have_attribute("data-overlays", "shown")
    assert (await compare(page, instance["rendered"], "overlays=true"))["differ"] == 0
    assert failed == [], failed


async def test_colour_frames_are_asked_for_as_colour(service, real_files, page: Page):
    """An RGB image: fetched once as the server's PNG (the manifest says it is colour), never
    through a failing ``values`` request first; shown as the server renders it."""
    base = str(service.client.make_url("/")).rstrip("/")
    await page.set_viewport_size({"width": 1200, "height": 800})
    await log_in(page, base, "dr_li")
    responses: list[tuple[str, int]] = []
    page.on("response", lambda r: responses.append((r.url, r.status)))
    instance = await open_at_one_to_one(page, base, real_files[COLOUR_FILE]["id"], "en")
    assert instance["photometric"] == "RGB"
    assert [r for r in responses if r[1] >= 400] == []
    assert not [u for u, _ in responses if u.endswith("/values")]
    assert [u for u, _ in responses if u.endswith("/rendered")], responses
    await expect(page.locator("#wl-label")).not_to_have_text("")
    shown = await compare(page, instance["rendered"], None)
    assert shown["differ"] == 0, shown


def test_monochrome1_file_is_a_real_cr() -> None:
    """The MONOCHROME1 case is a real device's file, not a synthetic one."""
    ds = read_file("6154")
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.Modality == "CR"


WINDOWS = [(40, 400), (40.5, 401), (-600, 1500), (1159.5, 2064), (0.3, 1), (1, 2), (600, 1600.7)]


async def test_browser_linear_function_equals_the_servers(page: Page):
    """viewer/static/windowing.js's LINEAR function, run by the browser, equals
    viewer/window.py's apply_window on every value of a wide range, for whole and fractional
    windows, either polarity (MONOCHROME1 / invert)."""
    source = (ROOT / "viewer" / "static" / "windowing.js").read_text(encoding="utf-8")
    body = source.replace("export ", "")
    xs = list(range(-2100, 4200, 3))
    got = await page.evaluate(
        f"([xs, windows]) => {{ {body}\n"
        "return windows.map(([c, w]) => [false, true].map("
        "(inv) => xs.map((x) => linear(x, c, w, inv)))); }",
        [xs, WINDOWS],
    )
    for (c, w), both in zip(WINDOWS, got, strict=True):
        for inverse, values in zip((False, True), both, strict=True):
            expected = apply_window(np.array(xs, dtype=np.float64), Window(c, w), inverse)
            assert values == expected.tolist(), (c, w, inverse)
