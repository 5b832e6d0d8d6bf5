"""Worklist benchmark: the worklist query with its counts, and a claim, over HTTP at 100,000 rows.

Run from the repository root::

    .venv/bin/python bench/worklist.py [--rows 100000] [--n 200] [--facilities 50]

1. Creates the database with ``service.storage.Database`` (current migrations) and bulk-inserts
   ``--rows`` consultations in one transaction: 50 facilities (one regional centre), 10
   specialists, mixed priorities, modalities, body parts and queues, received over a year. Rows
   older than two weeks are finished (status ``closed``, a few ``signed``, some ``cancelled``), as
   in a year of a real consortium; the worklist shows and counts the open ones. Every
   (facility, Patient ID) gets its identity in the master patient index, half the Patient ID
   numbers linked across facilities, so each page's prior count has links to follow.
2. Times the bare SQLite statements the storage function runs for each case (captured with
   ``sqlite3``'s trace callback while ``store.worklist`` runs, then re-run on a plain connection),
   the counts over all rows vs. a would-be open subset, and a claim as a direct transaction.
3. Prints the query plans of the page and counts statements (they must use the partial indexes
   ``consultations_open_worklist`` / ``consultations_open_counts`` of migration m009).
4. Starts the real app (``create_app``, child process) in front of a throwaway ``ManagedOrthanc``,
   logs in as a regional specialist and times with one keep-alive aiohttp client: the first page,
   a filtered page (``priority=stat&modality=CT``), a deep keyset page (~100 pages in) and
   ``POST /api/consultations/{id}/claim`` on distinct consultations.

Figures are printed, never asserted.
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from ingest import (
    AppHandle,
    managed_settings,
    percentile,
    progress,
    start_orthanc,
    verdict,
)

from service.auth.passwords import hash_password
from service.auth.sessions import CurrentUser
from service.clock import to_iso
from service.settings import Settings
from service.storage import Database
from service.storage import consultations as store
from service.storage.database import connect
from service.storage.scope import EVERYTHING
from service.worklist import claims
from worklists.ordering import WorklistKey

SPECIALIST = "bench-specialist-01"
PASSWORD = "bench-password-not-secret"
TARGET_WORKLIST_P95 = 5.0  # ms, one worklist request including counts
TARGET_CLAIM_P95 = 10.0  # ms
PAGE = 50
DEEP_PAGES = 60  # of the ~76 pages of open rows at 100,000 rows
FINISHED = ("closed", "signed", "cancelled")
OPEN_DAYS = 14  # rows received in the last two weeks are open; older ones are finished

MODALITIES = [("CT", 30), ("CR", 35), ("DX", 10), ("MR", 10), ("US", 10), ("MG", 5)]
BODY_PARTS = {
    "CT": ["HEAD", "CHEST", "ABDOMEN", "SPINE", "PELVIS"],
    "MR": ["HEAD", "SPINE", "KNEE", "ABDOMEN"],
    "CR": ["CHEST", "HAND", "KNEE", "SPINE", "PELVIS"],
    "DX": ["CHEST", "HAND", "FOOT", "SKULL"],
    "US": ["ABDOMEN", "PELVIS", "NECK"],
    "MG": ["BREAST"],
}
QUEUE_OF = {
    "HEAD": "neuro",
    "SPINE": "neuro",
    "SKULL": "neuro",
    "CHEST": "chest",
    "ABDOMEN": "abdomen",
    "PELVIS": "abdomen",
    "HAND": "msk",
    "KNEE": "msk",
    "FOOT": "msk",
}
PRIORITIES = [("stat", 0, 5, timedelta(hours=1)), ("urgent", 1, 20, timedelta(hours=4))]
PRIORITIES.append(("routine", 2, 75, timedelta(hours=24)))


# ---------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------


def seed(settings: Settings, rows: int, n_facilities: int, now: datetime) -> dict[str, Any]:
    """Facilities, specialists and ``rows`` consultations (+2 events each), one transaction."""
    rng = random.Random(20261123)
    Database(settings.database_path).close()  # migrations: the schema is current
    db = sqlite3.connect(settings.database_path, isolation_level=None)
    stamp = to_iso(now - timedelta(days=400))
    db.execute("BEGIN")
    db.execute(
        "INSERT INTO facilities (id, name, kind, aet, created_at) VALUES (1, ?, 'regional', ?, ?)",
        ["Bench regional centre", "BENCH_REGIONAL", stamp],
    )
    db.executemany(
        "INSERT INTO facilities (id, name, kind, aet, created_at) VALUES (?, ?, ?, ?, ?)",
        [
            (
                k,
                f"Bench clinic {k}",
                "county" if k % 5 == 0 else "township",
                f"BENCH_C{k:03d}",
                stamp,
            )
            for k in range(2, n_facilities + 1)
        ],
    )
    password = hash_password(PASSWORD)
    subspecialties = ["neuro", "chest", "abdomen", "msk", ""]
    db.executemany(
        "INSERT INTO users (id, username, display_name, password_hash, role, facility_id,"
        " subspecialties, created_at) VALUES (?, ?, ?, ?, 'specialist', 1, ?, ?)",
        [
            (
                k,
                f"bench-specialist-{k:02d}",
                f"Dr Bench {k}",
                password,
                subspecialties[k % 5],
                stamp,
            )
            for k in range(1, 11)
        ],
    )
    mod_names, mod_weights = zip(*MODALITIES, strict=True)
    start = now - timedelta(days=365)
    span = (now - start).total_seconds()
    times = sorted(start + timedelta(seconds=rng.random() * span) for _ in range(rows))
    consultations, events, open_ids = [], [], []
    for number, received in enumerate(times, 1):
        modality = rng.choices(mod_names, mod_weights)[0]
        body_part = rng.choice(BODY_PARTS[modality])
        name, rank, _, sla = rng.choices(PRIORITIES, [p[2] for p in PRIORITIES])[0]
        is_open = received > now - timedelta(days=OPEN_DAYS)
        kind = rng.random()
        if is_open and kind < 0.15:  # a request whose images have not arrived
            status, received_at, requested_at = "awaiting_images", None, to_iso(received)
        elif is_open and kind < 0.35:  # images straight from a modality, no request yet
            status, received_at, requested_at = "awaiting_request", to_iso(received), None
        else:
            status = "ready" if is_open else rng.choices(FINISHED, [90, 6, 4])[0]
            received_at = to_iso(received)
            requested_at = to_iso(received - timedelta(minutes=rng.randint(5, 120)))
        if is_open:
            open_ids.append(number)
        due = received + sla
        facility = rng.randint(2, n_facilities)
        uid = f"1.2.826.0.1.3680043.10.1234.{number}"
        created = to_iso(
            received - timedelta(minutes=rng.randint(0, 120)) if requested_at else received
        )
        consultations.append(
            (
                number,
                facility,
                uid if received_at else None,
                f"{number:08x}-bench" if received_at else None,
                f"ACC{number:08d}",
                f"P{rng.randint(1, rows // 3):07d}",
                f"BENCH^PATIENT{number:06d}",
                modality,
                body_part,
                rng.randint(1, 400) if received_at else 0,
                name,
                rank,
                status,
                "history" if requested_at else None,
                "question?" if requested_at else None,
                requested_at,
                received_at,
                "dicom" if received_at else None,
                to_iso(due),
                created,
                created,
                QUEUE_OF.get(body_part, "general") if rng.random() < 0.9 else "general",
            )
        )
        if received_at:
            events.append((number, "images_received", received_at, "{}"))
        if requested_at:
            events.append((number, "requested", requested_at, "{}"))
    db.executemany(
        "INSERT INTO consultations (id, facility_id, study_instance_uid, orthanc_study_id,"
        " accession_number, patient_id, patient_name, modality, body_part, instances, priority,"
        " priority_rank, status, clinical_history, clinical_question, requested_at, received_at,"
        " received_via, due_at, created_at, updated_at, queue)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        consultations,
    )
    db.executemany(
        "INSERT INTO consultation_events (consultation_id, type, at, detail) VALUES (?, ?, ?, ?)",
        events,
    )
    index_patients(db, rng, stamp)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    claimable = [c[0] for c in consultations if c[12] in ("ready", "awaiting_request")]
    return {"open_ids": open_ids, "claimable": claimable, "events": len(events)}


def index_patients(db: sqlite3.Connection, rng: random.Random, stamp: str) -> None:
    """The master patient index the service keeps for every consultation (issue 21): one local
    identity per (facility, Patient ID); half the Patient ID numbers are one person at every
    facility that used them (as if linked by a national identifier), so the worklist's prior
    count (storage/linked_priors.py) has links to follow."""
    pairs = db.execute("SELECT DISTINCT facility_id, patient_id FROM consultations").fetchall()
    persons: dict[object, int] = {}
    rows = []
    for facility, patient in pairs:
        key = patient if rng.random() < 0.5 else (facility, patient)
        person = persons.setdefault(key, len(persons) + 1)
        rows.append((facility, patient, person, stamp, stamp))
    db.executemany(
        "INSERT INTO patient_persons (id, created_at) VALUES (?, ?)",
        [(person, stamp) for person in persons.values()],
    )
    db.executemany(
        "INSERT INTO patient_identities (facility_id, patient_id, person_id, first_seen_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?)",
        rows,
    )


# ---------------------------------------------------------------------------
# Bare SQLite
# ---------------------------------------------------------------------------


def timed(fn: Callable[[], object], n: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def captured_sql(path: Path, fn: Callable[[Any], object]) -> list[str]:
    """The statements (parameters expanded) a storage function runs, via the trace callback."""
    db = connect(path)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        fn(db)
    finally:
        db.conn.set_trace_callback(None)
        db.conn.close()
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def run_all(conn: sqlite3.Connection, statements: list[str]) -> None:
    for sql in statements:
        conn.execute(sql).fetchall()


def stats(ms: list[float]) -> tuple[float, float]:
    return percentile(ms, 50), percentile(ms, 95)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def filters(**kw: Any) -> store.WorklistFilter:
    return store.WorklistFilter(now=to_iso(datetime.now(UTC)), **kw)


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-worklist-"))
    lines: list[str] = []
    try:
        now = datetime.now(UTC)
        orthanc = await start_orthanc(root, 10)
        settings = managed_settings(root, orthanc)
        progress(f"seeding {args.rows} consultations")
        started = time.perf_counter()
        seeded = seed(settings, args.rows, args.facilities, now)
        seeded_s = time.perf_counter() - started
        path = settings.database_path
        size_mb = path.stat().st_size / 1e6
        n_open = len(seeded["open_ids"])
        lines += [
            f"teleread worklist benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite "
            f"{sqlite3.sqlite_version}",
            f"data: {args.rows} consultations ({seeded['events']} events) over {args.facilities} "
            f"facilities, 10 specialists, received over 365 days; seeded in {seeded_s:.1f} s, "
            f"{size_mb:.0f} MB; load average {os.getloadavg()[0]:.2f}",
            f"{args.rows - n_open} rows older than {OPEN_DAYS} days are finished (closed, signed,"
            f" cancelled); {n_open} are open (on the worklist and in its counts).",
            f"N = {args.n} timed requests per case after {args.warmup} warm-up (bare SQLite: "
            f"{args.bare_n} runs each); one keep-alive "
            "client; app in a child process",
            "",
        ]

        # The deep cursor: follow `next` DEEP_PAGES pages with the storage function.
        db = connect(path)
        after = None
        for _ in range(DEEP_PAGES):
            after = store.worklist(db, EVERYTHING, filters(), PAGE, after).next
        db.conn.close()
        assert after is not None
        cases: dict[str, tuple[dict[str, str], store.WorklistFilter, WorklistKey | None]] = {
            "first page": ({}, filters(), None),
            "filtered (stat, CT)": (
                {"priority": "stat", "modality": "CT"},
                filters(priorities=["stat"], modalities=["CT"]),
                None,
            ),
            f"deep page ({DEEP_PAGES} in)": ({"cursor": after.encode()}, filters(), after),
        }

        # Bare SQLite: the statements the storage function runs, and the function itself.
        progress("timing bare SQLite")
        bare: dict[str, dict[str, tuple[float, float]]] = {}
        conn = sqlite3.connect(path, isolation_level=None)
        fdb = connect(path)
        for name, (_, flt, key) in cases.items():
            statements = captured_sql(
                path, lambda d, f=flt, k=key: store.worklist(d, EVERYTHING, f, PAGE, k)
            )
            # The page first, the counts last, the page's prior counts (issue 21) between.
            page_sql, prior_sql, count_sql = statements[0], statements[1:-1], statements[-1]
            bare[name] = {
                "page": stats(timed(lambda s=page_sql: conn.execute(s).fetchall(), args.bare_n)),
                "priors": stats(timed(lambda s=prior_sql: run_all(conn, s), args.bare_n)),
                "counts": stats(timed(lambda s=count_sql: conn.execute(s).fetchall(), args.bare_n)),
                "both": stats(timed(lambda s=statements: run_all(conn, s), args.bare_n)),
                "function": stats(
                    timed(
                        lambda f=flt, k=key: store.worklist(fdb, EVERYTHING, f, PAGE, k),
                        args.bare_n,
                    )
                ),
            }
        count_all = stats(
            timed(
                lambda: conn.execute(
                    "SELECT status, priority, queue, COUNT(*) FROM consultations"
                    " GROUP BY status, priority, queue"
                ).fetchall(),
                args.bare_n,
            )
        )
        count_open = stats(
            timed(
                lambda: conn.execute(
                    "SELECT status, priority, queue, COUNT(*) FROM consultations c"
                    f" WHERE {store.OPEN_CONDITION} GROUP BY status, priority, queue"
                ).fetchall(),
                args.bare_n,
            )
        )
        conn.close()
        fdb.conn.close()

        # Bare claim: claims.claim in its own BEGIN IMMEDIATE .. COMMIT, on other consultations.
        claimable = seeded["claimable"]
        rng = random.Random(7)
        picks = rng.sample(claimable, 2 * (args.n + args.warmup))
        bare_ids, http_ids = picks[: args.n + args.warmup], picks[args.n + args.warmup :]
        cdb = connect(path)
        account = store.claim_account(cdb, 1)
        user = CurrentUser.from_row(account | {"session_id": 0, "csrf_token": ""})
        bare_iter = iter(bare_ids)

        def bare_claim() -> None:
            cdb.conn.execute("BEGIN IMMEDIATE")
            claims.claim(cdb, next(bare_iter), user, datetime.now(UTC), 30)
            cdb.conn.execute("COMMIT")

        bare_claim_ms = stats(timed(bare_claim, args.n, args.warmup))
        cdb.conn.close()

        plans: dict[str, str] = {}
        with sqlite3.connect(path) as plan_conn:
            for name, (_, flt, key) in cases.items():
                captured = captured_sql(
                    path, lambda d, f=flt, k=key: store.worklist(d, EVERYTHING, f, PAGE, k)
                )
                page_sql, count_sql = captured[0], captured[-1]
                plans[name] = " | ".join(
                    "; ".join(r[3] for r in plan_conn.execute("EXPLAIN QUERY PLAN " + sql))
                    for sql in (page_sql, count_sql)
                )

        # The real app over HTTP.
        progress("starting the app")
        app = AppHandle(settings, in_process=False, log_path=root / "app.log")
        await app.start()
        http: dict[str, tuple[float, float]] = {}
        audits = 0
        try:
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                body = {"username": SPECIALIST, "password": PASSWORD}
                async with session.post(app.url + "/api/login", json=body) as response:
                    response.raise_for_status()
                    token = (await response.json())["token"]
                headers = {"Authorization": f"Bearer {token}"}
                # Check the deep cursor by following `next` through the API.
                params: dict[str, str] = {"limit": str(PAGE)}
                for _ in range(DEEP_PAGES):
                    async with session.get(
                        app.url + "/api/worklist", params=params, headers=headers
                    ) as response:
                        page = await response.json()
                    params = {"limit": str(PAGE), "cursor": page["next"]}
                api_deep = params["cursor"]
                if api_deep != after.encode():
                    lines.append("WARNING the API's deep cursor differs from the storage one")
                audit_db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                before = audit_db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
                for name, (query, _, _) in cases.items():
                    q = {"limit": str(PAGE), **query}

                    async def get(q: dict[str, str] = q) -> None:
                        async with session.get(
                            app.url + "/api/worklist", params=q, headers=headers
                        ) as response:
                            response.raise_for_status()
                            await response.read()

                    http[name] = stats(await atimed(get, args.n, args.warmup))
                    progress(f"HTTP {name}: p50 {http[name][0]:.2f} ms")
                ids = iter(http_ids)

                async def claim() -> None:
                    url = f"{app.url}/api/consultations/{next(ids)}/claim"
                    async with session.post(url, headers=headers) as response:
                        response.raise_for_status()
                        await response.read()

                http["claim"] = stats(await atimed(claim, args.n, args.warmup))
                after_count = audit_db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
                audits = after_count - before
                audit_db.close()
        finally:
            await app.stop()
            await orthanc.kill()

        def ratio(h: float, b: float) -> str:
            return f"{h / b:5.1f}x" if b > 0 else "   -"

        lines.append(
            f"{'case':<24}{'HTTP p50':>9}{'p95':>8}  {'bare SQL p50':>12}{'p95':>8}"
            f"{'ratio p50':>10}  {'page':>6}{'priors':>8}{'counts':>8}  {'store fn p50':>12}"
        )
        for name in cases:
            h, b = http[name], bare[name]
            lines.append(
                f"{name:<24}{h[0]:>9.2f}{h[1]:>8.2f}  {b['both'][0]:>12.2f}{b['both'][1]:>8.2f}"
                f"{ratio(h[0], b['both'][0]):>10}  {b['page'][0]:>6.2f}{b['priors'][0]:>8.2f}"
                f"{b['counts'][0]:>8.2f}"
                f"  {b['function'][0]:>12.2f}"
            )
        h = http["claim"]
        lines.append(
            f"{'claim (POST)':<24}{h[0]:>9.2f}{h[1]:>8.2f}  {bare_claim_ms[0]:>12.2f}"
            f"{bare_claim_ms[1]:>8.2f}{ratio(h[0], bare_claim_ms[0]):>10}"
        )
        lines += [
            "(ms; bare SQL = the page, prior count and counts statements store.worklist runs,"
            " captured with the trace callback, re-run on a plain sqlite3 connection;"
            " page/priors/counts = each alone, p50;",
            " store fn = store.worklist in this process; bare claim = claims.claim in "
            "BEGIN IMMEDIATE..COMMIT. HTTP includes auth, one audit record per request, JSON)",
            f"audit records written during the timed HTTP cases: {audits} for "
            f"{len(cases) * (args.n + args.warmup) + args.n + args.warmup} requests (one per "
            "request, committed before the answer; concurrent requests would share a transaction)",
            "",
            f"counts, bare SQLite GROUP BY status, priority, queue: over all {args.rows} rows p50 "
            f"{count_all[0]:.2f} ms (p95 {count_all[1]:.2f}); over the {n_open} open "
            f"rows (partial index) p50 {count_open[0]:.2f} ms (p95 {count_open[1]:.2f})",
            "",
            "query plans (page | counts):",
            *(f"  {name:<24} {plan}" for name, plan in plans.items()),
        ]
        lines.append("")
        for name in cases:
            p95 = http[name][1]
            lines.append(
                f"target: worklist {name} p95 < {TARGET_WORKLIST_P95:.0f} ms: {p95:.2f} ms, "
                f"{verdict(p95 < TARGET_WORKLIST_P95)}"
            )
        p95 = http["claim"][1]
        lines.append(
            f"target: claim p95 < {TARGET_CLAIM_P95:.0f} ms: {p95:.2f} ms, "
            f"{verdict(p95 < TARGET_CLAIM_P95)}"
        )
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\n".join(lines), flush=True)
    return 0


async def atimed(fn: Callable[[], Any], n: int, warm: int) -> list[float]:
    for _ in range(warm):
        await fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="consultations (100000)")
    parser.add_argument("--facilities", type=int, default=50, help="facilities (50)")
    parser.add_argument("--n", type=int, default=200, help="timed requests per case (200)")
    parser.add_argument(
        "--bare-n", type=int, default=50, help="timed runs per bare SQLite figure (50)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per case (20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
