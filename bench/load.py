"""Load benchmark: readers polling the worklist while clinics C-STORE, against a real service.

Run from the repository root::

    .venv/bin/python bench/load.py [--readers 50] [--clinics 10] [--seconds 30] [--rows 20000]

1. Seeds ``--rows`` consultations as bench/worklist.py does (one regional centre, clinics with
   AE titles ``BENCH_C002``..., 10 specialists), then starts a throwaway ``ManagedOrthanc`` and
   the real app in a child process (``create_app``; it registers the clinics' AE titles with
   Orthanc at start-up). The app's change follower turns what the clinics send into
   consultations, as in production.
2. Logs in ``--readers`` sessions (5 per specialist account; one after the other, outside the
   timed phase: login figures are bench/logins.py's).
3. For ``--seconds``: every reader polls ``GET /api/worklist?limit=50`` (a keep-alive client of its
   own, ``--poll`` seconds between the end of one answer and the next request, with jitter), and
   ``--clinics`` clinics each C-STORE studies of ``--instances`` CT images (``--size`` pixels
   square, generated before the timed phase) from their own AE title with dcmtk's
   ``storescu``, a process per study (one association), as modalities do.
4. Prints the worklist p50/p95/p99/max, the requests answered and refused, the C-STORE
   instances and studies per second, the audit records and the transactions they took (group
   commit), and the machine's load average before and after.

Figures are printed, never asserted (the issue's target: worklist p95 <= 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from ingest import (
    AppHandle,
    managed_settings,
    percentile,
    progress,
    start_orthanc,
    verdict,
)
from worklist import PASSWORD, seed

from service.demo.synthetic import StudySpec, make_study, write_study

TARGET_WORKLIST_P95 = 100.0  # ms, under the load of 50 readers and 10 C-STORE clinics


def generate(root: Path, clinics: int, studies: int, instances: int, size: int) -> list[list]:
    """Per clinic, ``studies`` study directories of Part-10 files (before timing: generating
    pixels must not compete with what is measured)."""
    folders: list[list[Path]] = []
    for k in range(clinics):
        folders.append([])
        for number in range(studies):
            spec = StudySpec(
                patient_id=f"LOAD{k:02d}{number:04d}",
                patient_name=f"LOAD^PATIENT{k:02d}{number:04d}",
                modality="CT",
                body_part="CHEST",
                instances=instances,
                rows=size,
                columns=size,
            )
            folder = root / f"clinic{k:02d}" / f"study{number:04d}"
            write_study(make_study(spec), folder)
            folders[k].append(folder)
    return folders


class Sending:
    """The clinics: each runs dcmtk's ``storescu`` (a process of its own, like a modality), one
    association per study, study after study until the deadline; counts what was stored in
    the timed window."""

    def __init__(self, folders: list[list[Path]], instances: int, port: int) -> None:
        self.folders, self.instances, self.port = folders, instances, port
        self.sent = self.failed = self.studies = self.repeats = 0
        self.errors: list[str] = []

    async def run(self, stop: float) -> None:
        await asyncio.gather(*(self._clinic(k, stop) for k in range(len(self.folders))))

    async def _clinic(self, k: int, stop: float) -> None:
        aet = f"BENCH_C{k + 2:03d}"  # facilities 2.. of the seed
        number = 0
        while time.monotonic() < stop:
            folder = self.folders[k][number % len(self.folders[k])]
            self.repeats += number >= len(self.folders[k])
            number += 1
            process = await asyncio.create_subprocess_exec(
                "storescu", "-aet", aet, "-aec", "TELEREAD", "-to", "30", "-ta", "30",
                "+sd", "127.0.0.1", str(self.port), str(folder),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, stderr = await process.communicate()
            if time.monotonic() > stop:
                return  # finished after the window: not counted
            if process.returncode == 0:
                self.sent += self.instances
                self.studies += 1
            else:
                self.failed += self.instances
                self.errors.append(f"{aet}: {stderr.decode(errors='replace').strip()[:200]}")


async def reader(
    url: str, token: str, stop: float, poll: float, latencies: list[float], refused: list[int]
) -> None:
    """One reader's browser: poll the worklist until ``stop`` (monotonic)."""
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(token)
    await asyncio.sleep(rng.random() * poll)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while time.monotonic() < stop:
            started = time.perf_counter()
            async with session.get(
                url + "/api/worklist", params={"limit": "50"}, headers=headers
            ) as response:
                await response.read()
                status = response.status
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                refused.append(status)
            await asyncio.sleep(poll * (0.5 + rng.random()))


