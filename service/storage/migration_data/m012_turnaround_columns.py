"""Migration m012's tables, the dashboard's packed numpy columns, and their first packing,
frozen as of m012.

``turnaround_facts`` as columns per block of 512 consultation ids (``base``: ids, label codes and
times in microseconds; ``stages``: the six stage durations), each block with the span of its
times. The live packer (service/storage/turnaround_columns.py) keeps them since and may change or
go; this copy keeps what m012 created and wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import sqlite_utils

SHIFT = 9
BLOCK = 1 << SHIFT
NO_TIME = np.iinfo(np.int64).min
NO_ID = -1

BASE_FIELDS = (
    ("present", "u1"),
    ("cancelled", "u1"),
    ("facility_id", "<i4"),
    ("requested_by", "<i4"),
    ("reader_id", "<i4"),
    ("modality", "<i2"),
    ("priority", "<i2"),
    ("queue", "<i2"),
    ("quality", "<i2"),
    ("quality_reason", "<i2"),
    ("received", "<i8"),
    ("due", "<i8"),
    ("signed", "<i8"),
)
STAGE_NAMES = (
    "received_to_claimed",
    "claimed_to_signed",
    "received_to_signed",
    "signed_to_delivered",
    "delivered_to_acknowledged",
    "end_to_end",
)
STAGE_FIELDS = tuple((name, "<f8") for name in STAGE_NAMES)
LABELLED = ("modality", "priority", "queue", "quality", "quality_reason")
TIMES = {"received": "received_at", "due": "due_at", "signed": "signed_at"}
FACT_COLUMNS = (
    "consultation_id", "cancelled_at", "facility_id", "requested_by", "reader_id", *LABELLED,
    "received_at", "due_at", "signed_at", *STAGE_NAMES,
)  # fmt: skip

COLUMNS_DDL = """
CREATE TABLE turnaround_labels (
    code INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);
CREATE TABLE turnaround_columns_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO turnaround_columns_version (id, version) VALUES (1, 0);
CREATE TABLE turnaround_blocks (
    block INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    regular INTEGER NOT NULL,
    received_min INTEGER, received_max INTEGER,
    due_min INTEGER, due_max INTEGER,
    signed_min INTEGER, signed_max INTEGER,
    base BLOB NOT NULL,
    stages BLOB NOT NULL
);
"""


def _empty(fields_: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    arrays = {}
    for name, kind in fields_:
        dtype = np.dtype(kind)
        if dtype.kind == "f":
            arrays[name] = np.full(BLOCK, np.nan, dtype)
        elif name in TIMES:
            arrays[name] = np.full(BLOCK, NO_TIME, dtype)
        elif dtype.kind == "u":
            arrays[name] = np.zeros(BLOCK, dtype)
        else:
            arrays[name] = np.full(BLOCK, NO_ID, dtype)
    return arrays


def _pack(arrays: dict[str, np.ndarray], fields_: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(arrays[name].astype(kind).tobytes() for name, kind in fields_)


def _micros(at: Sequence[str | None]) -> tuple[np.ndarray, bool]:
    """ISO times as microseconds since 1970 (NULL -> NO_TIME); False if one is not canonical."""
    out = np.full(len(at), NO_TIME, np.int64)
    present = [i for i, value in enumerate(at) if value is not None]
    if not present:
        return out, True
    text = [at[i] for i in present]
    if any(len(t) != 27 or t[-1] != "Z" or t[10] != "T" for t in text):
        return out, False
    bare = np.array([t[:-1] for t in text])
    try:
        stamps = bare.astype("datetime64[us]")
    except ValueError:
        return out, False
    if not np.array_equal(np.datetime_as_string(stamps, unit="us"), bare):
        return out, False
    out[present] = stamps.astype(np.int64)
    return out, True


def _codes(db: sqlite_utils.Database, values: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(values))
    if not wanted:
        return {}
    db.conn.executemany(
        "INSERT INTO turnaround_labels (value) VALUES (?) ON CONFLICT(value) DO NOTHING",
        [(v,) for v in wanted],
    )
    marks = ", ".join("?" for _ in wanted)
    rows = db.conn.execute(
        f"SELECT value, code FROM turnaround_labels WHERE value IN ({marks})", wanted
    )
    return dict(rows.fetchall())


def _fill(
    db: sqlite_utils.Database, block: int, rows: list[tuple], base: dict, stages: dict
) -> bool:
    """Write facts ``rows`` into the block's arrays; False if a value does not fit (irregular)."""
    column = {name: [r[i] for r in rows] for i, name in enumerate(FACT_COLUMNS)}
    at = np.array(column["consultation_id"], np.int64) - block * BLOCK
    regular = True
    base["present"][at] = 1
    base["cancelled"][at] = [c is not None for c in column["cancelled_at"]]
    for name in ("facility_id", "requested_by", "reader_id"):
        if any(not (0 < v < 2**31) for v in column[name] if v is not None):
            regular = False
            column[name] = [None] * len(rows)
        base[name][at] = [NO_ID if v is None else v for v in column[name]]
    codes = _codes(db, (v for name in LABELLED for v in column[name] if v is not None))
    for name in LABELLED:
        values = [NO_ID if v is None else codes[v] for v in column[name]]
        if any(v >= 2**15 for v in values):
            regular = False
            values = [NO_ID] * len(values)
        base[name][at] = values
    for axis, name in TIMES.items():
        times, canonical = _micros(column[name])
        regular = regular and canonical
        base[axis][at] = times
    for name in STAGE_NAMES:
        stages[name][at] = [np.nan if v is None else float(v) for v in column[name]]
    return regular


def _store(db: sqlite_utils.Database, block: int, base: dict, stages: dict, regular: bool) -> None:
    spans: list[int | None] = []
    for axis in TIMES:
        times = base[axis][(base["present"] == 1) & (base[axis] != NO_TIME)]
        if not regular:
            spans += [NO_TIME + 1, -(NO_TIME + 1)]
        else:
            spans += [int(times.min()), int(times.max())] if len(times) else [None, None]
    (version,) = db.conn.execute(
        "UPDATE turnaround_columns_version SET version = version + 1 RETURNING version"
    ).fetchone()
    db.conn.execute(
        "INSERT OR REPLACE INTO turnaround_blocks (block, version, regular, received_min,"
        " received_max, due_min, due_max, signed_min, signed_max, base, stages)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [block, version, int(regular), *spans, _pack(base, BASE_FIELDS),
         _pack(stages, STAGE_FIELDS)],
    )  # fmt: skip


def _pack_block(db: sqlite_utils.Database, block: int, rows: list[tuple]) -> None:
    base, stages = _empty(BASE_FIELDS), _empty(STAGE_FIELDS)
    regular = _fill(db, block, rows, base, stages)
    _store(db, block, base, stages, regular)


def pack_all(db: sqlite_utils.Database) -> int:
    """Pack every block from ``turnaround_facts``; returns the number of blocks."""
    cursor = db.conn.cursor()
    cursor.row_factory = None
    cursor.execute(
        f"SELECT {', '.join(FACT_COLUMNS)} FROM turnaround_facts ORDER BY consultation_id"
    )
    blocks, current, rows = 0, None, []
    for row in cursor:
        block = row[0] >> SHIFT
        if block != current and rows:
            _pack_block(db, current, rows)
            blocks, rows = blocks + 1, []
        current = block
        rows.append(row)
    if rows:
        _pack_block(db, current, rows)
        blocks += 1
    return blocks
