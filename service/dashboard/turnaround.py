"""Turnaround, SLA compliance, workload, image quality and the queue now, for the dashboard.

Turnaround, SLA, workload and quality are answered from the packed ``turnaround_columns``
blocks (storage) with numpy (``service.dashboard.turnaround_columns``): linear time, every
question over a year of 500,000 consultations under 200 ms p95 (bench/dashboard.py). A second,
SQL + Python engine answered the same questions until 2026-12: it took 0.6–3.9 s (p50) for a
year's questions and was removed (docs/turnaround.md has both engines' figures). The blocks are
caught up with the events written since before each question (:func:`_caught_up`). The breach
list and the queue now are a few rows, read from ``turnaround_facts`` and the worklist by SQL,
with the pure rules of ``worklists.turnaround``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from worklists.turnaround import breach_stage, parse, summarize

from ..clock import to_iso
from ..storage import Database
from ..storage import turnaround as store
from ..storage import turnaround_columns as blocks
from ..storage.scope import Scope
from . import turnaround_columns as fast

GROUPS = ("facility", "modality", "priority", "subspecialty", "reader", "day", "week", "month")
NAMED = {"facility": "facilities", "reader": "users"}
AGE_BUCKETS = ((3600, "lt_1h"), (4 * 3600, "1_4h"), (24 * 3600, "4_24h"), (None, "gt_24h"))


async def _labels(
    database: Database, group_by: Sequence[str], keys: list[tuple]
) -> list[dict[int, str]]:
    labels: list[dict[int, str]] = []
    for i, name in enumerate(group_by):
        ids = sorted({k[i] for k in keys if isinstance(k[i], int)})
        table = NAMED.get(name)
        labels.append(await database.read(store.names, table, ids) if table else {})
    return labels


def _groups(
    group_by: Sequence[str], keys: list[tuple], labels: list[dict[int, str]]
) -> list[dict[str, Any]]:
    """Each group's values, with names for facilities and readers next to their ids."""
    fields_: list[str] = []
    columns: list[list[Any]] = []
    for i, name in enumerate(group_by):
        values = [key[i] for key in keys]
        fields_.append(name)
        columns.append(values)
        if name in NAMED:
            names_ = labels[i]
            fields_.append(f"{name}_name")
            columns.append([names_.get(v, "") if v is not None else "" for v in values])
    if not columns:
        return [{} for _ in keys]
    return [dict(zip(fields_, row, strict=True)) for row in zip(*columns, strict=True)]


async def _caught_up(database: Database) -> None:
    """Fold the events written since the blocks were last caught up (a write, when needed)."""
    if await database.read(blocks.behind):
        await database.write(blocks.catch_up)


def _from_columns(
    db: Any, axis: str, scope: Scope, period: store.Period, compute: Any, cache: Any
) -> Any:
    """``compute(columns, rows, db)`` over the blocks of the period (rows: in it, in scope)."""
    columns, since, until = blocks.load(db, axis, period.since, period.until, cache)
    return compute(columns, columns.within(axis, since, until, scope), db)


