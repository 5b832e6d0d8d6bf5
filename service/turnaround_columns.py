"""The dashboard's figures computed with numpy over ``turnaround_columns`` blocks.

Same answers as the SQL + Python path of ``service.turnaround`` (a test compares them on random
histories), in time linear in the rows: counts and millisecond sums are ``bincount``s, and the
nearest-rank percentiles of every group are found at once by a radix select instead of sorting
each stage (see :func:`order_statistics`). Pure computation: no SQL, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from worklists.turnaround import STAGE_NAMES, Summary, mean_of_milliseconds

from .storage.turnaround_columns import NO_ID, NO_TIME, Columns

DAY_US = 86_400_000_000
PERCENTILES = (50, 90, 95)
CELL_LIMIT = 4_000_000
"""Largest groups x buckets histogram for the radix select; beyond it, sort (same answer)."""

_FIELDS = {"facility": "facility_id", "reader": "reader_id", "modality": "modality",
           "priority": "priority", "subspecialty": "queue"}  # fmt: skip

Names = Callable[[str, Sequence[int]], dict[int, str]]


def _dense(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each code among the distinct codes, the distinct codes ascending)."""
    if len(codes) == 0:
        return codes.astype(np.int64), codes.astype(np.int64)
    low = int(codes.min())
    span = int(codes.max()) - low + 1
    if span <= 1 << 22:
        shifted = codes - low
        seen = np.zeros(span, bool)
        seen[shifted] = True
        lookup = np.cumsum(seen) - 1
        return lookup[shifted], np.flatnonzero(seen) + low
    values, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), values


def _dimension(
    columns: Columns, rows: np.ndarray, name: str, axis: str
) -> tuple[np.ndarray, Callable[[int], Any]]:
    """Codes of one group_by dimension for ``rows`` and how to turn a code into its value."""
    if name in _FIELDS:
        codes = columns[_FIELDS[name]][rows].astype(np.int64)
        if name in ("facility", "reader"):
            return codes, lambda v: None if v == NO_ID else v
        return codes, lambda v: None if v == NO_ID else columns.labels[v]
    day = columns[axis][rows] // DAY_US
    if name == "day":
        return day, lambda v: str(np.datetime64(v, "D"))
    if name == "week":
        return day - (day + 3) % 7, lambda v: str(np.datetime64(v, "D"))
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return month, lambda v: str(np.datetime64(v, "M"))


def groups(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str], axis: str
) -> tuple[np.ndarray, list[tuple]]:
    """A dense group id for each of ``rows`` and each group's key tuple (the SQL values)."""
    combined = np.zeros(len(rows), np.int64)
    dims = []
    for name in group_by:
        codes, decode = _dimension(columns, rows, name, axis)
        index, values = _dense(codes)
        combined = combined * len(values) + index
        dims.append((values, decode))
    ids, present = _dense(combined)
    if not group_by:
        return ids, [()] if len(rows) else []
    keys = []
    for code in present.tolist():
        parts = []
        for values, decode in reversed(dims):
            code, index = divmod(code, len(values))
            parts.append(decode(int(values[index])))
        keys.append(tuple(reversed(parts)))
    return ids, keys


def _sortable(values: np.ndarray) -> np.ndarray:
    """int64 keys ordered as the floats are (for a float's bits, flip negatives)."""
    bits = values.view(np.int64)
    return bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))


def order_statistics(
    values: np.ndarray, group: np.ndarray, count: np.ndarray, ranks: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """For each rank array (1-based, per group; groups with count 0 ignored), the value of that
    rank in the group's ascending order: exactly ``sorted(group values)[rank - 1]``.

    Radix select: a histogram per group over 16 log-spaced buckets per octave of the float
    (sign, exponent, 4 mantissa bits) finds the bucket holding each rank; only the values of
    those buckets (a few per cent) are then sorted.
    """
    n_groups = len(count)
    key = _sortable(values)
    bucket = (key >> 48) + 32768
    seen = np.zeros(65536, bool)
    seen[bucket] = True
    width = int(seen.sum())
    with_values = np.flatnonzero(count > 0)
    if n_groups * width > CELL_LIMIT:
        order = np.lexsort((key, group))
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        return [values[order[start[with_values] + r[with_values] - 1]] for r in ranks]
    cell = group * width + (np.cumsum(seen) - 1)[bucket]
    histogram = np.bincount(cell, minlength=n_groups * width).reshape(n_groups, width)
    cumulative = np.cumsum(histogram, axis=1)[with_values]
    wanted = np.zeros(n_groups * width, bool)
    targets = []
    for rank in ranks:
        r = rank[with_values]
        at = (cumulative < r[:, None]).sum(axis=1)
        before = np.where(at > 0, cumulative[np.arange(len(r)), np.maximum(at - 1, 0)], 0)
        target = with_values * width + at
        wanted[target] = True
        targets.append((target, r - before))
    chosen = np.flatnonzero(wanted[cell])
    order = np.lexsort((key[chosen], cell[chosen]))
    cells, picked = cell[chosen][order], values[chosen][order]
    return [picked[np.searchsorted(cells, target) + offset - 1] for target, offset in targets]


def summaries(values: np.ndarray, group: np.ndarray, n_groups: int) -> list[dict[str, Any]]:
    """``summarize`` of each group's non-null values (NaN = null), as its ``__dict__``."""
    known = ~np.isnan(values)
    values, group = values[known], group[known]
    count = np.bincount(group, minlength=n_groups)
    milliseconds = np.rint(values * 1000.0)
    if np.abs(milliseconds).sum() < 2**53:  # float sums of integers stay exact
        totals = np.bincount(group, weights=milliseconds, minlength=n_groups).astype(np.int64)
    else:
        totals = np.zeros(n_groups, np.int64)
        np.add.at(totals, group, milliseconds.astype(np.int64))
    ranks = [np.maximum(1, np.ceil(p / 100 * count)).astype(np.int64) for p in PERCENTILES]
    picked = order_statistics(values, group, count, ranks) if len(values) else []
    result = [Summary(0, None, None, None, None).__dict__ for _ in range(n_groups)]
    with_values = np.flatnonzero(count > 0).tolist()
    stats = [p.tolist() for p in picked]
    counts, sums = count.tolist(), totals.tolist()
    for i, g in enumerate(with_values):
        result[g] = Summary(
            counts[g], *(s[i] for s in stats), mean_of_milliseconds(sums[g], counts[g])
        ).__dict__
    return result


def turnaround(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str]
) -> dict[tuple, dict[str, dict]]:
    """Per group key, each stage's summary (rows: received in the period, in scope)."""
    rows = rows[columns["cancelled"][rows] == 0]
    ids, keys = groups(columns, rows, group_by, "received")
    per_stage = {name: summaries(columns[name][rows], ids, len(keys)) for name in STAGE_NAMES}
    return {key: {name: per_stage[name][g] for name in STAGE_NAMES} for g, key in enumerate(keys)}


