"""Dashboard benchmark: a year of history (500,000 consultations) and the dashboard's queries.

Run from the repository root::

    .venv/bin/python bench/dashboard.py [--rows 500000] [--facilities 50] [--readers 30] [--n 50]

1. Creates the database with ``service.storage.Database`` (current migrations) and bulk-inserts,
   in one transaction, ``--rows`` consultations received over the last 365 days, their events
   (requested, images_received, claimed, signed, delivered, acknowledged; ~6 each, ~3M rows) and
   their ``turnaround_facts`` rows computed from those events by ``worklists.turnaround`` (the
   same rule ``append_event`` applies), then packs the facts into ``turnaround_columns`` blocks
   (what ``append_event`` keeps and migration m012 builds). Older than two weeks: closed; a few
   hundred recent ones are open (the queue now).
2. Starts the real app (``create_app``, child process) in front of a throwaway Orthanc, logs in
   as a regional manager and as a clinic radiographer, and times each dashboard request (the
   page's default period: the last 30 days) over HTTP with one keep-alive client, plus the
   year-wide figures an API user may ask for. Prints p50 / p95 per request and the answer size.

Figures are printed, never asserted. Target: every dashboard query under 200 ms p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import sqlite_utils
from ingest import (
    AppHandle,
    managed_settings,
    percentile,
    progress,
    start_orthanc,
    verdict,
)

from service.auth.passwords import hash_password
from service.clock import to_iso
from service.settings import Settings
from service.storage import Database
from service.storage.turnaround import FACT_COLUMNS
from service.storage.turnaround_columns import mark_caught_up, rebuild
from worklists.turnaround import milestones

PASSWORD = "bench-password-not-secret"
MANAGER = "bench-manager"
CLINIC_USER = "bench-radiographer"
TARGET_P95 = 200.0  # ms
SLA_MINUTES = {"stat": 60, "urgent": 240, "routine": 1440}
MODALITIES = ("CT", "CR", "DX", "MR", "US")
QUEUES = ("neuro", "chest", "abdomen", "msk", "general")
QUALITY = ("good", "good", "good", "acceptable", "poor")
REASONS = ("motion", "positioning", "noise", "exposure")


def minutes(rng: random.Random, mean: float) -> timedelta:
    return timedelta(minutes=rng.expovariate(1 / mean))


def history(
    rng: random.Random, cid: int, received: datetime, priority: str, reader: int, now: datetime
) -> list[tuple]:
    """One consultation's events: (consultation_id, type, at, actor, detail JSON)."""
    scale = SLA_MINUTES[priority] / 3
    t = received
    events = [(cid, "requested", t, None, "{}")]
    t += minutes(rng, 5)
    events.append((cid, "images_received", t, None, "{}"))
    steps = (("claimed", scale, reader), ("signed", scale, reader), ("delivered", 2, None))
    for kind, mean, actor in steps:
        t += minutes(rng, mean)
        if t > now:
            return events
        detail = "{}"
        if kind == "signed":
            rating = rng.choice(QUALITY)
            detail = json.dumps({"report_id": cid, "version": 1, "critical": False,
                                 "refer": False, "quality": rating,
                                 "quality_reason": "" if rating == "good" else
                                 rng.choice(REASONS)})  # fmt: skip
        events.append((cid, kind, t, actor, detail))
    if rng.random() < 0.8:
        t += minutes(rng, 120)
        if t <= now:
            events.append((cid, "acknowledged", t, None, "{}"))
    return events


