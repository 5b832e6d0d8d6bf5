"""In a real browser, with frame answers held back by the test: a reader scrolls a many-slice
CT right after opening it, and the overlay never labels another slice's pixels (each step shows
either the labelled slice's own pixels, read back from the canvas, or the plain loading state);
frames load from the slice in view outward, and re-order when the reader jumps far.

The page asks for its first frame alone and then for batches of a series from a Web Worker
(viewer/static/frames.js); the test's slow link passes frames, one token each, whichever way they
are grouped (tests/frame_gate.py), and reads the order of frames from the requests' frame lists.
The series is long enough (80 slices) that the frames a page may have asked for and not received
(frames.js IN_FLIGHT) leave most of it to be requested after the jump."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.async_api import Page, Request, expect

from service.demo.synthetic import StudySpec, make_study
from viewer.window import Window, apply_window

from .browser import log_in
from .frame_gate import FRAME_REQUESTS, FrameGate, frames_of

SLICES = 80
ROWS = 64
BAND = 16  # the left columns of every slice carry that slice's own value
FIRST = 4  # frame answers let through before the reader starts; then one per key press
WINDOW = Window(40, 400)  # the synthetic CT's own first window (W 400 L 40)
LABELS = {
    "en": ("Im {n}/{total}", "Loading Im {n}/{total}…"),
    "zh_CN": ("图像 {n}/{total}", "正在加载图像 {n}/{total}…"),
}

# One atomic read of what the reader sees: labels, state and the grey level of the canvas
# inside the marker band (image column BAND/2, middle row) of a fitted, unrotated image.
VIEW = """([cols, rows, x]) => {
  const root = document.getElementById("viewport-0");
  const canvas = root.querySelector("canvas");
  const loading = root.querySelector(".loading-label");
  const scale = Math.min(canvas.width / cols, canvas.height / rows);
  const px = Math.floor(canvas.width / 2 + (x - cols / 2) * scale);
  const py = Math.floor(canvas.height / 2);
  const grey = canvas.getContext("2d").getImageData(px, py, 1, 1).data[0];
  return {
    slice: Number(root.dataset.slice || 0),
    state: root.dataset.state || "",
    label: root.querySelector(".slice-label").textContent,
    location: root.querySelector(".overlay-location").textContent,
    loading: loading.hidden ? null : loading.textContent,
    grey,
  };
}"""
AT = [ROWS, ROWS, BAND // 2]


def hounsfield(number: int) -> int:
    """The marker value of slice ``number`` (1-based Instance Number), inside W 400 L 40."""
    return -150 + 4 * number


def marked_study() -> list:
    """A synthetic CT whose slices differ visibly: the left band of slice n holds hounsfield(n)."""
    datasets = make_study(
        StudySpec("PID-SCROLL", "ZHAO^LEI", "CT", "HEAD", instances=SLICES, rows=ROWS)
    )
    for ds in datasets:
        pixels = ds.pixel_array.copy()
        stored = (hounsfield(int(ds.InstanceNumber)) - float(ds.RescaleIntercept)) / float(
            ds.RescaleSlope
        )
        pixels[:, :BAND] = int(stored)
        ds.PixelData = pixels.tobytes()
    return datasets


@pytest.fixture
async def opened_study(service) -> dict:
    """The marked CT stored in the real Orthanc and a specialist who may read it."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    await service.add_user("dr_li", "specialist", centre)
    datasets = marked_study()
    await service.c_store(datasets, "DX_CT")
    headers = await service.login("dr_li")

    async def received():
        items = (await service.worklist(headers))["items"]
        return next((i for i in items if i["instances"] == SLICES), None)

    item = await service.wait_for(received, timeout=30)
    numbers = {ds.SOPInstanceUID: int(ds.InstanceNumber) for ds in datasets}
    return {"id": item["id"], "numbers": numbers}


def check_step(view: dict, expected_grey: dict[int, int], label: str, loading: str) -> None:
    """Either the labelled slice's own pixels, or the loading state: never a mismatch."""
    n = view["slice"]
    if view["state"] == "shown":
        assert view["label"] == label.format(n=n, total=SLICES), view
        assert view["loading"] is None, view
        assert view["grey"] == expected_grey[n], (view, expected_grey[n])
    else:
        assert view["state"] == "loading", view
        assert view["loading"] == loading.format(n=n, total=SLICES), view
        assert view["label"] == "" and view["location"] == "", view
        assert view["grey"] == 0, view  # a black image, not the previous slice


