"""Viewer benchmark: a never-opened CT in headless Chromium, beside the same bytes from Orthanc.

Run from the repository root::

    .venv/bin/python bench/viewer_speed.py [--instances 150] [--studies 3] [--cr-size 3000]

1. Starts a throwaway ``ManagedOrthanc`` and the real app in a child process (``teleread
   serve``'s defaults: web processes, render workers, frame cache), seeds a clinic and a
   regional specialist, C-STOREs ``--studies`` CT studies of ``--instances`` 512x512 slices and
   one ``--cr-size`` square CR, and waits until each is a consultation on the worklist.
2. Debian's Chromium (headless, as the browser tests run it, 1440x900) logs in through the login
   page. Each CT is then opened in the viewer once, never before (no browser or server cache
   holds it). The figures come from the page's own ``performance`` marks, on the page's clock
   (0 = navigation start): ``teleread:image-shown`` (viewer/static/viewport.js, a frame's pixels
   on the canvas) and ``teleread:frame-loaded`` (viewer/static/frames.js, a frame decoded and in
   the page's cache).

   - *first image*: navigation start -> first ``image-shown``;
   - *whole series*: navigation start -> the last frame of the series in the page's cache;
   - *scroll*: once loaded, one ArrowDown key event per slice through the series, each timed from
     the event to the canvas drawn (a 1-pixel read-back forces the raster); images/s = slices /
     the sum of those times;
   - *window/level repaint*: the preset keys 1..8 in turn (each a new window over the whole
     frame: lookup table, windowing, draw), timed the same way, p95; on the CT and on the CR.

   Per opening it also prints the CPU seconds of the app, Orthanc and Chromium until the series
   is loaded, and the page's main-thread time over the same span (DevTools
   ``Performance.getMetrics``: all tasks, script, layout): the viewer fetches frames in Web
   Workers, so what is left on the main thread is the page's own work. And how many ``values``
   answers came in each Content-Encoding (the workers' requests included): Chromium's own
   Accept-Encoding gets zstd; ``--accept-encoding 'gzip, deflate, br'`` measures gzip instead,
   ``--identity`` no coding at all.

3. The floor: a second browser context on Orthanc's own origin (HTTP basic auth) fetches the same
   study straight from Orthanc, ``/instances/{id}/file`` (the stored file, Orthanc's cheapest
   answer) for each slice, all requested at once (Chromium runs six at a time per host over
   HTTP/1.1, as for teleread): the first and the last frame's arrival after the first request.
   No page, no manifest, no decoding or windowing: what the loopback and Orthanc cost the same
   browser for the same bytes.

Named viewer_speed.py, not viewer.py as issue 16 wrote: a ``bench/viewer.py`` would shadow the
repository's ``viewer`` package for every script in this folder (bench/render.py imports it).

Everything runs on one machine (the browser, the app, Orthanc and this script share its cores).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from ingest import (
    CALLED_AET,
    SPECIALIST,
    SPECIALIST_PASSWORD,
    AppHandle,
    app_settings,
    cpu_seconds,
    free_port,
    login,
    orthanc_pid,
    orthanc_session,
    percentile,
    progress,
    seed_database,
)
from playwright.async_api import Browser, BrowserContext, Page, Response, async_playwright
from render import consultation_of, descendants, send

from service.demo.synthetic import StudySpec, make_study
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    load_or_create_credentials,
)

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--headless=new", "--disable-gpu", "--disable-quic"]
SCREEN = {"width": 1440, "height": 900}
TARGETS = {"first": 300.0, "whole": 1500.0, "scroll": 60.0, "wl_ct": 16.0, "wl_cr": 33.0}

# In the page: wait for the series in view to be in the page's cache, then read the marks.
LOADED = """() => {
  const s = document.getElementById("prefetch-status");
  return s && s.dataset.total && s.dataset.done === s.dataset.total;
}"""
MARKS = r"""() => {
  const at = (name) => performance.getEntriesByName(name).map((e) => e.startTime);
  const resources = performance.getEntriesByType("resource");
  const manifest = resources.find((e) => /\/api\/consultations\/\d+\/viewer$/.test(e.name));
  const values = resources.filter((e) => e.name.endsWith("/values"));
  const firstValues = values.sort((a, b) => a.startTime - b.startTime)[0];
  const navigation = performance.getEntriesByType("navigation")[0];
  return {
    shown: at("teleread:image-shown"),
    manifests: resources.filter((e) => /\/api\/consultations\/\d+\/viewer$/.test(e.name)).length,
    loaded: at("teleread:frame-loaded"),
    steps: {
      "page answered": navigation.responseEnd,
      "page parsed": navigation.domContentLoadedEventEnd,
      "manifest asked": manifest ? manifest.startTime : NaN,
      "manifest answered": manifest ? manifest.responseEnd : NaN,
      "first values asked": firstValues ? firstValues.startTime : NaN,
      "first values answered": firstValues ? firstValues.responseEnd : NaN,
    },
  };
}"""
# Time `count` synthetic key presses, each from the event to the canvas rastered.
KEYS = """async ([keys, count]) => {
  const canvas = document.querySelector("#viewport-0 canvas");
  const ctx = canvas.getContext("2d");
  canvas.focus();
  const times = [];
  for (let i = 0; i < count; i += 1) {
    const key = keys[i % keys.length];
    const start = performance.now();
    canvas.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }));
    ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - start);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const root = document.getElementById("viewport-0");
  return { times, state: root.dataset.state, slice: root.dataset.slice };
}"""
# In Orthanc's origin: every frame's raw bytes, all asked for at once.
FLOOR = """async (ids) => {
  const start = performance.now();
  const arrivals = await Promise.all(ids.map(async (id) => {
    const response = await fetch(`/instances/${id}/file`);
    const body = await response.arrayBuffer();
    if (!response.ok) throw new Error(`${id}: ${response.status}`);
    return [performance.now() - start, body.byteLength];
  }));
  const sent = performance.getEntriesByType("resource").filter((e) => e.startTime >= start);
  performance.clearResourceTimings();
  return { arrivals, transferred: sent.reduce((n, e) => n + e.encodedBodySize, 0) };
}"""


@dataclass(frozen=True)
class UncompressedOrthancConfig(OrthancConfig):
    """The service's Orthanc configuration, except that Orthanc never gzips an answer: it would
    otherwise gzip each file for the browser (36 of 79 MB on the wire), and the floor would be
    Orthanc's compression time, not the cost of the bytes. (The service asks Orthanc for
    identity encoding anyway.)"""

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "HttpCompressionEnabled": False}


async def start_uncompressed_orthanc(directory: Path) -> ManagedOrthanc:
    """As bench/ingest.py ``start_orthanc`` (StableAge 1 s), with ``UncompressedOrthancConfig``."""
    orthanc_dir = directory / "orthanc"
    config = UncompressedOrthancConfig(
        directory=orthanc_dir,
        http_port=free_port(),
        dicom_port=free_port(),
        aet=CALLED_AET,
        stable_age=1,
        plugins_dir=Path("/usr/share/orthanc/plugins"),
        credentials=load_or_create_credentials(orthanc_dir),
    )
    orthanc = ManagedOrthanc(config)
    await orthanc.start()
    return orthanc


@dataclass
class Opening:
    """One never-opened CT in the viewer (ms on the page's clock) and its Orthanc floor."""

    first: float
    whole: float
    scroll_rate: float
    scroll_p95: float
    wl_p95: float
    floor_first: float = 0.0
    floor_whole: float = 0.0
    floor_bytes: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    floor_cpu: dict[str, float] = field(default_factory=dict)
    main_thread: dict[str, float] = field(default_factory=dict)
    codings: dict[str, int] = field(default_factory=dict)


class CpuGroups:
    """CPU seconds of the app (all its processes), Orthanc and Chromium (every process) between
    ``start()`` and ``stop()``: where the time of an opening went, on a machine whose load
    (other work on the same cores) makes wall-clock figures vary from run to run."""

    def __init__(self, app: int, orthanc: int | None) -> None:
        self.app, self.orthanc = app, orthanc
        self.before: dict[str, float] = {}

    def groups(self) -> dict[str, list[int]]:
        app = [self.app, *descendants(self.app)]
        mine = [p for p in descendants(os.getpid()) if p not in app and p != self.orthanc]
        return {"app": app, "Orthanc": [self.orthanc] if self.orthanc else [], "Chromium": mine}

    def read(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups().items()}

    def start(self) -> None:
        self.before = self.read()

    def stop(self) -> dict[str, float]:
        now = self.read()
        return {name: now[name] - self.before.get(name, 0.0) for name in now}


@dataclass
class Figures:
    openings: list[Opening] = field(default_factory=list)
    cr_first: float = 0.0
    cr_wl_p95: float = 0.0
    cr_floor: float = 0.0


async def open_viewer(page: Page, base: str, consultation: int) -> tuple[float, float]:
    """Open the viewer on a consultation; (first image, whole series) in ms after navigation."""
    await page.goto(f"{base}/viewer/{consultation}")
    await page.wait_for_function(LOADED, timeout=120_000, polling=50)
    marks = await page.evaluate(MARKS)
    if not marks["shown"] or not marks["loaded"]:
        raise RuntimeError(f"no performance marks in the viewer: {marks}")
    steps = ", ".join(f"{name} {ms:.0f}" for name, ms in marks["steps"].items())
    progress(
        f"  ms after navigation: {steps}, shown {min(marks['shown']):.0f}"
        f" ({marks['manifests']} manifest request(s))"
    )
    return min(marks["shown"]), max(marks["loaded"])


async def timed_keys(page: Page, keys: Sequence[str], count: int) -> list[float]:
    result = await page.evaluate(KEYS, [list(keys), count])
    if result["state"] != "shown":
        raise RuntimeError(f"the viewport is {result['state']!r} after the key presses")
    return result["times"]


class MainThread:
    """The page's main-thread time (Chromium's DevTools ``Performance.getMetrics``: all tasks,
    and the script and layout among them) over an opening: what the page's own thread spent
    while frames came in, beside the CPU of every Chromium process (``CpuGroups``)."""

    NAMES = {"TaskDuration": "tasks", "ScriptDuration": "script", "LayoutDuration": "layout"}

    def __init__(self, page: Page) -> None:
        self.page = page
        self.before: dict[str, float] = {}
        self.cdp: Any = None

    async def read(self) -> dict[str, float]:
        metrics = (await self.cdp.send("Performance.getMetrics"))["metrics"]
        return {m["name"]: m["value"] for m in metrics if m["name"] in self.NAMES}

    async def start(self) -> None:
        """Counting starts with ``Performance.enable``, so one session spans the opening."""
        self.cdp = await self.page.context.new_cdp_session(self.page)
        await self.cdp.send("Performance.enable")
        self.before = await self.read()

    async def stop(self) -> dict[str, float]:
        now = await self.read()
        await self.cdp.detach()
        # A navigation may start a new document whose counters start at zero.
        return {
            label: now.get(name, 0.0) - self.before.get(name, 0.0)
            if now.get(name, 0.0) >= self.before.get(name, 0.0)
            else now.get(name, 0.0)
            for name, label in self.NAMES.items()
        }


async def measure_ct(
    page: Page, base: str, consultation: int, slices: int, cpu: CpuGroups
) -> Opening:
    main_thread = MainThread(page)
    codings: dict[str, int] = {}

    def tally(response: Response) -> None:
        """The Content-Encoding of each values answer (the workers' requests included)."""
        if urlsplit(response.url).path.endswith("/values"):
            coding = response.headers.get("content-encoding", "identity")
            codings[coding] = codings.get(coding, 0) + 1

    page.on("response", tally)
    await main_thread.start()
    cpu.start()
    first, whole = await open_viewer(page, base, consultation)
    used = cpu.stop()
    thread = await main_thread.stop()
    page.remove_listener("response", tally)
    await page.keyboard.press("Home")
    steps = await timed_keys(page, ["ArrowDown"], slices - 1)
    presets = await timed_keys(page, [str(k) for k in range(1, 9)], 96)
    return Opening(
        first=first,
        whole=whole,
        scroll_rate=len(steps) / (sum(steps) / 1000),
        scroll_p95=percentile(steps, 95),
        wl_p95=percentile(presets, 95),
        cpu=used,
        main_thread=thread,
        codings=codings,
    )


async def floor(page: Page, ids: Sequence[str]) -> tuple[float, float, int]:
    """(first frame, last frame) in ms and bytes, fetched straight from Orthanc by the page."""
    result = await page.evaluate(FLOOR, list(ids))
    arrivals = result["arrivals"]
    progress(f"Orthanc sent {result['transferred'] / 1e6:.1f} MB on the wire")
    return (
        min(t for t, _ in arrivals),
        max(t for t, _ in arrivals),
        sum(n for _, n in arrivals),
    )


async def orthanc_ids(orthanc: aiohttp.ClientSession, base: str, datasets: list) -> list[str]:
    ids = []
    for ds in datasets:
        async with orthanc.post(f"{base}/tools/lookup", data=str(ds.SOPInstanceUID)) as found:
            ids.append((await found.json())[0]["ID"])
    return ids


async def log_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/login?next=/worklist")
    await page.fill("#login-username", SPECIALIST)
    await page.fill("#login-password", SPECIALIST_PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}/worklist")


def accept_encoding(args: argparse.Namespace) -> dict[str, str] | None:
    """The viewer page's Accept-Encoding when the command line sets one, else Chromium's own
    (``gzip, deflate, br, zstd`` to 127.0.0.1 in Chromium 156)."""
    if args.identity:
        return {"Accept-Encoding": "identity"}
    if args.accept_encoding:
        return {"Accept-Encoding": args.accept_encoding}
    return None


async def browse(
    args: argparse.Namespace,
    browser: Browser,
    base: str,
    orthanc_url: str,
    credentials: Any,
    studies: list[tuple[int, list[str]]],
    cr: tuple[int, list[str]],
    cpu: CpuGroups,
) -> Figures:
    figures = Figures()
    teleread: BrowserContext = await browser.new_context(
        viewport=SCREEN,
        extra_http_headers=accept_encoding(args),
    )
    direct: BrowserContext = await browser.new_context(
        viewport=SCREEN,
        http_credentials={"username": credentials.username, "password": credentials.password},
    )
    try:
        page = await teleread.new_page()
        await log_in(page, base)
        orthanc_page = await direct.new_page()
        await orthanc_page.goto(f"{orthanc_url}/system")
        for number, (consultation, ids) in enumerate(studies, 1):
            progress(f"opening CT {number}/{len(studies)} in the viewer")
            opening = await measure_ct(page, base, consultation, len(ids), cpu)
            cpu.start()
            opening.floor_first, opening.floor_whole, opening.floor_bytes = await floor(
                orthanc_page, ids
            )
            opening.floor_cpu = cpu.stop()
            figures.openings.append(opening)
        progress("opening the CR")
        consultation, ids = cr
        figures.cr_first, _ = await open_viewer(page, base, consultation)
        figures.cr_wl_p95 = percentile(
            await timed_keys(page, [str(k) for k in range(1, 9)], 48), 95
        )
        _, figures.cr_floor, _ = await floor(orthanc_page, ids)
    finally:
        await teleread.close()
        await direct.close()
    return figures


def row(name: str, teleread: float, floor_: float | None, target: str, unit: str) -> str:
    ratio = f"{teleread / floor_:>9.2f}x" if floor_ else f"{'-':>10}"
    floor_text = f"{floor_:>10.1f}" if floor_ is not None else f"{'-':>10}"
    return f"{name:<34}{teleread:>10.1f}{floor_text}{target:>12}{ratio}  {unit}"


def report(args: argparse.Namespace, figures: Figures) -> str:
    o = figures.openings
    med = statistics.median
    lines = [
        f"\nviewer benchmark: {platform.node()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Chromium headless {SCREEN['width']}x{SCREEN['height']}; "
        f"{len(o)} never-opened CT of {args.instances} x 512^2 (medians), one CR "
        f"{args.cr_size}^2; browser, app and Orthanc on the same machine",
        f"{'figure':<34}{'teleread':>10}{'Orthanc':>10}{'target':>12}{'ratio':>10}",
        row(
            "first image (ms)",
            med(x.first for x in o),
            med(x.floor_first for x in o),
            "<= 300",
            "ms after navigation; floor: first file",
        ),
        row(
            "whole series in the browser (ms)",
            med(x.whole for x in o),
            med(x.floor_whole for x in o),
            "<= 1500",
            "ms; floor: every file",
        ),
        row(
            "scroll (images/s)",
            med(x.scroll_rate for x in o),
            None,
            ">= 60",
            f"p95 {med(x.scroll_p95 for x in o):.1f} ms a slice",
        ),
        row("W/L repaint p95, 512^2 CT (ms)", med(x.wl_p95 for x in o), None, "<= 16", ""),
        row(f"W/L repaint p95, {args.cr_size}^2 CR (ms)", figures.cr_wl_p95, None, "<= 33", ""),
        row("CR first image (ms)", figures.cr_first, figures.cr_floor, "-", "information"),
        "\neach opening: first / whole ms (floor first / whole ms), scroll images/s, W/L p95 ms;"
        " CPU s until loaded (and for the floor); the page's main thread until loaded, s",
    ]
    lines += [
        f"  {x.first:7.0f} / {x.whole:6.0f}  ({x.floor_first:5.0f} / {x.floor_whole:5.0f}, "
        f"{x.floor_bytes / 1e6:.1f} MB)  {x.scroll_rate:6.0f}/s  {x.wl_p95:5.1f};  "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in x.cpu.items())
        + " (floor: "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in x.floor_cpu.items())
        + "); main thread "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in x.main_thread.items())
        + "; values answers "
        + ", ".join(f"{n} {coding}" for coding, n in sorted(x.codings.items()))
        for x in o
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-viewer-"))
    handle: AppHandle | None = None
    orthanc_process = None
    try:
        orthanc_process = await start_uncompressed_orthanc(root)
        settings = app_settings(
            root, orthanc_process, argparse.Namespace(stable_age=1, poll_interval=0.1)
        )
        seed_database(settings, senders=1)
        handle = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await handle.start()
        cts = [
            make_study(
                StudySpec(f"BENCHV{n}", f"BENCH^VIEWER{n}", "CT", "HEAD", args.instances, rows=512)
            )
            for n in range(args.studies)
        ]
        cr = make_study(StudySpec("BENCHVCR", "BENCH^CR", "CR", "CHEST", 1, rows=args.cr_size))
        progress(f"sending {args.studies} CT of {args.instances} slices and a CR")
        for study in (*cts, cr):
            await send(study, orthanc_process.config.dicom_port)
        async with (
            aiohttp.ClientSession() as session,
            orthanc_session(orthanc_process) as orthanc,
        ):
            auth = {"Authorization": f"Bearer {await login(session, handle.url)}"}
            opened = []
            for study in (*cts, cr):
                uid = str(study[0].StudyInstanceUID)
                consultation = await consultation_of(session, handle.url, auth, uid)
                ids = await orthanc_ids(orthanc, orthanc_process.url, study)
                opened.append((consultation, ids))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                figures = await browse(
                    args,
                    browser,
                    handle.url,
                    orthanc_process.url,
                    orthanc_process.config.credentials,
                    opened[:-1],
                    opened[-1],
                    CpuGroups(handle.pid or os.getpid(), orthanc_pid(orthanc_process)),
                )
            finally:
                await browser.close()
        print(report(args, figures))
        return 0
    finally:
        if handle is not None:
            await handle.stop()
        if orthanc_process is not None:
            await orthanc_process.kill()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=150, help="slices of each CT")
    parser.add_argument("--studies", type=int, default=3, help="never-opened CTs (medians)")
    parser.add_argument("--cr-size", type=int, default=3000, help="rows = columns of the CR")
    parser.add_argument(
        "--identity",
        action="store_true",
        help="the viewer's page asks teleread for no compression (what it costs on loopback)",
    )
    parser.add_argument(
        "--accept-encoding",
        help="the viewer page's Accept-Encoding, e.g. 'gzip, deflate, br' for gzip values",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