def _order(key: tuple) -> tuple:
    """SQL ORDER BY: NULL first, then by value."""
    return tuple((v is not None, v) for v in key)


def sla(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str], now: int
) -> list[dict[str, Any]]:
    """Rows like ``storage.turnaround.sla_counts`` (rows: due in the period, in scope)."""
    rows = rows[columns["cancelled"][rows] == 0]
    due, signed = columns["due"][rows], columns["signed"][rows]
    decided = (signed != NO_TIME) | (due < now)
    met = (signed != NO_TIME) & (signed <= due)
    ids, keys = groups(columns, rows, group_by, "due")
    n_decided = np.bincount(ids, weights=decided, minlength=len(keys)).astype(np.int64).tolist()
    n_met = np.bincount(ids, weights=met, minlength=len(keys)).astype(np.int64).tolist()
    if not group_by:
        return [{"decided": n_decided[0] if keys else None, "met": n_met[0] if keys else None}]
    out = [
        {**{f"k{i}": v for i, v in enumerate(key)}, "decided": n_decided[g], "met": n_met[g]}
        for g, key in enumerate(keys)
    ]
    return sorted(out, key=lambda r: _order(tuple(r[f"k{i}"] for i in range(len(group_by)))))


def workload(columns: Columns, rows: np.ndarray, names: Names) -> list[dict[str, Any]]:
    """Rows like ``storage.turnaround.workload`` (rows: first signed in the period, in scope)."""
    ids, keys = groups(columns, rows, ("month", "reader", "facility", "modality"), "signed")
    reads = np.bincount(ids, minlength=len(keys)).tolist()
    facilities = names("facilities", sorted({k[2] for k in keys}))
    readers = names("users", sorted({k[1] for k in keys if k[1] is not None}))
    out = [
        {"month": month, "reader_id": reader, "reader": readers.get(reader, ""),
         "facility_id": facility, "facility": facilities[facility], "modality": modality,
         "reads": reads[g]}
        for g, (month, reader, facility, modality) in enumerate(keys)
        if facility in facilities
    ]  # fmt: skip
    return sorted(
        out,
        key=lambda r: (r["month"], r["reader"], r["facility"], r["modality"],
                       *_order((r["reader_id"], r["facility_id"]))),
    )  # fmt: skip


def quality(
    columns: Columns, rows: np.ndarray, time_period: str, names: Names
) -> list[dict[str, Any]]:
    """Rows like ``storage.turnaround.quality`` (rows: first signed in the period, in scope)."""
    group_by = (time_period, "facility", "modality")
    ids, keys = groups(columns, rows, group_by, "signed")
    codes = columns["quality"][rows].astype(np.int64), columns["quality_reason"][rows]
    inner, ratings = _dense(codes[0])
    reasons_index, reasons = _dense(codes[1].astype(np.int64))
    cell = (ids * len(ratings) + inner) * len(reasons) + reasons_index
    cells, present = _dense(cell)
    n = np.bincount(cells, minlength=len(present)).tolist()
    facilities = names("facilities", sorted({k[1] for k in keys}))
    out = []
    for i, code in enumerate(present.tolist()):
        rest, reason = divmod(code, len(reasons))
        g, rating = divmod(rest, len(ratings))
        period, facility, modality = keys[g]
        if facility not in facilities:
            continue
        rating_code = int(ratings[rating])
        out.append(
            {"period": period, "facility_id": facility, "facility": facilities[facility],
             "modality": modality,
             "quality": "unrated" if rating_code == NO_ID else columns.labels[rating_code],
             "reason": columns.labels[int(reasons[reason])], "n": n[i]}
        )  # fmt: skip
    return sorted(
        out,
        key=lambda r: (r["period"], r["facility"], r["facility_id"], r["modality"],
                       r["quality"], r["reason"]),
    )  # fmt: skip