async def turnaround(
    database: Database, scope: Scope, period: store.Period, group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """Count and p50 / p90 / p95 / mean seconds of every stage, per group."""
    await _caught_up(database)
    buckets = await database.read(
        _from_columns, "received", scope, period,
        lambda columns, rows, _: fast.turnaround(columns, rows, group_by),
        database.turnaround_blocks,
    )  # fmt: skip
    keys = sorted(buckets, key=lambda k: tuple((v is None, v) for v in k))
    labels = await _labels(database, group_by, keys)
    return [
        {"group": group, "stages": buckets[key]}
        for key, group in zip(keys, _groups(group_by, keys, labels), strict=True)
    ]


async def review_stages(
    database: Database, scope: Scope, period: store.Period
) -> dict[str, dict[str, Any]]:
    """Count and p50 / p90 / p95 / mean seconds of the two-level sign-off's stages (writer's
    reading to the signature for review, that signature to the review), over the period."""
    found = await database.read(store.review_stage_seconds, scope, period)
    return {name: vars(summarize(values)) for name, values in found.items()}


async def sla(
    database: Database,
    scope: Scope,
    period: store.Period,
    group_by: Sequence[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """Share of decided consultations (signed, or overdue now) first signed by their due time."""
    now_us = blocks.micros_of(to_iso(now))
    await _caught_up(database)
    keys, decided, met = await database.read(
        _from_columns, "due", scope, period,
        lambda columns, rows, _: fast.sla(columns, rows, group_by, now_us),
        database.turnaround_blocks,
    )  # fmt: skip
    labels = await _labels(database, group_by, keys)
    return [
        {"group": group, "decided": d or 0, "met": m or 0, "share_met": (m or 0) / d if d else None}
        for group, d, m in zip(_groups(group_by, keys, labels), decided, met, strict=True)
    ]


async def breaches(
    database: Database, scope: Scope, period: store.Period, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Late or overdue consultations, with the stage where the time went."""
    rows = await database.read(store.breaches, scope, period, to_iso(now), limit)
    return [
        {
            "consultation_id": r["consultation_id"],
            "facility_id": r["facility_id"],
            "facility": r["facility_name"],
            "modality": r["modality"],
            "priority": r["priority"],
            "subspecialty": r["queue"],
            "due_at": r["due_at"],
            "signed_at": r["signed_at"],
            "late_seconds": (
                (parse(r["signed_at"]) if r["signed_at"] else now) - parse(r["due_at"])
            ).total_seconds(),
            "stage": breach_stage(r, now),
        }
        for r in rows
    ]


async def _workload_table(
    database: Database, scope: Scope, period: store.Period
) -> dict[str, list[Any]]:
    await _caught_up(database)
    return await database.read(
        _from_columns, "signed", scope, period,
        lambda columns, rows, db: fast.workload(columns, rows, partial(store.names, db)),
        database.turnaround_blocks,
    )  # fmt: skip


async def workload(database: Database, scope: Scope, period: store.Period) -> list[dict]:
    """Reads per month, reader, facility and modality (first signatures in the period)."""
    return fast.workload_rows(await _workload_table(database, scope, period))


WORKLOAD_COLUMNS = ("month", "reader_id", "reader", "facility_id", "facility", "modality", "reads")


async def workload_as_csv(database: Database, scope: Scope, period: store.Period) -> str:
    """Reads per month, reader, facility and modality: what settles remote-reading fees (the
    rows of :func:`workload` as CSV, built from the columns without dicts per row)."""
    return fast.workload_csv(await _workload_table(database, scope, period), WORKLOAD_COLUMNS)


TURNAROUND_CSV_STATS = ("count", "p50", "p90", "p95", "mean")


def turnaround_csv(group_by: Sequence[str], groups: list[dict[str, Any]]) -> str:
    """One line per group and stage; durations in seconds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [c for g in group_by for c in ((g, f"{g}_name") if g in NAMED else (g,))]
    writer.writerow(
        [*header, "stage", *(f"{s}_seconds" if s != "count" else s for s in TURNAROUND_CSV_STATS)]
    )
    for group in groups:
        values = [group["group"][c] for c in header]
        for stage, stats in group["stages"].items():
            writer.writerow([*values, stage, *(stats[s] for s in TURNAROUND_CSV_STATS)])
    return out.getvalue()


async def quality(
    database: Database, scope: Scope, period: store.Period, time_period: str
) -> list[dict[str, Any]]:
    """Per facility, modality and period: ratings counted and the three main reasons."""
    await _caught_up(database)
    return await database.read(
        _from_columns, "signed", scope, period,
        lambda columns, rows, db: fast.quality(
            columns, rows, time_period, partial(store.names, db)
        ),
        database.turnaround_blocks,
    )  # fmt: skip


async def queue_now(database: Database, scope: Scope, now: datetime) -> list[dict[str, Any]]:
    """Open consultations per priority: how many, the oldest readable one's age, age buckets."""
    rows = await database.read(store.open_queue, scope)
    result = {
        p: {"priority": p, "open": 0, "readable": 0, "oldest_seconds": None}
        | {name: 0 for _, name in AGE_BUCKETS}
        for p in ("stat", "urgent", "routine")
    }
    for row in rows:
        entry = result[row["priority"]]
        entry["open"] += 1
        if not row["queued_at"]:
            continue
        age = (now - parse(row["queued_at"])).total_seconds()
        entry["readable"] += 1
        entry["oldest_seconds"] = max(age, entry["oldest_seconds"] or 0.0)
        name = next(n for limit, n in AGE_BUCKETS if limit is None or age < limit)
        entry[name] += 1
    return list(result.values())
