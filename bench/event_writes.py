"""Event writes on a year of history: what the dashboard's projections cost each event.

Run from the repository root, on a database bench/dashboard.py left behind (``--keep``)::

    .venv/bin/python bench/dashboard.py --keep            # prints "kept /tmp/teleread-bench-..."
    .venv/bin/python bench/event_writes.py /tmp/teleread-bench-.../teleread.sqlite [--n 2000]

Copies the database, then appends ``--n`` events (claimed / message / signed in turn, on random
recent consultations), each its own ``Database.write`` transaction as the service runs them
(writer thread, ``BEGIN IMMEDIATE``, WAL, ``synchronous = NORMAL``), three ways:

- **re-pack in the event** (before 2026-12): ``append_event``, and the consultation's column block
  re-packed in the same transaction;
- **facts only** (now): ``append_event``; the blocks are caught up by the dashboard's next
  question, and the time that one catch-up takes for all ``--n`` events is printed too;
- **bare insert**: the event row alone (what every projection together costs).

``--old-indexes`` first puts back the facts indexes only the removed SQL engine read. Prints
p50 / p95 / mean per write. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ingest import percentile

from service.clock import to_iso, utc_now
from service.storage import Database
from service.storage import consultations as store
from service.storage import turnaround_columns as blocks

KINDS = ("claimed", "message", "signed")


def _repacked(db, consultation_id: int, *args) -> None:
    store.append_event(db, consultation_id, *args)
    blocks.refresh(db, [consultation_id])


def _bare(db, consultation_id: int, kind: str, at: str, actor: int, detail: dict) -> None:
    db.execute(
        "INSERT INTO consultation_events (consultation_id, type, at, actor_user_id, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        [consultation_id, kind, at, actor, json.dumps(detail)],
    )


OLD_INDEXES = """
CREATE INDEX IF NOT EXISTS turnaround_facts_received ON turnaround_facts(received_at);
CREATE INDEX IF NOT EXISTS turnaround_facts_facility ON turnaround_facts(facility_id, received_at);
CREATE INDEX IF NOT EXISTS turnaround_facts_signed ON turnaround_facts(signed_at, reader_id,
    facility_id, modality, quality, quality_reason);
"""
"""The indexes the SQL engine read (migration m022 drops them): ``--old-indexes`` puts them back."""


async def measure(path: Path, n: int, append, old_indexes: bool) -> tuple[list[float], float]:
    """Per-write milliseconds, then those of one catch-up of the blocks."""
    database = Database(path)
    try:
        if old_indexes:
            await database.write(lambda db: db.executescript(OLD_INDEXES))
        (top,) = await database.read(
            lambda db: db.execute("SELECT max(id) FROM consultations").fetchone()
        )
        rng = random.Random(5)
        times = []
        for i in range(n):
            cid = rng.randint(top - 40_000, top)
            kind = KINDS[i % len(KINDS)]
            detail = {"quality": "good", "version": 1} if kind == "signed" else {}
            start = time.perf_counter()
            await database.write(append, cid, kind, to_iso(utc_now()), 1, detail)
            times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await database.write(blocks.catch_up)
        return times, (time.perf_counter() - start) * 1000
    finally:
        database.close()


def _fresh_copy(database: Path, work: Path) -> Path:
    """A copy of ``database`` (and its WAL) alone in ``work``."""
    for leftover in work.iterdir():
        leftover.unlink()
    copy = work / "events.sqlite"
    shutil.copyfile(database, copy)
    wal = database.with_name(database.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    return copy


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="teleread-bench-events-"))
    try:
        lines = []
        for name, append in (
            ("re-pack in the event", _repacked),
            ("facts only", store.append_event),
            ("bare insert", _bare),
        ):
            copy = _fresh_copy(args.database, work)
            times, catch_up = await measure(copy, args.n, append, args.old_indexes)
            p50, p95 = percentile(times, 50), percentile(times, 95)
            mean = statistics.fmean(times)
            lines.append(f"{name:21s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  mean {mean:6.2f} ms")
            if append is store.append_event:
                lines[-1] += f"  (then one catch-up: {catch_up:.0f} ms)"
            print(lines[-1], file=sys.stderr, flush=True)
        indexes = " (with the SQL engine's indexes)" if args.old_indexes else ""
        print(f"{args.n} event writes each, one transaction per event{indexes}")
        print("\n".join(lines))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="a database bench/dashboard.py kept")
    parser.add_argument("--n", type=int, default=2000, help="event writes per way (2000)")
    parser.add_argument(
        "--old-indexes", action="store_true", help="with the SQL engine's facts indexes"
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