def seed(settings: Settings, args: argparse.Namespace, now: datetime) -> dict[str, int]:
    rng = random.Random(20261123)
    Database(settings.database_path).close()
    db = sqlite3.connect(settings.database_path, isolation_level=None)
    stamp = to_iso(now - timedelta(days=400))
    password = hash_password(PASSWORD)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO facilities (id, name, kind, aet, created_at) VALUES (?, ?, ?, ?, ?)",
        [(1, "Bench regional centre", "regional", "BENCH_REGIONAL", stamp)]
        + [(k, f"Bench clinic {k}", "township", f"BENCH_C{k:03d}", stamp)
           for k in range(2, args.facilities + 1)],
    )  # fmt: skip
    users = [(k, f"bench-reader-{k:02d}", "specialist", 1) for k in range(1, args.readers + 1)]
    users += [(args.readers + 1, MANAGER, "manager", 1), (args.readers + 2, CLINIC_USER,
              "radiographer", 2)]  # fmt: skip
    db.executemany(
        "INSERT INTO users (id, username, password_hash, role, facility_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(k, name, password, role, f, stamp) for k, name, role, f in users],
    )
    counts = {"consultations": 0, "events": 0}
    batch_c: list[tuple] = []
    batch_e: list[tuple] = []
    batch_f: list[tuple] = []
    columns = ("consultation_id", *FACT_COLUMNS)
    fact_sql = (
        f"INSERT INTO turnaround_facts ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)})"
    )
    # Ids are handed out on arrival: consultation order follows time, as in a real year.
    ages = sorted((rng.uniform(0, 365 * 86400) for _ in range(args.rows)), reverse=True)
    for cid, age in enumerate(ages, start=1):
        received = now - timedelta(seconds=age)
        priority = rng.choices(("stat", "urgent", "routine"), (1, 3, 6))[0]
        facility = rng.randint(2, args.facilities)
        reader = rng.randint(1, args.readers)
        due = received + timedelta(minutes=SLA_MINUTES[priority])
        events = history(rng, cid, received, priority, reader, now)
        kinds = {e[1] for e in events}
        status = "closed" if "signed" in kinds else "ready"
        modality, queue = rng.choice(MODALITIES), rng.choice(QUEUES)
        rank = ("stat", "urgent", "routine").index(priority)
        at = to_iso(received)
        row = (cid, facility, modality, priority, rank, status, to_iso(due), at, at, at, queue)
        batch_c.append(row)
        iso_events = [(c, k, to_iso(at), a, d) for c, k, at, a, d in events]
        batch_e.extend(iso_events)
        m = milestones(
            {"type": k, "at": at, "actor_user_id": a, "detail": json.loads(d)}
            for _, k, at, a, d in iso_events
        ).as_row()
        batch_f.append((cid, facility, None, modality, priority, queue, to_iso(due),
                        *(m[c] for c in FACT_COLUMNS[6:])))  # fmt: skip
        if len(batch_c) >= 20_000 or cid == args.rows:
            db.executemany(
                "INSERT INTO consultations (id, facility_id, modality, priority, priority_rank,"
                " status, due_at, requested_at, received_at, created_at, updated_at, queue)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*r[:10], r[9], r[10]) for r in batch_c],
            )
            db.executemany(
                "INSERT INTO consultation_events (consultation_id, type, at, actor_user_id,"
                " detail) VALUES (?, ?, ?, ?, ?)",
                batch_e,
            )
            db.executemany(fact_sql, batch_f)
            counts["consultations"] += len(batch_c)
            counts["events"] += len(batch_e)
            batch_c, batch_e, batch_f = [], [], []
            progress(f"seeded {cid} consultations")
    started = time.perf_counter()
    counts["blocks"] = rebuild(sqlite_utils.Database(db))
    mark_caught_up(sqlite_utils.Database(db))
    counts["pack_s"] = time.perf_counter() - started
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return counts