RACING = 3  # requests frames.js keeps in flight at once (LANES)


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_overlay_always_describes_the_pixels_on_the_canvas(
    service, opened_study, page: Page, lang: str
):
    """Scrolling from the first moment: each step's label matches the canvas or says loading;
    after a jump to the last slice, frames are requested from there outward, each once."""
    base = str(service.client.make_url("/")).rstrip("/")
    path = f"/viewer/{opened_study['id']}"
    label, loading = LABELS[lang]
    await log_in(page, base, "dr_li")
    requested: list[str] = []
    batches: list[int] = []
    per_request: list[list[str]] = []

    def record(request: Request) -> None:
        if FRAME_REQUESTS.search(request.url):
            requested.extend(frames_of(request.url))
            batches.append(len(frames_of(request.url)))
            per_request.append(frames_of(request.url))

    page.on("request", record)
    link = FrameGate(FIRST)
    await page.route(FRAME_REQUESTS, link.handle)
    await page.goto(f"{base}{path}?lang={lang}")

    # Which slice (1-based position in the viewer) carries which Instance Number.
    manifest = await page.evaluate(
        "async (id) => (await fetch(`/api/consultations/${id}/viewer`)).json()",
        opened_study["id"],
    )
    instances = manifest["series"][0]["instances"]
    assert len(instances) == SLICES
    number_at = {p + 1: opened_study["numbers"][i["uid"]] for p, i in enumerate(instances)}
    greys = apply_window(np.array([hounsfield(n) for n in range(SLICES + 1)]), WINDOW)
    expected_grey = {p: int(greys[number]) for p, number in number_at.items()}
    assert len(set(expected_grey.values())) == SLICES and 0 not in expected_grey.values()
    position_of = {i["values"]: p for p, i in enumerate(instances)}

    await page.locator("#viewport-0 canvas").focus()
    states = []
    for _ in range(12):
        link.let_through(1)
        await page.keyboard.press("ArrowDown")
        view = await page.evaluate(VIEW, AT)
        check_step(view, expected_grey, label, loading)
        states.append(view["state"])
    await page.keyboard.press("End")
    view = await page.evaluate(VIEW, AT)
    check_step(view, expected_grey, label, loading)
    states.append(view["state"])
    assert "loading" in states, states  # the slow link was seen: the test exercised loading
    link.let_through(SLICES * 2)

    await expect(page.locator("#slice-label")).to_have_text(
        label.format(n=SLICES, total=SLICES), timeout=10000
    )
    check_step(await page.evaluate(VIEW, AT), expected_grey, label, loading)
    status = page.locator("#prefetch-status")
    await expect(status).to_have_attribute("data-done", str(SLICES), timeout=15000)
    for step in ("PageUp", "Home"):
        await page.keyboard.press(step)
        view = await page.evaluate(VIEW, AT)
        assert view["state"] == "shown"
        check_step(view, expected_grey, label, loading)

    paths = requested
    assert sorted(paths) == sorted(position_of), "each frame requested exactly once"
    assert max(batches) > 1, batches  # the rest came in batches
    positions = [position_of[p] for p in paths]
    assert positions[0] == 0, positions  # the slice in view first
    last = positions.index(SLICES - 1)
    after = [abs(p - (SLICES - 1)) for p in positions[last:]]
    assert len(after) > 5, positions  # the jump came while most of the series was still missing
    # Outward from the slice jumped to, request by request. The page's two workers send their
    # batches at once (up to RACING requests in flight), so the network may see a request
    # overtaken by the ones issued just after it, never by one issued RACING or more later.
    distances = [min(abs(position_of[f] - (SLICES - 1)) for f in frames) for frames in per_request]
    start = next(
        i
        for i, frames in enumerate(per_request)
        if any(position_of[f] == SLICES - 1 for f in frames)
    )
    outward = distances[start:]
    for i, near in enumerate(outward):
        later = outward[i + RACING :]
        assert all(near <= far for far in later), (outward, positions)