async def login(session: aiohttp.ClientSession, url: str, username: str) -> str:
    body = {"username": username, "password": PASSWORD}
    async with session.post(url + "/api/login", json=body) as response:
        response.raise_for_status()
        return (await response.json())["token"]


def audit_figures(path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        (records,) = conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()
        (consultations,) = conn.execute("SELECT COUNT(*) FROM consultations").fetchone()
    conn.close()
    return records, consultations


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-load-"))
    lines: list[str] = []
    try:
        orthanc = await start_orthanc(root, 2)
        settings = managed_settings(root, orthanc)
        progress(f"generating {args.clinics} x {args.studies} studies of {args.instances} images")
        folders = generate(root / "studies", args.clinics, args.studies, args.instances, args.size)
        progress(f"seeding {args.rows} consultations")
        seed(settings, args.rows, max(args.clinics + 1, 11), datetime.now(UTC))
        app = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await app.start()
        try:
            progress(f"logging in {args.readers} readers")
            async with aiohttp.ClientSession() as session:
                tokens = [
                    await login(session, app.url, f"bench-specialist-{k % 10 + 1:02d}")
                    for k in range(args.readers)
                ]
            records_before, consultations_before = audit_figures(settings.database_path)
            load_before = os.getloadavg()
            sending = Sending(folders, args.instances, orthanc.config.dicom_port)
            latencies: list[float] = []
            refused: list[int] = []
            progress(f"{args.readers} readers and {args.clinics} clinics for {args.seconds} s")
            stop = time.monotonic() + args.seconds
            await asyncio.gather(
                sending.run(stop),
                *(reader(app.url, t, stop, args.poll, latencies, refused) for t in tokens),
            )
            load_after = os.getloadavg()
            await asyncio.sleep(args.stable_wait)  # let the follower catch up before counting
            records_after, consultations_after = audit_figures(settings.database_path)
        finally:
            await app.stop()
            await orthanc.kill()
        elapsed = args.seconds
        p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
        lines += [
            f"teleread load benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
            f"{args.readers} readers polling GET /api/worklist?limit=50 every ~{args.poll} s; "
            f"{args.clinics} clinics C-STOREing CT studies of {args.instances} x {args.size}^2 "
            f"images; {args.seconds} s; {args.rows} consultations seeded; app in a child process",
            f"load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
            f"after: {', '.join(f'{x:.2f}' for x in load_after)}",
            "",
            f"worklist: {len(latencies)} answered, {len(refused)} refused "
            f"{sorted(set(refused)) or ''}; p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
            f"p99 {p99:.1f} ms, max {max(latencies, default=0):.1f} ms",
            f"C-STORE: {sending.sent} instances in {sending.studies} studies in {elapsed:.1f} s "
            f"= {sending.sent / elapsed:.1f} instances/s, {sending.studies / elapsed:.2f} "
            f"studies/s (stored within the window); {sending.failed} failed; "
            f"{sending.repeats} studies sent again (the generated ones ran out)",
            f"consultations created by the follower: {consultations_after - consultations_before}",
            f"audit records written: {records_after - records_before}",
            "",
            f"target: worklist p95 <= {TARGET_WORKLIST_P95:.0f} ms under this load: "
            f"{p95:.1f} ms, {verdict(p95 <= TARGET_WORKLIST_P95)}",
        ]
        if sending.errors:
            lines.append(f"first C-STORE errors: {sending.errors[:3]}")
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\n".join(lines), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=50, help="polling readers (50)")
    parser.add_argument("--clinics", type=int, default=10, help="C-STORE clinics (10)")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed phase (30)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls (1.0)")
    parser.add_argument("--rows", type=int, default=20_000, help="consultations seeded (20000)")
    parser.add_argument("--instances", type=int, default=10, help="images per study (10)")
    parser.add_argument("--studies", type=int, default=30, help="studies generated per clinic (30)")
    parser.add_argument("--size", type=int, default=256, help="image rows and columns (256)")
    parser.add_argument(
        "--stable-wait", type=float, default=3.0, help="seconds to let ingest finish (3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
