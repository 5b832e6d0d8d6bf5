"""Master patient index benchmark (issue 21 item 5): 2 million patients' identities across 50
facilities, the link lookup at ingest and the duplicate-exam check at request time.

Run from the repository root::

    .venv/bin/python bench/patients.py [--identities 2000000] [--facilities 50]
        [--consultations 3000000] [--calls 2000] [--keep DIR]

1. Creates the database with ``service.storage.Database`` (every migration, so every index the
   service has) and bulk-inserts, in one transaction with ``executemany``: the facilities;
   ``--identities`` local identities, about 30 % of persons registered at 2 or 3 facilities
   (linked, as the service links them, by the same resident identity number), the others at
   one; a GB 11643 resident identity number with a valid check character for 80 % of the
   single-facility identities and every linked one; ``--consultations`` consultations over the
   last year (a mix of exam items), a signed report for a fifth of them; a few facilities on
   the recognition list.
2. Times ``storage.patients.record_local_identity`` for ``--calls`` new studies' patients, each
   carrying a resident identity number (half a person already known at another facility, so the
   call links; half a new person), one write transaction per call as ingest does: p50 / p95 of
   the call, beside the same facility's plain lookup by (facility, Patient ID) — what a match on
   Patient ID alone costs — in the same run. Target: p95 <= 2 ms.
3. Times ``storage.patients.recent_exams`` (same exam item at every linked facility in the last
   30 days, with the signed impression and the recognition status) for ``--calls`` patients,
   beside the same query by plain (facility, Patient ID) on ``consultations``. Target: p95 <= 10 ms.

Prints the machine's load average before and after each timed part, and beside each wall-clock
figure the thread's CPU time for the same calls (on a loaded machine a call's wall time includes
waiting for a core); never asserts. ``--keep DIR --reuse`` times a database built before.
"""

from __future__ import annotations

import argparse
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

import sqlite_utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.clock import to_iso  # noqa: E402
from service.identity_numbers import RESIDENT_ID, Identifier  # noqa: E402
from service.storage import Database  # noqa: E402
from service.storage.patients import LocalPatient, recent_exams, record_local_identity  # noqa: E402

TARGET_LINK_P95 = 2.0  # ms
TARGET_REPEAT_P95 = 10.0  # ms
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
EXAMS = [("CT", "HEAD"), ("CT", "CHEST"), ("CT", "ABDOMEN"), ("DX", "CHEST"), ("DX", "KNEE"),
         ("CR", "CHEST"), ("MR", "HEAD"), ("MR", "SPINE"), ("US", "ABDOMEN")]  # fmt: skip
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def resident_id(person: int, rng: random.Random) -> str:
    """A unique, valid GB 11643 number for a person: region from the person's thousands,
    sequence from the rest, a birth date between 1930 and 2020, the check character."""
    born = datetime(1930, 1, 1) + timedelta(days=rng.randrange(0, 90 * 365))
    first17 = f"{110000 + person // 1000:06d}{born:%Y%m%d}{person % 1000:03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]
    return first17 + check


