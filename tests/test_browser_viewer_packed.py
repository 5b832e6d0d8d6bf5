"""In a real browser: frames that come in batches (packed as ``delta8``, then zstd) reach the page
as exactly the values the per-frame route answers. The viewer's own worker
(viewer/static/frame_worker.js) asks for a batch of a CT whose values jump across the whole
range beside smooth regions (so both the one-byte differences and the escapes are used); each
frame it hands back is compared, value for value, with the per-frame ``values`` body, and its
range with the values' own (docs/viewer.md, "Codings of the two values routes")."""

from __future__ import annotations

import numpy as np
from playwright.async_api import Page, Response

from service.demo.synthetic import StudySpec, make_study

from .browser import log_in

SLICES = 5
ROWS = 64

# The viewer's worker, started by the test in the viewer's page: one batch of `urls`, each frame
# of the answer as plain numbers with the range the worker found.
BATCH_IN_THE_WORKER = """async (urls) => {
  const { batchUrl } = await import("/static/viewer/batches.js");
  const worker = new Worker("/static/viewer/frame_worker.js", { type: "module" });
  const answer = await new Promise((resolve) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.postMessage({ id: 1, url: batchUrl(urls), batch: true });
  });
  worker.terminate();
  if (!answer.buffer) throw new Error(JSON.stringify(answer));
  return answer.frames.map((e) => ({
    key: `${e.instance}:${e.frame}`,
    min: e.min,
    max: e.max,
    values: Array.from(new Int16Array(answer.buffer, e.offset, e.rows * e.columns)),
  }));
}"""


def rough_study() -> list:
    """A CT whose top half is noise over all 12 stored bits (modality values -1024..3071, so
    most differences need an escape) and whose bottom half is the synthetic smooth image."""
    datasets = make_study(StudySpec("PID-PACK", "QIAN^PACK", "CT", "HEAD", SLICES, rows=ROWS))
    rng = np.random.default_rng(7)
    for ds in datasets:
        pixels = ds.pixel_array.copy()
        pixels[: ROWS // 2] = rng.integers(0, 4096, (ROWS // 2, ROWS), dtype=np.uint16)
        pixels[0, :4] = [0, 4095, 0, 4095]
        ds.PixelData = pixels.tobytes()
    return datasets


async def test_batched_frames_reach_the_page_as_the_per_frame_values(service, page: Page):
    """Every frame of a delta8 + zstd batch, rebuilt by the viewer's worker, equals the
    per-frame route's values; the batch went as zstd and asked for delta8."""
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION")
    await service.add_facility("Dongxiang Township Health Centre", "township", "DX_CT")
    await service.add_user("dr_qian", "specialist", centre)
    await service.c_store(rough_study(), "DX_CT")
    headers = await service.login("dr_qian")

    async def received():
        items = (await service.worklist(headers))["items"]
        return next((i for i in items if i["instances"] == SLICES), None)

    item = await service.wait_for(received, timeout=30)
    base = str(service.client.make_url("/")).rstrip("/")
    await log_in(page, base, "dr_qian")
    await page.goto(f"{base}/viewer/{item['id']}")
    manifest = await page.evaluate(
        "async (id) => (await fetch(`/api/consultations/${id}/viewer`)).json()", item["id"]
    )
    urls = [i["values"] for i in manifest["series"][0]["instances"]]
    codings: list[tuple[str, str | None]] = []

    def record(response: Response) -> None:
        if "/values?frames=" in response.url:
            codings.append((response.url, response.headers.get("content-encoding")))

    page.on("response", record)
    frames = await page.evaluate(BATCH_IN_THE_WORKER, urls)

    # The test's batch and the page's own (it loads the series too): all delta8, all zstd.
    assert codings and all(u.endswith("&packing=delta8") and c == "zstd" for u, c in codings)
    assert len(frames) == SLICES
    for url, frame in zip(urls, frames, strict=True):
        answer = await service.client.get(url, headers=headers)
        expected = np.frombuffer(await answer.read(), dtype="<i2")
        assert answer.headers["X-Teleread-Dtype"] == "int16"
        assert np.array_equal(np.array(frame["values"], dtype=np.int16), expected), url
        assert (frame["min"], frame["max"]) == (int(expected.min()), int(expected.max()))
    assert min(f["min"] for f in frames) == -1024 and max(f["max"] for f in frames) == 3071
