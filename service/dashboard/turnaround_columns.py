"""The dashboard's figures computed with numpy over ``turnaround_columns`` blocks.

Time linear in the rows: counts and millisecond sums are ``bincount``s, and the nearest-rank
percentiles of every group (``worklists.turnaround.summarize``'s rule) are found at once by a
radix select instead of sorting each stage (see :func:`order_statistics`). Groups come in SQL's
order (NULL first), so the answers read as a ``GROUP BY ... ORDER BY`` would give them. Pure
computation: no SQL, no I/O (names of facilities and readers come through ``names``).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from worklists.turnaround import STAGE_NAMES, Summary, mean_of_milliseconds

from ..storage.turnaround_columns import NO_ID, NO_TIME, Columns

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
        shifted = codes - low if low else codes
        seen = np.bincount(shifted, minlength=span) > 0
        lookup = np.cumsum(seen) - 1
        return np.take(lookup, shifted), np.flatnonzero(seen) + low
    values, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), values


def _dimension(
    columns: Columns, rows: np.ndarray, name: str, axis: str
) -> tuple[np.ndarray, list[Any]]:
    """One group_by dimension: each row's index into its distinct values, and those values as
    SQL gives them (ids, label text, None for NULL; UTC day / ISO week's Monday / month as
    text)."""
    if name in _FIELDS:
        index, codes = _dense(columns[_FIELDS[name]][rows].astype(np.int64))
        if name in ("facility", "reader"):
            return index, [None if v == NO_ID else v for v in codes.tolist()]
        return index, [None if v == NO_ID else columns.labels[v] for v in codes.tolist()]
    day_index, days = _dense(columns[axis][rows] // DAY_US)
    if name == "day":
        return day_index, np.datetime_as_string(days.astype("datetime64[D]")).tolist()
    if name == "week":
        index, weeks = _dense(days - (days + 3) % 7)
        return index[day_index], np.datetime_as_string(weeks.astype("datetime64[D]")).tolist()
    index, months = _dense(days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64))
    return index[day_index], np.datetime_as_string(months.astype("datetime64[M]")).tolist()


def groups(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str], axis: str
) -> tuple[np.ndarray, list[tuple]]:
    """A dense group id for each of ``rows`` and each group's key tuple (the SQL values)."""
    ids, parts, values = group_parts(columns, rows, group_by, axis)
    if not group_by:
        return ids, [()] if len(rows) else []
    columns_ = [
        [decoded[i] for i in part.tolist()] for part, decoded in zip(parts, values, strict=True)
    ]
    return ids, list(zip(*columns_, strict=True))


def group_parts(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str], axis: str
) -> tuple[np.ndarray, list[np.ndarray], list[list[Any]]]:
    """Group ids of ``rows``; per dimension, each group's index into that dimension's values."""
    combined = np.zeros(len(rows), np.int64)
    dims = []
    for name in group_by:
        index, decoded = _dimension(columns, rows, name, axis)
        combined *= len(decoded)
        combined += index
        dims.append(decoded)
    ids, present = _dense(combined)
    parts = []
    for decoded in reversed(dims):
        present, index = np.divmod(present, len(decoded))
        parts.append(index)
    return ids, parts[::-1], dims


def _sortable(values: np.ndarray) -> np.ndarray:
    """int64 keys ordered as the floats are (for a float's bits, flip negatives)."""
    bits = values.view(np.int64)
    return bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))


def order_statistics(
    values: np.ndarray,
    group: np.ndarray,
    count: np.ndarray,
    ranks: Sequence[np.ndarray],
    non_negative: bool = False,
) -> list[np.ndarray]:
    """For each rank array (1-based, per group; groups with count 0 ignored), the value of that
    rank in the group's ascending order: exactly ``sorted(group values)[rank - 1]``.

    One group: ``np.partition``. Several: a radix select; a histogram per group over 16
    log-spaced buckets per octave of the float (sign, exponent, 4 mantissa bits) finds the
    bucket holding each rank, and only the values of those buckets (a few per cent) are sorted.
    """
    n_groups = len(count)
    with_values = np.flatnonzero(count > 0)
    if len(with_values) == 1:
        wanted = [int(r[with_values[0]]) - 1 for r in ranks]
        inside = values if n_groups == 1 else values[group == with_values[0]]
        picked = np.partition(inside, sorted(set(wanted)))
        return [picked[[at]] for at in wanted]
    key = values.view(np.int64) if non_negative else _sortable(values)
    bucket = np.empty(len(key), np.int32)
    np.right_shift(key, 48, out=bucket, casting="unsafe")
    if not non_negative:
        bucket += 32768
    seen = np.zeros(65536, bool)
    seen[bucket] = True
    width = int(seen.sum())
    if n_groups * width > CELL_LIMIT:
        order = np.lexsort((key, group))
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        return [values[order[start[with_values] + r[with_values] - 1]] for r in ranks]
    lookup = (np.cumsum(seen) - 1).astype(np.int64)
    cell = lookup[bucket]
    cell += group * width
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


