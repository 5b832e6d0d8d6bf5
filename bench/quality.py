"""QC benchmark: a year of a 50-facility consortium and the QC / recognition figures.

Run from the repository root::

    .venv/bin/python bench/quality.py [--rows 500000] [--facilities 50] [--n 50] [--rounds 3]

1. Creates the database with ``service.storage.Database`` (current migrations) and bulk-inserts,
   in one transaction, ``--rows`` consultations received over the last 365 days from
   ``--facilities`` facilities (each with its own share of poor images, so the list has members
   and suspensions), with a patient pool per facility small enough for a few percent of
   retakes, their ``turnaround_facts`` rows (received, signed, the rating and its reason) and
   their reports (about 2 % flagged for technical parameters). Peer reviews (the issue's 25,000)
   are not generated: peer review does not exist yet (issue 20 item 1).
2. Times, in this process, the monthly recomputation (the month just closed and the current
   one, then the list) and the recomputation of the whole year (``--all``), ``--rounds`` times
   each; prints the median and the spread. Target: the monthly run under 10 s.
3. Starts the real app (child process) in front of a throwaway Orthanc and times the list and
   QC requests over HTTP with one keep-alive client, p50 / p95 per request, beside Orthanc's own
   ``GET /system`` as the reference for the machine's load in the same run. Target: p95 under
   200 ms for the list and QC pages.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from ingest import AppHandle, managed_settings, orthanc_session, percentile, progress, start_orthanc

from service.auth.passwords import hash_password
from service.clock import to_iso
from service.quality import recompute as qc
from service.settings import Settings
from service.storage import Database
from worklists.recognition import RecognitionRules

PASSWORD = "bench-password-not-secret"
MANAGER = "bench-manager"
CLINIC_USER = "bench-radiographer"
TARGET_P95 = 200.0  # ms
TARGET_MONTHLY = 10.0  # s
EXAMS = {
    "CT": ("HEAD", "CHEST", "ABDOMEN", "SPINE"),
    "DX": ("CHEST", "HAND", "KNEE", "SPINE"),
    "CR": ("CHEST", "PELVIS"),
    "MR": ("HEAD", "KNEE", "SPINE"),
    "US": ("ABDOMEN", "BREAST"),
}
EXAM_ITEMS = [(m, b) for m, parts in EXAMS.items() for b in parts]
#: The issue's year: 25,000 peer reviews for 500,000 consultations.
REVIEWED_SHARE = 0.05
REASONS = ("motion", "positioning", "noise", "exposure", "artefact")


def seed(settings: Settings, args: argparse.Namespace, now: datetime) -> dict[str, int]:
    rng = random.Random(20261203)
    Database(settings.database_path).close()
    db = sqlite3.connect(settings.database_path, isolation_level=None)
    stamp = to_iso(now - timedelta(days=400))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO facilities (id, name, kind, aet, created_at) VALUES (?, ?, ?, ?, ?)",
        [(1, "Bench regional centre", "regional", "BENCH_REGIONAL", stamp)]
        + [(k, f"Bench clinic {k}", "township", f"BENCH_C{k:03d}", stamp)
           for k in range(2, args.facilities + 1)],
    )  # fmt: skip
    password = hash_password(PASSWORD)
    db.executemany(
        "INSERT INTO users (id, username, password_hash, role, facility_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(1, MANAGER, password, "manager", 1, stamp),
         (2, CLINIC_USER, password, "radiographer", 2, stamp)],
    )  # fmt: skip
    poor_share = {f: rng.choice((0.02, 0.04, 0.06, 0.09, 0.14, 0.2)) for f in range(2, 60_000)}
    ages = sorted((rng.uniform(0, 365 * 86400) for _ in range(args.rows)), reverse=True)
    patients_per_facility = max(50, args.rows // args.facilities // 3)
    batch_c: list[tuple] = []
    batch_f: list[tuple] = []
    batch_r: list[tuple] = []
    batch_p: list[tuple] = []
    for cid, age in enumerate(ages, start=1):
        received = now - timedelta(seconds=age)
        facility = rng.randint(2, args.facilities)
        modality, body_part = rng.choice(EXAM_ITEMS)
        patient = f"P{facility}-{rng.randrange(patients_per_facility)}"
        signed = received + timedelta(minutes=rng.expovariate(1 / 240))
        roll = rng.random()
        quality = "poor" if roll < poor_share[facility] else ("acceptable" if roll < 0.25 else
                                                               "good")  # fmt: skip
        reason = rng.choice(REASONS) if quality != "good" else ""
        at, signed_at = to_iso(received), to_iso(signed)
        due = to_iso(received + timedelta(days=1))
        batch_c.append((cid, facility, patient, modality, body_part, "closed", due, at, at, at))
        batch_f.append((cid, facility, modality, due, at, at, signed_at, 1, quality, reason))
        batch_r.append((cid, "signed", int(rng.random() < 0.02), signed_at, signed_at))
        if rng.random() < REVIEWED_SHARE:  # a RADPEER peer review, scored (issue 20 item 1)
            score = rng.choices((1, 2, 3, 4), weights=(90, 6, 3, 1))[0]
            significance = None if score == 1 else rng.choice("ab")
            opened = score >= 3 or significance == "b"
            discrepancy = rng.choice(("open", "closed", "closed")) if opened else None
            scored = to_iso(signed + timedelta(days=rng.uniform(1, 20)))
            batch_p.append((cid, cid, facility, 1, "general", "sampled", signed_at, 1, score,
                            significance, scored, discrepancy))  # fmt: skip
        if len(batch_c) >= 20_000 or cid == args.rows:
            db.executemany(
                "INSERT INTO consultations (id, facility_id, patient_id, modality, body_part,"
                " status, due_at, received_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch_c,
            )
            db.executemany(
                "INSERT INTO turnaround_facts (consultation_id, facility_id, modality, due_at,"
                " requested_at, received_at, signed_at, reader_id, quality, quality_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch_f,
            )
            db.executemany(
                "INSERT INTO reports (consultation_id, state, technical_flagged, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?)",
                batch_r,
            )
            db.executemany(
                "INSERT INTO peer_reviews (report_version_id, consultation_id, facility_id,"
                " reader_id, queue, origin, assigned_at, reviewer_id, score, significance,"
                " scored_at, discrepancy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch_p,
            )
            batch_c, batch_f, batch_r, batch_p = [], [], [], []
            progress(f"seeded {cid} consultations")
    db.execute("COMMIT")
    reviews = db.execute("SELECT COUNT(*) FROM peer_reviews").fetchone()[0]
    db.execute("ANALYZE")
    db.close()
    return {"consultations": args.rows, "peer reviews": reviews}


async def recomputations(settings: Settings, now: datetime, rounds: int) -> list[str]:
    """Median (min–max) seconds of the monthly run and of the whole year, in this process."""
    database = Database(settings.database_path)
    rules = RecognitionRules()
    lines = []
    try:
        months = await qc.all_months(database)
        for name, which in (("whole year (--all)", months), ("monthly run", None)):
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                outcome = await qc.recompute(database, rules, now, which)
                times.append(time.perf_counter() - start)
            rows = sum(outcome.months.values())
            changes = len(outcome.changes)
            line = (f"{name:34s} median {statistics.median(times):6.2f} s"
                    f" (min {min(times):.2f}, max {max(times):.2f}) {len(outcome.months)} months,"
                    f" {rows} score rows, {changes} list changes in the last round")  # fmt: skip
            if name == "monthly run":
                line += f"  target < {TARGET_MONTHLY:.0f} s"
            progress(line)
            lines.append(line)
        listed = await database.read(
            lambda db: db.execute("SELECT status, COUNT(*) FROM recognition GROUP BY 1").fetchall()
        )
        lines.append(f"recognition list after the runs: {dict(listed)}")
    finally:
        database.close()
    return lines


def requests_to_time(now: datetime) -> dict[str, tuple[str, str, dict[str, str]]]:
    month = {"from": to_iso(now - timedelta(days=30)), "to": to_iso(now)}
    last = now.strftime("%Y-%m")
    year = {"from_month": qc.shift(last, -11), "to_month": last}
    m, c = MANAGER, CLINIC_USER
    return {
        "page /recognition": (m, "/recognition", {}),
        "api recognition (json)": (m, "/api/recognition", {}),
        "api recognition (csv, all)": (
            m, "/api/recognition", {"format": "csv", "include_suspended": "true"}),
        "api recognition/history (200)": (m, "/api/recognition/history", {}),
        "api quality/scores one month": (
            m, "/api/quality/scores", {"from_month": last, "to_month": last}),
        "api quality/scores 12 months, all": (m, "/api/quality/scores", year),
        "api quality/scores 12 months, one": (m, "/api/quality/scores", {**year,
                                                                         "facility_id": "7"}),
        "clinic: quality/scores 12 months": (c, "/api/quality/scores", year),
        "clinic: recognition/history": (c, "/api/recognition/history", {}),
        "chart qc (12 months)": (m, "/dashboard/charts/qc.svg", month),
    }  # fmt: skip


async def timed(session, url, params, headers, n, warm) -> tuple[list[float], int]:
    times, size = [], 0
    for i in range(warm + n):
        start = time.perf_counter()
        async with session.get(url, params=params, headers=headers) as response:
            response.raise_for_status()
            size = len(await response.read())
        if i >= warm:
            times.append((time.perf_counter() - start) * 1000)
    return times, size


def line(name: str, times: list[float], size: int, target: bool = True) -> str:
    p50, p95 = percentile(times, 50), percentile(times, 95)
    verdict = ("target met" if p95 < TARGET_P95 else "target missed") if target else "reference"
    return f"{name:36s} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  {size:9d} B  {verdict}"


async def measure(app: AppHandle, orthanc, now: datetime, n: int, warm: int) -> list[str]:
    lines = []
    async with orthanc_session(orthanc) as reference:
        times, size = await timed(reference, orthanc.url + "/system", {}, {}, n, warm)
        lines.append(line("reference: Orthanc GET /system", times, size, target=False))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        tokens = {}
        for user in (MANAGER, CLINIC_USER):
            body = {"username": user, "password": PASSWORD}
            async with session.post(app.url + "/api/login", json=body) as response:
                response.raise_for_status()
                tokens[user] = (await response.json())["token"]
        for name, (user, path, params) in requests_to_time(now).items():
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            times, size = await timed(session, app.url + path, params, headers, n, warm)
            lines.append(line(name, times, size))
            progress(lines[-1])
    return lines


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-quality-"))
    try:
        now = datetime.now(UTC)
        orthanc = await start_orthanc(root, 10)
        settings = managed_settings(root, orthanc)
        started = time.perf_counter()
        seeded = seed(settings, args, now)
        fill_s = time.perf_counter() - started
        size_mb = settings.database_path.stat().st_size / 1e6
        recompute_lines = await recomputations(settings, now, args.rounds)
        app = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await app.start()
        try:
            lines = await measure(app, orthanc, now, args.n, args.warmup)
        finally:
            await app.stop()
            await orthanc.kill()
        print(f"fill: {args.rows} consultations with ratings,"
              f" {seeded['peer reviews']} scored peer reviews, {args.facilities} facilities,"
              f" {len(EXAM_ITEMS)} exam items in {fill_s:.1f} s ({size_mb:.0f} MB);"
              f" load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
        print(f"targets: monthly recomputation < {TARGET_MONTHLY:.0f} s; list and QC requests"
              f" p95 < {TARGET_P95:.0f} ms ({args.n} timed each)")  # fmt: skip
        for text in (*recompute_lines, *lines):
            print(text)
        return 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="consultations (500000)")
    parser.add_argument("--facilities", type=int, default=50, help="facilities (50)")
    parser.add_argument("--n", type=int, default=50, help="timed requests per query (50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per query (5)")
    parser.add_argument("--rounds", type=int, default=3, help="recomputations timed (3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
