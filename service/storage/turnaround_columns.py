"""``turnaround_facts`` again, as packed numpy columns in blocks of 512 consultations.

Year-wide dashboard questions aggregate every consultation of the period: 500,000 rows, and
reading them through sqlite3 as Python tuples alone costs over a second. Each row of
``turnaround_blocks`` holds the facts of the consultations ``block * 512 ...`` as two blobs of
fixed-length little-endian arrays (``base``: flags, ids, label codes, times in microseconds;
``stages``: the six stage durations exactly as stored in ``turnaround_facts``), plus the
smallest and largest received / due / signed time of the block, so a period selects its blocks
without reading them. A year is ~1,000 blocks, ~48 MB, read in tens of milliseconds.

Readers keep decoded blocks in a :class:`BlockCache` keyed by the block's ``version`` (a
database-wide counter bumped on every block write), so a repeated question reads only the
blocks that changed since. Not kept in the event's transaction (re-packing a block there cost
~0.5 ms, most of an event write, and wrote a 50 KB blob per event: bench/event_writes.py):
``turnaround_columns_version.events_through`` is the last event the blocks hold, and
:func:`catch_up`, which the dashboard runs as a write of its own before a question when
:func:`behind` says so, re-packs the blocks of the consultations of every later event
(:func:`refresh`). :func:`rebuild` re-packs everything (the migration, ``rebuild_facts``, the
benchmark's bulk fill; then :func:`mark_caught_up`).
Strings (modality, priority, queue, quality, reason) are codes into ``turnaround_labels``.
Times are stored as text (``clock.to_iso``); one in another ISO 8601 form is parsed, so the
columns hold true time order whatever the text. A block whose ids or label codes do not fit its
narrow integers (ids of 2**31 and more, more than 32,767 distinct labels, e.g. free-text
quality reasons over the years) is stored marked irregular, and readers decode it from its
``turnaround_facts`` rows into wide arrays instead (:func:`load`): slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlite_utils

from worklists.turnaround import STAGE_NAMES

from ..caching import LruCache
from .scope import Scope

SHIFT = 9
BLOCK = 1 << SHIFT
NO_TIME = np.iinfo(np.int64).min
"""A missing time (NULL); smaller than every real one."""
NO_ID = -1
"""A missing id or label code (NULL)."""

BASE_FIELDS = (
    ("present", "u1"),  # a facts row exists for this consultation id
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
STAGE_FIELDS = tuple((name, "<f8") for name in STAGE_NAMES)
LABELLED = ("modality", "priority", "queue", "quality", "quality_reason")
TIMES = {"received": "received_at", "due": "due_at", "signed": "signed_at"}
AXES = tuple(TIMES)

_FACT_COLUMNS = (
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


def _layout(fields_: Sequence[tuple[str, str]]) -> tuple[dict[str, tuple[int, np.dtype]], int]:
    offsets, at = {}, 0
    for name, kind in fields_:
        dtype = np.dtype(kind)
        offsets[name] = (at, dtype)
        at += BLOCK * dtype.itemsize
    return offsets, at


BASE_LAYOUT, BASE_BYTES = _layout(BASE_FIELDS)
STAGE_LAYOUT, STAGE_BYTES = _layout(STAGE_FIELDS)


def _empty(layout: dict[str, tuple[int, np.dtype]], wide: bool = False) -> dict[str, np.ndarray]:
    """A block of nothing (NaN, NO_TIME, 0 flags, NO_ID); ``wide``: ids and codes as int64."""
    arrays = {}
    for name, (_, dtype) in layout.items():
        if wide and dtype.kind == "i":
            dtype = np.dtype(np.int64)
        if dtype.kind == "f":
            arrays[name] = np.full(BLOCK, np.nan, dtype)
        elif name in TIMES:
            arrays[name] = np.full(BLOCK, NO_TIME, dtype)
        elif dtype.kind == "u":
            arrays[name] = np.zeros(BLOCK, dtype)
        else:
            arrays[name] = np.full(BLOCK, NO_ID, dtype)
    return arrays


def _unpack(
    blob: bytes, layout: dict[str, tuple[int, np.dtype]], copy: bool = True
) -> dict[str, np.ndarray]:
    """The block's arrays (read-only views of ``blob`` unless copied)."""
    views = {
        name: np.frombuffer(blob, dtype, BLOCK, offset) for name, (offset, dtype) in layout.items()
    }
    return {name: view.copy() for name, view in views.items()} if copy else views


def _pack(arrays: dict[str, np.ndarray], layout: dict[str, tuple[int, np.dtype]]) -> bytes:
    return b"".join(arrays[name].astype(dtype).tobytes() for name, (_, dtype) in layout.items())