NAN_BUCKET = 0x7FF8
"""The top 16 bits of numpy's NaN (a null duration): above every finite non-negative value."""


class Scratch:
    """Buffers a question reuses for every stage: fresh 4 MB arrays cost page faults."""

    def __init__(self, rows: int) -> None:
        self.bucket = np.empty(rows, np.intp)
        self.cell = np.empty(rows, np.intp)
        self.milliseconds = np.empty(rows, np.float64)


def summaries(
    values: np.ndarray, group: np.ndarray, n_groups: int, scratch: Scratch | None = None
) -> list[dict[str, Any]]:
    """``summarize`` of each group's non-null values, as its ``__dict__``.

    ``values``: one stage over every loaded row (NaN = null); ``group``: each row's group id,
    ``n_groups`` for rows left out. No copies of the selected rows: the top 16 bits of each
    float (sign, exponent, 4 mantissa bits) already are its log-spaced bucket, nulls fall in
    the NaN bucket above all, and one histogram per group gives counts and the bucket of each
    percentile rank; only the values of those buckets are then sorted.
    """
    if sys.byteorder != "little" or not values.flags.c_contiguous or not len(values):
        # No rows loaded at all (a period before the first consultation): no buckets to reshape
        # the histogram by; the general path answers every group's count 0.
        return _summaries_of_values(values, group, n_groups)
    scratch = scratch or Scratch(len(values))
    bucket, cell = scratch.bucket, scratch.cell
    bucket[...] = values.view(np.uint16)[3::4]
    seen = np.bincount(bucket, minlength=65536) > 0
    width = int(seen.sum())
    if seen[0x8000:].any() or (n_groups + 1) * width > CELL_LIMIT:
        return _summaries_of_values(values, group, n_groups)  # negative durations
    lookup = np.cumsum(seen) - 1
    np.take(lookup, bucket, out=bucket, mode="clip")  # in place: each index read, then written
    np.multiply(group, width, out=cell)
    cell += bucket
    histogram = np.bincount(cell, minlength=(n_groups + 1) * width).reshape(-1, width)
    histogram = histogram[:n_groups]
    nulls_last = bool(seen[NAN_BUCKET])
    return _select(values, group, n_groups, cell, histogram, nulls_last, scratch.milliseconds)


