"""What each coding of the frame values costs the browser alone: a CT's batches served from memory.

Run from the repository root::

    .venv/bin/python bench/viewer_transfer.py [--instances 150] [--repeats 7]

The whole-series figure of bench/viewer_speed.py mixes the app, Orthanc and Chromium on two
shared cores; this isolates Chromium's part. A bare aiohttp server holds the synthetic CT's
frames (``--instances`` slices of 512x512, the modality values the service would answer) packed
as the batch route packs them (service/viewing/value_batches.py, 16 frames a batch), each batch
encoded once, before timing, as identity, gzip and zstd (service/http/compression.py), and as the
viewer asks for them: int16 frames packed as ``delta8``, then zstd. Debian's
headless Chromium opens a page that hands the batches to two of the viewer's own workers
(viewer/static/frame_worker.js: fetch, read the index, find each frame's value range), three
requests in flight as the viewer keeps them, and the benchmark reads the CPU seconds of every
Chromium process over each load, the codings in turn, ``--repeats`` times. Identity is the
reference: the same bytes with nothing to decode.

Figures are printed, never asserted; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from ingest import cpu_seconds, free_port, progress
from playwright.async_api import async_playwright
from render import descendants

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.http.compression import gzip_fast, zstd_fast
from service.viewing.value_batches import FrameRequest, FrameValues, pack
from viewer.frames import decode_frame
from viewer.render import modality_values

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--headless=new", "--disable-gpu", "--disable-quic"]
STATIC = Path(__file__).resolve().parent.parent / "viewer" / "static"
BATCH = 16
ENCODERS = {"identity": None, "gzip": gzip_fast, "zstd": zstd_fast}
DELTA8 = "delta8+zstd"  # the batches the viewer asks for: int16 frames packed, then zstd

PAGE = """<!doctype html><html><body><script type="module">
window.load = (coding, batches) => new Promise((resolve, reject) => {
  const script = "/static/viewer/frame_worker.js";
  const workers = [0, 1].map(() => new Worker(script, { type: "module" }));
  const start = performance.now();
  let next = 0, done = 0, bytes = 0;
  const ask = (worker) => {
    if (next >= batches) return;
    worker.postMessage({ id: next, url: `/batch/${coding}/${next}`, batch: true });
    next += 1;
  };
  workers.forEach((worker) => {
    worker.onmessage = (event) => {
      if (!event.data.buffer) { reject(new Error(JSON.stringify(event.data))); return; }
      bytes += event.data.buffer.byteLength;
      done += 1;
      if (done === batches) {
        workers.forEach((w) => w.terminate());
        resolve([performance.now() - start, bytes]);
      } else ask(worker);
    };
  });
  [0, 1, 0].forEach((i) => ask(workers[i]));
});
</script></body></html>"""


def batches(instances: int, packing: str | None = None) -> list[bytes]:
    """The CT's values, packed ``BATCH`` frames a body as the batch route packs them."""
    frames = []
    for ds in make_study(StudySpec("BENCHT", "BENCH^TRANSFER", "CT", "HEAD", instances, rows=512)):
        data, dtype = modality_values(decode_frame(dataset_bytes(ds), 0))
        request = FrameRequest(str(ds.SOPInstanceUID), 1)
        frames.append(FrameValues(request, data, dtype, 512, 512, "MONOCHROME2"))
    return [pack(frames[i : i + BATCH], packing) for i in range(0, len(frames), BATCH)]


def application(bodies: dict[str, list[bytes]]) -> web.Application:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def batch(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        headers = {} if coding == "identity" else {"Content-Encoding": coding.split("+")[-1]}
        body = bodies[coding][int(request.match_info["n"])]
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/batch/{coding}/{n:\\d+}", batch)
    app.router.add_static("/static/viewer/", STATIC)
    return app


def chromium_cpu() -> float:
    """CPU seconds of every process below this one (Chromium's and Playwright's driver)."""
    return sum(cpu_seconds(pid) for pid in descendants(os.getpid()))


async def run(args: argparse.Namespace) -> int:
    packed = batches(args.instances)
    bodies = {
        coding: [encode(b) if encode else b for b in packed] for coding, encode in ENCODERS.items()
    }
    bodies[DELTA8] = [zstd_fast(b) for b in batches(args.instances, "delta8")]
    len_packed = sum(map(len, packed))
    runner = web.AppRunner(application(bodies))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    results: dict[str, list[tuple[float, float]]] = {coding: [] for coding in bodies}
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.evaluate("([c, n]) => window.load(c, n)", ["identity", len(packed)])
            for repeat in range(args.repeats):
                progress(f"repeat {repeat + 1}/{args.repeats}")
                for coding in bodies:
                    before = chromium_cpu()
                    wall, taken = await page.evaluate(
                        "([c, n]) => window.load(c, n)", [coding, len(packed)]
                    )
                    results[coding].append((wall, chromium_cpu() - before))
                    # the body as it came, or (delta8) the frames' values rebuilt in a new buffer
                    whole = args.instances * 512 * 512 * 2 if coding == DELTA8 else len_packed
                    assert taken == whole, (coding, taken)
            await browser.close()
    finally:
        await runner.cleanup()
    print(report(args, packed, bodies, results))
    return 0


def report(
    args: argparse.Namespace,
    packed: list[bytes],
    bodies: dict[str, list[bytes]],
    results: dict[str, list[tuple[float, float]]],
) -> str:
    med = statistics.median
    lines = [
        f"\nChromium taking in {args.instances} CT frames of 512^2"
        f" ({sum(map(len, packed)) / 1e6:.1f} MB of values, {len(packed)} batches)"
        f" in the viewer's workers; medians of {args.repeats};"
        f" load average {os.getloadavg()[0]:.1f}",
        f"{'coding':<12}{'on the wire':>12}{'wall ms':>10}{'Chromium CPU s':>16}  (each repeat)",
    ]
    for coding, runs in results.items():
        wire = sum(map(len, bodies[coding])) / 1e6
        each = " ".join(f"{cpu:.2f}" for _, cpu in runs)
        lines.append(
            f"{coding:<12}{wire:>9.1f} MB{med(w for w, _ in runs):>10.0f}"
            f"{med(c for _, c in runs):>16.2f}  ({each})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=150, help="slices of the CT")
    parser.add_argument("--repeats", type=int, default=7, help="loads of each coding (medians)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
