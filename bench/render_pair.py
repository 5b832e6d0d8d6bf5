"""Cold renders of two builds of teleread, paired, beside Orthanc's own cold renders.

Run from the repository root::

    .venv/bin/python bench/render_pair.py --a PYTHONPATH=/tmp/base --b "" [--rounds 8]

On a machine that other programs load, bench/render.py's cold figure moves between runs a
minute apart more than a change moves it. This script compares two builds under the same load:

1. Starts a throwaway ``ManagedOrthanc`` and two apps in front of it, each in child processes
   of its own (default web processes, rendering in-process), started with the environment
   variables ``--a`` and ``--b`` add (``NAME=VALUE,NAME=VALUE``; ``PYTHONPATH`` pointing at
   an extracted tree, e.g. ``git archive BASE service viewer worklists | tar -x -C /tmp/base``,
   runs that code). Each finds the Orthanc's storage area as bench/render.py's app does
   (``--over-http``: neither does).
2. C-STOREs ``--rounds`` CT studies of ``--instances`` 512x512 slices; each app reads each
   study's series metadata (its layout known, as once its first image is shown); then waits
   until both apps and Orthanc are idle (the apps' background ingest of every study done).
3. Per study: A and B each render every frame once (JPEG, window 40/400, 8 concurrent
   clients; the order alternates between studies), then Orthanc renders them; renders/s and
   the CPU per request of each app's processes and of Orthanc. With ``--hot``, each then renders
   the same frames twice over at 32 concurrent clients to warm every web process's cache, then
   twice over again, measured (Orthanc's files are in its storage cache by then), as
   bench/render.py's hot case but paired.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import aiohttp
from ingest import (
    AppHandle,
    app_settings,
    cpu_seconds,
    login,
    orthanc_pid,
    orthanc_session,
    progress,
    seed_database,
    start_orthanc,
)
from render import (
    beside_orthanc,
    consultation_of,
    descendants,
    every_web_process_up,
    frames_of,
    load,
    send,
)

from service.demo.synthetic import StudySpec, make_study

JPEG = {"Accept": "image/jpeg"}


def environment(spec: str) -> dict[str, str]:
    """``NAME=VALUE,NAME=VALUE`` as a dictionary."""
    return dict(pair.split("=", 1) for pair in spec.split(",") if pair)


async def start_app(root: Path, orthanc, extra: dict[str, str], over_http: bool) -> AppHandle:
    settings = app_settings(root, orthanc, argparse.Namespace(stable_age=1, poll_interval=0.1))
    settings = replace(settings, web_processes=0, render_workers=0)
    seed_database(settings, senders=1)
    if not over_http:
        beside_orthanc(settings, orthanc)
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        handle = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await handle.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    await every_web_process_up(handle.url)
    return handle


async def retried(make, attempts: int = 5):
    """Orthanc 1.10 closes a keep-alive connection idle for ~0.8 s; the pool may race it."""
    for _ in range(attempts - 1):
        try:
            return await make()
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            await asyncio.sleep(0.1)
    return await make()


def cpu_of(pids: Sequence[int | None]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def settled(pids: Sequence[int | None], busy: float = 0.1, limit: float = 180.0) -> float:
    """Wait until ``pids`` together use less than ``busy`` of a core over a second (at most
    ``limit`` seconds); the seconds waited.

    Each app ingests every study it is sent (file checks, the stored layout built from Orthanc's
    metadata, which makes Orthanc open every file) in the background after the consultation is
    listed; measured over that, the first studies' cold figures counted the other studies'
    ingest in the apps' and Orthanc's CPU.
    """
    start = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - start < limit:
        before = cpu_of(pids)
        await asyncio.sleep(1.0)
        if cpu_of(pids) - before < busy:
            break
    return asyncio.get_running_loop().time() - start


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-pair-"))
    orthanc = await start_orthanc(root, stable_age=1)
    apps: dict[str, AppHandle] = {}
    try:
        for name, spec in (("A", args.a), ("B", args.b)):
            (root / name).mkdir()
            apps[name] = await start_app(root / name, orthanc, environment(spec), args.over_http)
        studies = [
            make_study(StudySpec(f"PAIR{i}", "BENCH^PAIR", "CT", "HEAD", args.instances, rows=512))
            for i in range(args.rounds)
        ]
        progress(f"sending {args.rounds} CT studies of {args.instances} slices")
        for study in studies:
            await send(study, orthanc.config.dicom_port)
        await measure(args, apps, orthanc, studies)
    finally:
        for handle in apps.values():
            await handle.stop()
        await orthanc.kill()
        shutil.rmtree(root, ignore_errors=True)
    return 0


async def measure(args, apps: dict[str, AppHandle], orthanc, studies: list) -> None:
    rates: dict[str, list[float]] = {"A": [], "B": [], "Orthanc": []}
    cpu: dict[str, list[float]] = {"A": [], "B": [], "Orthanc": []}
    hot: dict[str, list[float]] = {"A": [], "B": [], "Orthanc": []}
    async with orthanc_session(orthanc) as archive:
        sessions = {
            name: aiohttp.ClientSession(
                base_url=handle.url, connector=aiohttp.TCPConnector(limit=64)
            )
            for name, handle in apps.items()
        }
        try:
            headers = {
                name: {"Authorization": f"Bearer {await login(session, '')}", **JPEG}
                for name, session in sessions.items()
            }
            frames = []
            for study in studies:
                found = await retried(lambda s=study: frames_of(None, archive, orthanc.url, s))
                frames.append(found)
                series = found[0].teleread.split("/instances/")[0]
                for name, session in sessions.items():
                    uid = str(study[0].StudyInstanceUID)
                    await consultation_of(session, "", headers[name], uid)
                    async with session.get(series + "/metadata", headers=headers[name]) as answer:
                        answer.raise_for_status()
            everyone = [orthanc_pid(orthanc)]
            for handle in apps.values():
                everyone += [handle.pid, *descendants(handle.pid or os.getpid())]
            progress(f"background ingest settled after {await settled(everyone):.0f} s")
            for number, found in enumerate(frames):
                order = ("A", "B") if number % 2 == 0 else ("B", "A")
                for name in (*order, "Orthanc"):
                    if name == "Orthanc":
                        pids = [orthanc_pid(orthanc)]
                        urls, session, sent = [f.orthanc for f in found], archive, JPEG
                    else:
                        pid = apps[name].pid
                        pids = [pid, *descendants(pid or os.getpid())]
                        urls, session, sent = [f.teleread for f in found], sessions[name], None
                    before = cpu_of(pids)
                    result = await retried(
                        lambda u=urls, s=session, h=sent or headers[name], n=name: load(
                            s, u, h, 8, n
                        )
                    )
                    cpu[name].append((cpu_of(pids) - before) * 1000 / len(urls))
                    rates[name].append(result.rate)
                    if args.hot:  # the same frames again, decoded in every web process
                        await load(session, urls * 2, sent or headers[name], 32, "warm")
                        again = await retried(
                            lambda u=urls, s=session, h=sent or headers[name], n=name: load(
                                s, u * 2, h, 32, n
                            )
                        )
                        hot[name].append(again.rate)
                print(
                    f"study {number + 1}: "
                    + "  ".join(
                        f"{name} {rates[name][-1]:5.0f}/s {cpu[name][-1]:.2f} ms" for name in rates
                    )
                    + (
                        "  hot 32: " + "  ".join(f"{n} {hot[n][-1]:5.0f}/s" for n in hot)
                        if args.hot
                        else ""
                    )
                    + f"  (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        finally:
            for session in sessions.values():
                await session.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    faster = sum(b > a for a, b in zip(rates["A"], rates["B"], strict=True))
    print(
        f"\nmedian renders/s: A {median['A']:.0f}, B {median['B']:.0f}, Orthanc "
        f"{median['Orthanc']:.0f}; A {median['A'] / median['Orthanc']:.2f}x and B "
        f"{median['B'] / median['Orthanc']:.2f}x Orthanc; B/A {median['B'] / median['A']:.2f} "
        f"(B faster in {faster} of {len(rates['A'])}); CPU per cold request (median): "
        + ", ".join(f"{name} {statistics.median(cpu[name]):.2f} ms" for name in cpu)
    )
    if args.hot:
        warm = {name: statistics.median(values) for name, values in hot.items()}
        print(
            f"median hot renders/s at 32 concurrent: A {warm['A']:.0f}, B {warm['B']:.0f}, "
            f"Orthanc {warm['Orthanc']:.0f}; A {warm['A'] / warm['Orthanc']:.2f}x and B "
            f"{warm['B'] / warm['Orthanc']:.2f}x Orthanc (B faster in "
            f"{sum(b > a for a, b in zip(hot['A'], hot['B'], strict=True))} of {len(hot['A'])})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="", help="environment of build A: NAME=VALUE,...")
    parser.add_argument("--b", default="", help="environment of build B: NAME=VALUE,...")
    parser.add_argument("--rounds", type=int, default=8, help="cold studies (pairs)")
    parser.add_argument("--instances", type=int, default=200, help="CT slices per study")
    parser.add_argument(
        "--hot", action="store_true", help="also render each study again, decoded, 32 concurrent"
    )
    parser.add_argument(
        "--over-http",
        action="store_true",
        help="both apps read cold files over HTTP only, not from Orthanc's storage area",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