def _select(
    values: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    cell: np.ndarray,
    histogram: np.ndarray,
    nulls_last: bool,
    milliseconds: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Millisecond totals, then each percentile's value from the bucket holding its rank.

    ``cell``: each row's group * width + bucket; ``histogram``: (groups, width) counts, the
    nulls (NaN) in the last bucket when ``nulls_last``; every value is >= 0.
    """
    width = histogram.shape[1]
    cumulative = np.cumsum(histogram, axis=1)
    count = cumulative[:, -1] - histogram[:, -1] if nulls_last else cumulative[:, -1]
    milliseconds = np.multiply(values, 1000.0, out=milliseconds)
    np.rint(milliseconds, out=milliseconds)
    np.fmax(milliseconds, 0.0, out=milliseconds)  # null (NaN) -> 0
    totals = np.bincount(group, weights=milliseconds, minlength=n_groups + 1)[:n_groups]
    if len(totals) and totals.max() >= 2**52:  # partial sums may have been rounded: add exactly
        exact = np.zeros(n_groups + 1, np.int64)
        np.add.at(exact, group, milliseconds.astype(np.int64))
        totals = exact[:n_groups]
    totals = totals.astype(np.int64)
    ranks = [np.maximum(1, np.ceil(p / 100 * count)).astype(np.int64) for p in PERCENTILES]
    with_values = np.flatnonzero(count > 0)
    if not len(with_values):
        return _results(count, totals, [])
    # Each row of ``cumulative`` ascends: shifted apart, they form one ascending array, and one
    # searchsorted finds every group's bucket holding a rank.
    rows = cumulative[with_values]
    shift = np.arange(len(with_values), dtype=np.int64) * (int(rows[:, -1].max()) + 1)
    flat = (rows + shift[:, None]).ravel()
    wanted = np.zeros((n_groups + 1) * width, bool)
    targets = []
    for rank in ranks:
        r = rank[with_values]
        at = np.searchsorted(flat, r + shift) - np.arange(len(r)) * width
        before = np.where(at > 0, rows[np.arange(len(r)), np.maximum(at - 1, 0)], 0)
        target = with_values * width + at
        wanted[target] = True
        targets.append((target, r - before))
    chosen = np.flatnonzero(wanted[cell])
    if len(with_values) <= 4:  # a few large buckets: partition each instead of sorting all
        in_cell = cell[chosen]
        inside = {int(c): values[chosen[in_cell == c]] for c in np.flatnonzero(wanted)}
        picked = [
            np.array([np.partition(inside[c], k - 1)[k - 1] for c, k in
                      zip(target.tolist(), offset.tolist(), strict=True)])
            for target, offset in targets
        ]  # fmt: skip
        return _results(count, totals, picked)
    order = np.lexsort((values[chosen].view(np.int64), cell[chosen]))
    cells, picked_values = cell[chosen][order], values[chosen][order]
    return _results(
        count,
        totals,
        [picked_values[np.searchsorted(cells, t) + offset - 1] for t, offset in targets],
    )


def _summaries_of_values(
    values: np.ndarray, group: np.ndarray, n_groups: int
) -> list[dict[str, Any]]:
    """The general case of :func:`summaries` (negative durations): select, then radix select."""
    known = ~np.isnan(values) & (group < n_groups)
    values, group = values[known], group[known]
    count = np.bincount(group, minlength=n_groups)
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    milliseconds = np.rint(values * 1000.0)
    if max(-low, high) * 1000.0 * (len(values) + 1) < 2**52:  # float sums of integers: exact
        totals = np.bincount(group, weights=milliseconds, minlength=n_groups).astype(np.int64)
    else:
        totals = np.zeros(n_groups, np.int64)
        np.add.at(totals, group, milliseconds.astype(np.int64))
    ranks = [np.maximum(1, np.ceil(p / 100 * count)).astype(np.int64) for p in PERCENTILES]
    non_negative = not np.signbit(values).any()
    picked = order_statistics(values, group, count, ranks, non_negative) if len(values) else []
    return _results(count, totals, picked)


SUMMARY_KEYS = tuple(f.name for f in fields(Summary))


def _results(count: np.ndarray, totals: np.ndarray, picked: list[np.ndarray]) -> list[dict]:
    """``Summary(...).__dict__`` of each group (built as plain dicts: thousands of groups)."""
    empty = dict.fromkeys(SUMMARY_KEYS)
    result = [empty | {"count": 0} for _ in range(len(count))]
    with_values = np.flatnonzero(count > 0)
    counts, sums = count[with_values].tolist(), totals[with_values].tolist()
    columns = zip(with_values.tolist(), counts, *(p.tolist() for p in picked), sums, strict=True)
    for g, n, p50, p90, p95, total in columns:
        result[g] = dict(
            zip(SUMMARY_KEYS, (n, p50, p90, p95, mean_of_milliseconds(total, n)), strict=True)
        )
    return result


def turnaround(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str]
) -> dict[tuple, dict[str, dict]]:
    """Per group key, each stage's summary (rows: received in the period, in scope)."""
    rows = rows[columns["cancelled"][rows] == 0]
    ids, keys = groups(columns, rows, group_by, "received")
    group = np.full(len(columns["present"]), len(keys), np.int64)
    group[rows] = ids
    scratch = Scratch(len(group))
    per_stage = {name: summaries(columns[name], group, len(keys), scratch) for name in STAGE_NAMES}
    return {key: {name: per_stage[name][g] for name in STAGE_NAMES} for g, key in enumerate(keys)}


def _rank(values: Sequence[Any], key: Callable[[Any], Any] = lambda v: v) -> np.ndarray:
    """Each value's rank in ascending ``key`` order (equal keys, equal ranks)."""
    keys = [key(v) for v in values]
    ordered = sorted(set(keys))
    position = {k: i for i, k in enumerate(ordered)}
    return np.array([position[k] for k in keys], np.int64)


def _nulls_first(value: Any) -> tuple:
    """SQL ORDER BY of one value: NULL first."""
    return (value is not None, value)


def _sorted_groups(parts: list[np.ndarray], ranks: list[np.ndarray]) -> np.ndarray:
    """Group order by the dimensions' ranks, the first dimension first."""
    if not parts:
        return np.arange(0)
    return np.lexsort([rank[part] for part, rank in zip(parts, ranks, strict=True)][::-1])


def sla(
    columns: Columns, rows: np.ndarray, group_by: Sequence[str], now: int
) -> tuple[list[tuple], list[int | None], list[int | None]]:
    """Group keys in ascending order (NULL first), and per group the decided (signed, or due
    before ``now``) and met (first signed by the due time) counts (rows: due in the period, in
    scope); without group_by, one group (counts None when nothing was due, as SQL's SUM)."""
    rows = rows[columns["cancelled"][rows] == 0]
    due, signed = columns["due"][rows], columns["signed"][rows]
    decided = (signed != NO_TIME) | (due < now)
    met = (signed != NO_TIME) & (signed <= due)
    ids, parts, values = group_parts(columns, rows, group_by, "due")
    n_groups = int(ids.max()) + 1 if len(ids) else 0
    n_decided = np.bincount(ids, weights=decided, minlength=n_groups).astype(np.int64)
    n_met = np.bincount(ids, weights=met, minlength=n_groups).astype(np.int64)
    if not group_by:
        if not n_groups:
            return [()], [None], [None]
        return [()], [int(n_decided[0])], [int(n_met[0])]
    order = _sorted_groups(parts, [_rank(v, _nulls_first) for v in values])
    columns_ = [[v[i] for i in part[order].tolist()] for part, v in zip(parts, values, strict=True)]
    keys = list(zip(*columns_, strict=True))
    return keys, n_decided[order].tolist(), n_met[order].tolist()


WORKLOAD_KEYS = ("month", "reader_id", "reader", "facility_id", "facility", "modality", "reads")


def workload(columns: Columns, rows: np.ndarray, names: Names) -> dict[str, list[Any]]:
    """Reads per month, reader, facility and modality as columns (WORKLOAD_KEYS -> values;
    rows: first signed in the period, in scope), ordered by month, reader name, facility name,
    modality, reader id, facility id."""
    ids, parts, values = group_parts(
        columns, rows, ("month", "reader", "facility", "modality"), "signed"
    )
    months, readers, facilities, modalities = values
    reads = np.bincount(ids, minlength=len(parts[0]))
    facility_names = names("facilities", facilities)
    reader_names = names("users", [r for r in readers if r is not None])
    reader_labels = [reader_names.get(r, "") for r in readers]
    facility_labels = [facility_names.get(f) for f in facilities]
    known = np.array([label is not None for label in facility_labels] or [True])[parts[2]]
    order = np.lexsort(
        (_rank(facilities)[parts[2]], _rank(readers, _nulls_first)[parts[1]],
         _rank(modalities)[parts[3]], _rank(facility_labels, str)[parts[2]],
         _rank(reader_labels)[parts[1]], _rank(months)[parts[0]])
    )  # fmt: skip
    order = order[known[order]]
    month, reader, facility, modality = (part[order].tolist() for part in parts)
    return {
        "month": [months[i] for i in month],
        "reader_id": [readers[i] for i in reader],
        "reader": [reader_labels[i] for i in reader],
        "facility_id": [facilities[i] for i in facility],
        "facility": [facility_labels[i] for i in facility],
        "modality": [modalities[i] for i in modality],
        "reads": reads[order].tolist(),
    }


def workload_rows(table: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [
        {"month": a, "reader_id": b, "reader": c, "facility_id": d, "facility": e,
         "modality": f, "reads": g}
        for a, b, c, d, e, f, g in zip(*(table[k] for k in WORKLOAD_KEYS), strict=True)
    ]  # fmt: skip


def _csv_field(value: Any) -> str:
    """``value`` as ``csv.writer`` writes it among other fields (quoted only when needed)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value, 0])
    return out.getvalue()[: -len(",0\n")]


def workload_csv(table: dict[str, list[Any]], header: Sequence[str]) -> str:
    """What ``csv.writer`` makes of the rows, built from each distinct value's text once."""
    assert tuple(header) == WORKLOAD_KEYS
    fields_ = [list(map(str, table[k])) if k == "reads" else _csv_texts(table[k]) for k in header]
    lines = [_csv_field_row(header)]
    lines += [",".join(row) for row in zip(*fields_, strict=True)]
    return "\r\n".join(lines) + "\r\n"


def _csv_texts(values: list[Any]) -> list[str]:
    """:func:`_csv_field` of each value (one column: one type), once per distinct value."""
    text = {v: _csv_field(v) for v in set(values)}
    return list(map(text.__getitem__, values))


def _csv_field_row(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


RATINGS = ("good", "acceptable", "poor", "unrated")


def quality(
    columns: Columns, rows: np.ndarray, time_period: str, names: Names
) -> list[dict[str, Any]]:
    """The entries of ``service.dashboard.turnaround.quality`` (rows: first signed in the period, in
    scope): per period, facility and modality in that order (facility by name, then id), the
    ratings counted and the three most frequent reasons of acceptable and poor ratings, ties in
    the order: reasons of acceptable ones first, then by text. A rating other than good,
    acceptable or poor (authoring accepts no other) counts as unrated."""
    ids, parts, values = group_parts(columns, rows, (time_period, "facility", "modality"), "signed")
    periods, facilities, modalities = values
    n_groups = len(parts[0])
    rating_index, rating_codes = _dense(columns["quality"][rows].astype(np.int64))
    labels = ["unrated" if c == NO_ID else columns.labels[c] for c in rating_codes.tolist()]
    labels = [label if label in RATINGS else "unrated" for label in labels]
    column = [RATINGS.index(label) for label in labels]
    reason_index, reason_codes = _dense(columns["quality_reason"][rows].astype(np.int64))
    reasons = [columns.labels[c] for c in reason_codes.tolist()]
    width = len(reasons)
    # One count per (group, rating, reason); everything else comes from this small table.
    cell = ids * (len(labels) * width)
    cell += rating_index * width
    cell += reason_index
    table = np.bincount(cell, minlength=n_groups * len(labels) * width)
    table = table.reshape(n_groups, len(labels), width)
    counts = np.zeros((n_groups, len(RATINGS)), np.int64)
    fair = np.zeros((n_groups, width), np.int64)
    n_pair = np.zeros((n_groups, width), np.int64)
    for q, c in enumerate(column):
        counts[:, c] += table[:, q, :].sum(axis=1)
        if c in (1, 2):  # acceptable, poor: their reasons count
            n_pair += table[:, q, :]
        if c == 1:
            fair += table[:, q, :]
    if "" in reasons:
        n_pair[:, reasons.index("")] = 0
    n_pair = n_pair.ravel()
    acceptable = fair.ravel() > 0
    found = np.flatnonzero(n_pair)
    by = np.lexsort(
        (_rank(reasons)[found % width], ~acceptable[found], -n_pair[found], found // width)
    )
    found = found[by]
    group_of = found // width
    first = np.searchsorted(group_of, group_of, side="left")
    top = found[np.arange(len(found)) - first < 3]
    mains = [
        {"reason": reasons[r], "count": n}
        for r, n in zip((top % width).tolist(), n_pair[top].tolist(), strict=True)
    ]
    bounds = np.searchsorted(top // width, np.arange(n_groups + 1)).tolist()
    facility_names = names("facilities", facilities)
    facility_labels = [facility_names.get(f) for f in facilities]
    order = np.lexsort(
        (_rank(modalities)[parts[2]], _rank(facilities)[parts[1]],
         _rank(facility_labels, str)[parts[1]], _rank(periods)[parts[0]])
    )  # fmt: skip
    order = order[np.array([label is not None for label in facility_labels], bool)[parts[1][order]]]
    period, facility, modality = ([v[i] for i in part[order].tolist()]
                                  for part, v in zip(parts, values, strict=True))  # fmt: skip
    return [
        {"period": p, "facility_id": f, "facility": facility_names[f], "modality": m,
         "good": good, "acceptable": fair, "poor": poor, "unrated": unrated,
         "main_reasons": mains[bounds[g] : bounds[g + 1]]}
        for g, p, f, m, (good, fair, poor, unrated) in zip(
            order.tolist(), period, facility, modality, counts[order].tolist(), strict=True
        )
    ]  # fmt: skip