def connect(path: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return sqlite_utils.Database(conn)


def build(path: Path, args: argparse.Namespace) -> dict[str, object]:
    """The consortium's index and consultations; returns what the timed parts sample from."""
    rng = random.Random(20261203)
    Database(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    stamp = to_iso(NOW - timedelta(days=400))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO facilities (id, name, kind, aet, created_at) VALUES (?, ?, ?, ?, ?)",
        [(k, f"Bench facility {k}", "regional" if k == 1 else "township", f"BENCH_F{k:03d}",
          stamp) for k in range(1, args.facilities + 1)],
    )  # fmt: skip
    db.execute(
        "INSERT INTO users (id, username, display_name, password_hash, role, facility_id,"
        " created_at) VALUES (1, 'bench', 'Bench', 'x', 'specialist', 1, ?)",
        [stamp],
    )  # the signer of the reports' versions
    persons: list[tuple[int, list[tuple[int, str]], str]] = []
    identities, identifiers, person_rows = [], [], []
    identity_id, person = 0, 0
    while identity_id < args.identities:
        person += 1
        count = 1 if rng.random() >= 0.30 else rng.choice((2, 3))
        facilities = rng.sample(range(1, args.facilities + 1), count)
        number = resident_id(person, rng) if count > 1 or rng.random() < 0.8 else ""
        person_rows.append((person, stamp))
        members = []
        for facility in facilities[: args.identities - identity_id]:
            identity_id += 1
            local = f"P{facility:02d}-{identity_id:08d}"
            identities.append((identity_id, facility, local, person, f"BENCH^P{person}", stamp))
            if number:
                identifiers.append((identity_id, RESIDENT_ID, number, "dicom", stamp))
            members.append((facility, local))
        persons.append((person, members, number))
    db.executemany("INSERT INTO patient_persons (id, created_at) VALUES (?, ?)", person_rows)
    db.executemany(
        "INSERT INTO patient_identities (id, facility_id, patient_id, person_id, name,"
        " first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*row, row[-1]) for row in identities],
    )
    db.executemany(
        "INSERT INTO patient_identifiers (identity_id, system, value, source, recorded_at)"
        " VALUES (?, ?, ?, ?, ?)",
        identifiers,
    )
    consultations(db, identities, args, rng)
    db.executemany(
        "INSERT INTO recognition (facility_id, modality, body_part, status, since)"
        " VALUES (?, ?, ?, 'listed', ?)",
        [(f, m, b, stamp) for f in range(1, 11) for m, b in EXAMS[:4]],
    )
    db.execute("COMMIT")
    db.close()  # no ANALYZE: the service never runs it, so the planner works without statistics
    return {"persons": persons, "last_person": person, "identifiers": len(identifiers)}


def reload(path: Path) -> dict[str, object]:
    """What :func:`build` returns, read back from a database it built (``--reuse``); the
    identities earlier timed runs added are left out."""
    db = sqlite3.connect(path)
    persons: dict[int, tuple[list[tuple[int, str]], str]] = {}
    rows = db.execute(
        "SELECT i.person_id, i.facility_id, i.patient_id, COALESCE(x.value, '')"
        " FROM patient_identities i LEFT JOIN patient_identifiers x ON x.identity_id = i.id"
        " WHERE i.patient_id NOT LIKE 'NEW%'"
    )
    for person, facility, local, number in rows:
        persons.setdefault(person, ([], number))[0].append((facility, local))
    last = db.execute("SELECT MAX(id) FROM patient_persons").fetchone()[0]
    identifiers = db.execute("SELECT COUNT(*) FROM patient_identifiers").fetchone()[0]
    db.close()
    listed = [(person, members, number) for person, (members, number) in persons.items()]
    return {"persons": listed, "last_person": last, "identifiers": identifiers}


def consultations(db, identities, args, rng: random.Random) -> None:
    """``--consultations`` over the last year; a signed report (version 1) for a fifth."""
    batch, reports, versions = [], [], []
    for cid in range(1, args.consultations + 1):
        identity = identities[rng.randrange(len(identities))]
        modality, body = EXAMS[rng.randrange(len(EXAMS))]
        at = to_iso(NOW - timedelta(seconds=rng.randrange(365 * 86400)))
        batch.append((cid, identity[1], identity[2], modality, body, "closed", at, at, at, at))
        if rng.random() < 0.2:
            reports.append((cid, cid, "signed", 1, at, at))
            versions.append((cid, "Bench impression", at, f"BENCH{cid}"))
        if len(batch) >= 200_000:
            flush(db, batch, reports, versions)
            batch, reports, versions = [], [], []
    flush(db, batch, reports, versions)


def flush(db, batch, reports, versions) -> None:
    db.executemany(
        "INSERT INTO consultations (id, facility_id, patient_id, modality, body_part, status,"
        " received_at, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )
    db.executemany(
        "INSERT INTO reports (id, consultation_id, state, signed_versions, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        reports,
    )
    db.executemany(
        "INSERT INTO report_versions (report_id, version, findings, impression, recommendation,"
        " critical, refer, signer_id, signer_name, certificate_serial, signed_at,"
        " verification_code, verification_url, canonical, signature, pdf)"
        " VALUES (?, 1, '', ?, '', 0, 0, 1, 'Bench', '1', ?, ?, '', x'00', x'00', x'00')",
        versions,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures(name: str, values: list[float], target: float | None = None) -> str:
    p50, p95 = statistics.median(values), percentile(values, 0.95)
    goal = (
        f"   target p95 <= {target:g} ms: {'met' if p95 <= target else 'NOT met'}" if target else ""
    )
    return f"  {name:<46} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms{goal}"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def time_links(path: Path, built: dict, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    db = connect(path)
    persons = built["persons"]
    calls, plain, cpu_calls = [], [], []
    links, run = 0, int(time.time())
    next_person = built["last_person"] + 1
    for n in range(args.calls):
        facility = rng.randrange(1, args.facilities + 1)
        number = ""
        while n % 2 == 0 and not number:  # a person known elsewhere: the call links
            _person, _members, number = persons[rng.randrange(len(persons))]
        if not number:  # a new person
            number, next_person = resident_id(next_person, rng), next_person + 1
        patient = LocalPatient(facility, f"NEW{run}-{n:06d}", f"BENCH^N{n}", "", "")
        db.execute("BEGIN IMMEDIATE")
        started, cpu = time.perf_counter(), time.thread_time()
        done = record_local_identity(db, patient, [Identifier(RESIDENT_ID, number)], "dicom")
        calls.append((time.perf_counter() - started) * 1000)
        cpu_calls.append((time.thread_time() - cpu) * 1000)
        links += len(done.links)
        db.execute("COMMIT")
        facility, local = persons[rng.randrange(len(persons))][1][0]
        started = time.perf_counter()
        db.execute(
            "SELECT id, person_id FROM patient_identities WHERE facility_id = ? AND patient_id = ?",
            [facility, local],
        ).fetchone()
        plain.append((time.perf_counter() - started) * 1000)
    print(figures("record_local_identity (link at ingest)", calls, TARGET_LINK_P95))
    print(figures("  the same calls, CPU time of the thread only", cpu_calls))
    print(f"    ({links} of {args.calls} calls linked the new identity to a known person)")
    print(figures("reference: identity by (facility, Patient ID)", plain))
    db.conn.close()


def time_repeats(path: Path, built: dict, args: argparse.Namespace) -> None:
    rng = random.Random(11)
    db = connect(path)
    linked = [m for _, m, _ in built["persons"] if len(m) > 1]
    since = to_iso(NOW - timedelta(days=30))
    checks, plain, cpu_checks = [], [], []
    for _ in range(args.calls):
        members = linked[rng.randrange(len(linked))]
        facility, local = members[rng.randrange(len(members))]
        modality, body = EXAMS[rng.randrange(len(EXAMS))]
        started, cpu = time.perf_counter(), time.thread_time()
        recent_exams(db, facility, local, modality, body, since)
        checks.append((time.perf_counter() - started) * 1000)
        cpu_checks.append((time.thread_time() - cpu) * 1000)
        started = time.perf_counter()
        db.execute(
            "SELECT c.id, c.received_at FROM consultations c WHERE c.facility_id = ?"
            " AND c.patient_id = ? AND c.modality = ? AND c.body_part = ?"
            " AND COALESCE(c.received_at, c.requested_at, c.created_at) >= ?",
            [facility, local, modality, body, since],
        ).fetchall()
        plain.append((time.perf_counter() - started) * 1000)
    print(figures("recent_exams (repeat check, every linked site)", checks, TARGET_REPEAT_P95))
    print(figures("  the same calls, CPU time of the thread only", cpu_checks))
    print(figures("reference: same query by (facility, Patient ID)", plain))
    db.conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2_000_000)
    parser.add_argument("--facilities", type=int, default=50)
    parser.add_argument("--consultations", type=int, default=3_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="build the database in this directory, kept")
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep: time the database built there before"
    )
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-patients-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "teleread.db"
    reuse = args.reuse and args.keep is not None and path.exists()
    if not reuse:
        path.unlink(missing_ok=True)
    try:
        print(f"{'Reusing' if reuse else 'Building'}: {args.identities:,} identities,"
              f" {args.facilities} facilities, {args.consultations:,} consultations"
              f" ({load()})")  # fmt: skip
        started = time.perf_counter()
        built = reload(path) if reuse else build(path, args)
        people = len(built["persons"])
        linked = sum(1 for _, m, _ in built["persons"] if len(m) > 1)
        verb = "reloaded" if reuse else "built"
        print(f"  {verb} in {time.perf_counter() - started:.0f} s: {people:,} persons"
              f" ({linked / people:.0%} at 2-3 facilities), {built['identifiers']:,} resident"
              f" identity numbers, {path.stat().st_size / 2**20:,.0f} MiB")  # fmt: skip
        print(f"Link at ingest, {args.calls} calls ({load()})")
        time_links(path, built, args)
        print(f"Duplicate-exam check, {args.calls} calls ({load()})")
        time_repeats(path, built, args)
        print(f"Done ({load()})")
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