CANONICAL_LENGTH = len("2026-01-01T00:00:00.000000Z")


def micros(at: Sequence[str | None]) -> np.ndarray:
    """ISO times as microseconds since 1970 (NULL, or text that is no time: NO_TIME).

    Times written by ``clock.to_iso`` are converted by numpy at once; any other ISO 8601 form
    (an offset, no fraction) one by one, naive ones taken as UTC.
    """
    out = np.full(len(at), NO_TIME, np.int64)
    present = [i for i, value in enumerate(at) if value is not None]
    if not present:
        return out
    text = [at[i] for i in present]
    if all(len(t) == CANONICAL_LENGTH and t[-1] == "Z" and t[10] == "T" for t in text):
        bare = np.array([t[:-1] for t in text])
        try:
            stamps = bare.astype("datetime64[us]")
        except ValueError:
            stamps = None
        if stamps is not None and np.array_equal(np.datetime_as_string(stamps, unit="us"), bare):
            out[present] = stamps.astype(np.int64)
            return out
    out[present] = [_micros_of_any(t) for t in text]
    return out


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros_of_any(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return NO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def micros_of(at: str | None) -> int | None:
    """One time in microseconds (None if absent or no time)."""
    if at is None:
        return None
    value = int(micros([at])[0])
    return None if value == NO_TIME else value


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


def _known_codes(db: sqlite_utils.Database, values: Iterable[str]) -> dict[str, int]:
    """The codes of labels already stored (readers do not write)."""
    wanted = sorted(set(values))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    rows = db.conn.execute(
        f"SELECT value, code FROM turnaround_labels WHERE value IN ({marks})", wanted
    )
    return dict(rows.fetchall())


def labels(db: sqlite_utils.Database) -> dict[int, str]:
    return dict(db.conn.execute("SELECT code, value FROM turnaround_labels").fetchall())


Codes = Callable[[sqlite_utils.Database, Iterable[str]], dict[str, int]]


def _fill(
    db: sqlite_utils.Database,
    block: int,
    rows: list[tuple],
    base: dict,
    stages: dict,
    codes_of: Codes = _codes,
) -> bool:
    """Write facts ``rows`` (in _FACT_COLUMNS order) into the block's arrays; False if an id or
    a code does not fit the arrays' integers (left NO_ID there: the block is irregular)."""
    if not rows:
        return True
    column = {name: [r[i] for r in rows] for i, name in enumerate(_FACT_COLUMNS)}
    at = np.array(column["consultation_id"], np.int64) - block * BLOCK
    regular = True
    base["present"][at] = 1
    base["cancelled"][at] = [c is not None for c in column["cancelled_at"]]
    for name in ("facility_id", "requested_by", "reader_id"):
        values = [NO_ID if v is None else v for v in column[name]]
        regular = _put(base[name], at, values) and regular
    codes = codes_of(db, (v for name in LABELLED for v in column[name] if v is not None))
    for name in LABELLED:
        values = [NO_ID if v is None else codes.get(v, NO_ID) for v in column[name]]
        regular = _put(base[name], at, values) and regular
    for axis, name in TIMES.items():
        base[axis][at] = micros(column[name])
    for name in STAGE_NAMES:
        stages[name][at] = [np.nan if v is None else float(v) for v in column[name]]
    return regular


def _put(array: np.ndarray, at: np.ndarray, values: list[int]) -> bool:
    """``array[at] = values`` if they all fit its integers (NULL is NO_ID), else NO_ID there."""
    limits = np.iinfo(array.dtype)
    if all(v == NO_ID or 0 <= v <= limits.max for v in values):
        array[at] = values
        return True
    array[at] = NO_ID
    return False


def _store(db: sqlite_utils.Database, block: int, base: dict, stages: dict, regular: bool) -> None:
    if not base["present"].any():
        db.conn.execute("DELETE FROM turnaround_blocks WHERE block = ?", [block])
        return
    spans: list[int | None] = []
    for axis in AXES:
        times = base[axis][(base["present"] == 1) & (base[axis] != NO_TIME)]
        if not regular:  # every period selects it; readers decode it from the facts
            spans += [NO_TIME + 1, -(NO_TIME + 1)]
        else:
            spans += [int(times.min()), int(times.max())] if len(times) else [None, None]
    (version,) = db.conn.execute(
        "UPDATE turnaround_columns_version SET version = version + 1 RETURNING version"
    ).fetchone()
    # An upsert both engines read (SQLite's INSERT OR REPLACE is not PostgreSQL's).
    db.conn.execute(
        "INSERT INTO turnaround_blocks (block, version, regular, received_min,"
        " received_max, due_min, due_max, signed_min, signed_max, base, stages)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (block) DO UPDATE SET"
        f" {', '.join(f'{c} = excluded.{c}' for c in _BLOCK_VALUES)}",
        [block, version, int(regular), *spans, _pack(base, BASE_LAYOUT),
         _pack(stages, STAGE_LAYOUT)],
    )  # fmt: skip


_BLOCK_VALUES = (
    "version", "regular", "received_min", "received_max", "due_min", "due_max", "signed_min",
    "signed_max", "base", "stages",
)  # fmt: skip


def _facts(db: sqlite_utils.Database, where: str, params: Sequence[object]) -> list[tuple]:
    cursor = db.conn.cursor()
    cursor.row_factory = None
    return cursor.execute(
        f"SELECT {', '.join(_FACT_COLUMNS)} FROM turnaround_facts WHERE {where}"
        " ORDER BY consultation_id",
        list(params),
    ).fetchall()


def _repack(db: sqlite_utils.Database, block: int, rows: list[tuple]) -> None:
    """The block from scratch out of all its facts ``rows``."""
    base, stages = _empty(BASE_LAYOUT), _empty(STAGE_LAYOUT)
    regular = _fill(db, block, rows, base, stages)
    _store(db, block, base, stages, regular)


def refresh(db: sqlite_utils.Database, consultation_ids: Iterable[int]) -> None:
    """Re-pack the given consultations' rows from their facts (absent facts: row cleared)."""
    by_block: dict[int, list[int]] = {}
    for cid in consultation_ids:
        by_block.setdefault(cid >> SHIFT, []).append(cid)
    for block, ids in by_block.items():
        found = db.conn.execute(
            "SELECT regular, base, stages FROM turnaround_blocks WHERE block = ?", [block]
        ).fetchone()
        if found is None or not found[0]:
            # New or irregular block: re-pack it whole (a cleared row may make it regular).
            lo = block * BLOCK
            _repack(db, block, _facts(db, "consultation_id BETWEEN ? AND ?", [lo, lo + BLOCK - 1]))
            continue
        base, stages = _unpack(found[1], BASE_LAYOUT), _unpack(found[2], STAGE_LAYOUT)
        clear = _empty(BASE_LAYOUT) | _empty(STAGE_LAYOUT)
        at = np.array(ids, np.int64) - block * BLOCK
        for name, array in (base | stages).items():
            array[at] = clear[name][at]
        marks = ", ".join("?" for _ in ids)
        regular = _fill(db, block, _facts(db, f"consultation_id IN ({marks})", ids), base, stages)
        _store(db, block, base, stages, regular)


def rebuild(db: sqlite_utils.Database) -> int:
    """Re-pack every block from ``turnaround_facts``; returns the number of blocks."""
    db.conn.execute("DELETE FROM turnaround_blocks")
    cursor = db.conn.cursor()
    cursor.row_factory = None
    facts = cursor.execute(  # sqlite3 answers the cursor itself; PostgreSQL's surface a new one
        f"SELECT {', '.join(_FACT_COLUMNS)} FROM turnaround_facts ORDER BY consultation_id"
    )
    blocks, current, rows = 0, None, []
    for row in facts:
        block = row[0] >> SHIFT
        if block != current and rows:
            _repack(db, current, rows)
            blocks, rows = blocks + 1, []
        current = block
        rows.append(row)
    if rows:
        _repack(db, current, rows)
        blocks += 1
    return blocks


def behind(db: sqlite_utils.Database) -> bool:
    """Whether an event was appended since the blocks were last caught up (two index reads)."""
    row = db.conn.execute(
        "SELECT (SELECT max(id) FROM consultation_events) > events_through"
        " FROM turnaround_columns_version"
    ).fetchone()
    return bool(row and row[0])


def catch_up(db: sqlite_utils.Database) -> int:
    """Re-pack the blocks of the consultations of every event since the last catch-up (in the
    writer's transaction); returns how many consultations that was."""
    (through,) = db.conn.execute("SELECT events_through FROM turnaround_columns_version").fetchone()
    rows = db.conn.execute(
        "SELECT consultation_id, id FROM consultation_events WHERE id > ? ORDER BY id", [through]
    ).fetchall()
    if not rows:
        return 0
    ids = sorted({row[0] for row in rows})
    refresh(db, ids)
    db.conn.execute("UPDATE turnaround_columns_version SET events_through = ?", [rows[-1][1]])
    return len(ids)


def mark_caught_up(db: sqlite_utils.Database) -> None:
    """The blocks hold every event so far (after :func:`rebuild` from current facts)."""
    db.conn.execute(
        "UPDATE turnaround_columns_version SET events_through ="
        " (SELECT coalesce(max(id), 0) FROM consultation_events)"
    )


def blocks_of(db: sqlite_utils.Database) -> list[tuple]:
    """Every stored block as (block, regular, spans..., base, stages), for consistency checks."""
    return db.conn.execute(
        "SELECT block, regular, received_min, received_max, due_min, due_max, signed_min,"
        " signed_max, base, stages FROM turnaround_blocks ORDER BY block"
    ).fetchall()


Block = dict[str, np.ndarray]


class BlockCache:
    """Decoded blocks by (block, version), least recently used dropped beyond ``limit`` blocks
    (1,000 blocks, a year of a 500,000/year consortium, are ~48 MB; the default keeps two such
    years). Shared by reader threads."""

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self._blocks: LruCache[int, tuple[int, Block]] = LruCache(limit)

    def get(self, block: int, version: int) -> Block | None:
        found = self._blocks.get(block)
        return found[1] if found is not None and found[0] == version else None

    def put(self, block: int, version: int, arrays: Block) -> None:
        self._blocks.put(block, (version, arrays))


@dataclass
class Columns:
    """The facts of the blocks a period touches, one numpy array per field (all blocks joined).

    Rows include consultations outside the period (same block): filter with :meth:`within`.
    """

    blocks: list[Block]
    labels: dict[int, str]
    _joined: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._joined:
            parts = [block[name] for block in self.blocks]
            self._joined[name] = np.concatenate(parts) if parts else _empty_column(name)
        return self._joined[name]

    def within(self, axis: str, since: int | None, until: int | None, scope: Scope) -> np.ndarray:
        """Indexes of rows with an ``axis`` time in [since, until) that ``scope`` allows."""
        times = self[axis]
        mask = (self["present"] == 1) & (times != NO_TIME)
        if since is not None:
            mask &= times >= since
        if until is not None:
            mask &= times < until
        if scope.nothing:
            mask[:] = False
        if scope.facility_ids is not None:
            mask &= np.isin(self["facility_id"], np.array(scope.facility_ids, np.int64))
        if scope.requested_by is not None:
            mask &= self["requested_by"] == scope.requested_by
        return np.flatnonzero(mask)


def _empty_column(name: str) -> np.ndarray:
    _, dtype = BASE_LAYOUT.get(name) or STAGE_LAYOUT[name]
    return np.zeros(0, dtype)


def _wide(db: sqlite_utils.Database, block: int) -> Block:
    """An irregular block's arrays decoded from its facts rows, ids and codes as int64."""
    base, stages = _empty(BASE_LAYOUT, wide=True), _empty(STAGE_LAYOUT)
    lo = block * BLOCK
    rows = _facts(db, "consultation_id BETWEEN ? AND ?", [lo, lo + BLOCK - 1])
    _fill(db, block, rows, base, stages, _known_codes)
    return base | stages


def load(
    db: sqlite_utils.Database,
    axis: str,
    since: str | None,
    until: str | None,
    cache: BlockCache | None = None,
) -> tuple[Columns, int | None, int | None]:
    """The blocks holding a time on ``axis`` in [since, until), with the bounds in
    microseconds (None: open)."""
    bounds = [micros_of(since), micros_of(until)]
    clauses, params = [f"{axis}_max IS NOT NULL"], []
    if bounds[1] is not None:
        clauses.append(f"{axis}_min < ?")
        params.append(bounds[1])
    if bounds[0] is not None:
        clauses.append(f"{axis}_max >= ?")
        params.append(bounds[0])
    cache = cache or BlockCache()
    cursor = db.conn.cursor()
    cursor.row_factory = None
    own = not db.conn.in_transaction
    if own:
        cursor.execute("BEGIN")  # one snapshot for the list and the blobs
    try:
        listed = cursor.execute(
            f"SELECT block, version, regular FROM turnaround_blocks"
            f" WHERE {' AND '.join(clauses)} ORDER BY block",
            params,
        ).fetchall()
        found = {block: cache.get(block, version) for block, version, _ in listed}
        missing = [block for block, arrays in found.items() if arrays is None]
        for at in range(0, len(missing), 500):
            chunk = missing[at : at + 500]
            marks = ", ".join("?" for _ in chunk)
            for block, version, regular, base, stages in cursor.execute(
                f"SELECT block, version, regular, base, stages FROM turnaround_blocks"
                f" WHERE block IN ({marks})",
                chunk,
            ):
                if regular:
                    arrays = _unpack(base, BASE_LAYOUT, False) | _unpack(
                        stages, STAGE_LAYOUT, False
                    )
                else:
                    arrays = _wide(db, block)
                cache.put(block, version, arrays)
                found[block] = arrays
        names = labels(db)
    finally:
        if own:
            cursor.execute("COMMIT")
    return Columns([found[block] for block, _, _ in listed], names), bounds[0], bounds[1]