def queries(now: datetime) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Name -> (user, path, params): the dashboard's requests, then year-wide API ones."""
    month = {"from": to_iso(now - timedelta(days=30)), "to": to_iso(now)}
    year = {"from": to_iso(now - timedelta(days=365)), "to": to_iso(now)}
    m = MANAGER
    return {
        "tat by priority (30 d)": (m, "/api/turnaround", {"group_by": "priority", **month}),
        "sla facility,priority (30 d)": (
            m, "/api/turnaround/sla", {"group_by": "facility,priority", **month}),
        "breaches (30 d, 50)": (m, "/api/turnaround/breaches", {"limit": "50", **month}),
        "chart tat": (m, "/dashboard/charts/tat.svg", month),
        "chart sla (week,priority)": (m, "/dashboard/charts/sla.svg", month),
        "chart queue now": (m, "/dashboard/charts/queue.svg", {}),
        "chart workload": (m, "/dashboard/charts/workload.svg", month),
        "chart quality": (m, "/dashboard/charts/quality.svg", month),
        "clinic: tat by priority (30 d)": (
            CLINIC_USER, "/api/turnaround", {"group_by": "priority", **month}),
        "workload.csv (30 d)": (m, "/api/turnaround/workload.csv", month),
        "year: tat facility,month": (m, "/api/turnaround", {"group_by": "facility,month", **year}),
        "year: sla week,priority": (
            m, "/api/turnaround/sla", {"group_by": "week,priority", **year}),
        "year: workload.csv": (m, "/api/turnaround/workload.csv", year),
        "year: quality": (m, "/api/turnaround/quality", year),
        "year: tat (no grouping)": (m, "/api/turnaround", year),
        "year: tat reader,modality,priority": (
            m, "/api/turnaround", {"group_by": "reader,modality,priority", **year}),
        "year: tat.csv subspecialty,week": (
            m, "/api/turnaround", {"group_by": "subspecialty,week", "format": "csv", **year}),
        "year: sla facility,reader,month": (
            m, "/api/turnaround/sla", {"group_by": "facility,reader,month", **year}),
        "year: breaches (100)": (m, "/api/turnaround/breaches", year),
        "year: quality by week": (
            m, "/api/turnaround/quality", {"period_of": "week", **year}),
        "clinic: year tat priority,month": (
            CLINIC_USER, "/api/turnaround", {"group_by": "priority,month", **year}),
    }  # fmt: skip


async def measure(app: AppHandle, now: datetime, n: int, warm: int) -> list[str]:
    lines = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        tokens = {}
        for user in (MANAGER, CLINIC_USER):
            body = {"username": user, "password": PASSWORD}
            async with session.post(app.url + "/api/login", json=body) as response:
                response.raise_for_status()
                tokens[user] = (await response.json())["token"]
        for name, (user, path, params) in queries(now).items():
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            times, size = [], 0
            for i in range(warm + n):
                start = time.perf_counter()
                async with session.get(app.url + path, params=params, headers=headers) as r:
                    r.raise_for_status()
                    size = len(await r.read())
                if i >= warm:
                    times.append((time.perf_counter() - start) * 1000)
            p50, p95 = percentile(times, 50), percentile(times, 95)
            line = (f"{name:34s} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  {size:9d} B  "
                    f"{verdict(p95 < TARGET_P95)}")  # fmt: skip
            progress(line)
            lines.append(line)
    return lines


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-dashboard-"))
    try:
        now = datetime.now(UTC)
        orthanc = await start_orthanc(root, 10)
        settings = managed_settings(root, orthanc)
        started = time.perf_counter()
        counts = seed(settings, args, now)
        fill_s = time.perf_counter() - started
        size_mb = settings.database_path.stat().st_size / 1e6
        app = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await app.start()
        try:
            lines = await measure(app, now, args.n, args.warmup)
        finally:
            await app.stop()
            await orthanc.kill()
        print(f"fill: {counts['consultations']} consultations, {counts['events']} events,"
              f" {args.facilities} facilities, {args.readers} readers in {fill_s:.1f} s"
              f" ({size_mb:.0f} MB); columns: {counts['blocks']} blocks packed in"
              f" {counts['pack_s']:.1f} s")  # fmt: skip
        print(f"target: every dashboard query p95 < {TARGET_P95:.0f} ms ({args.n} timed each)")
        for line in lines:
            print(line)
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
    parser.add_argument("--readers", type=int, default=30, help="reading specialists (30)")
    parser.add_argument("--n", type=int, default=50, help="timed requests per query (50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per query (5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
