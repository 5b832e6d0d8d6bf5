"""Checking the audit trail's hash chain, record by record, in one streaming pass.

Each record stores ``prev_hash`` (the hash of the record before it, :data:`GENESIS_HASH` for the
first) and ``hash`` = :func:`chain_hash` of ``prev_hash`` and its canonical form. Walking the
records in id order and recomputing both finds:

* a record edited in place (its recomputed hash differs from the stored one);
* a record edited *and* re-hashed (the next record's ``prev_hash`` no longer matches);
* a record deleted (ids are allocated consecutively, so a gap means something is missing);
* a patient-index row removed, added or changed (``audit_patients`` must list exactly the
  patients each record names, or the search by patient would hide records).

What a chain cannot show by itself is the removal of the *newest* records: that is what anchors
are for (:mod:`service.storage.audit_anchor`). Each anchor names a record (id, hash) the trail
must still hold unchanged; a trail that ends before an anchor's record was cut short. A trail
ahead of its anchor is normal for a moment (the anchor is written just after each commit) and
reported as lag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace

import sqlite_utils

from ..storage.audit import audit_patient_ids, audit_patient_rows, audit_rows
from ..storage.audit_anchor import Anchor
from ..storage.audit_chain import GENESIS_HASH, AuditEntry, chain_hash

CHANGED = "hash mismatch: record changed"
RELINKED = "chain broken: previous hash differs"
INDEX_DIFFERS = "patient index differs from the record"
ANCHOR_DIFFERS = "differs from the anchored record: the trail was rewritten"
NO_ANCHOR = "no anchor: cannot tell whether the newest records were removed"


def missing_before(record_id: int) -> str:
    return f"record missing before id {record_id}"


def missing_newest(anchor: Anchor, last_id: int) -> str:
    missing = anchor.id - last_id
    return (
        f"{missing} newest record{'s' if missing != 1 else ''} missing: the anchor written at "
        f"{anchor.at or 'an unknown time'} names record {anchor.id}, the trail ends at "
        f"{last_id}"
    )


@dataclass(frozen=True)
class Verification:
    """The outcome of a check: ``ok``, how many records were checked, and where it broke."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""
    last_hash: str = GENESIS_HASH
    last_id: int = 0
    anchor_lag: int | None = None
    """Records committed after the newest anchor was written (0: the anchor is the head)."""


def verify_records(
    rows: Iterable[dict],
    patient_index: Iterable[tuple[int, str]] | None = None,
    anchors: Iterable[Anchor] = (),
) -> Verification:
    """Walk ``rows`` (stored audit_log rows, in id order) and stop at the first broken one.

    ``patient_index`` is the ``(audit_id, patient_id)`` rows of ``audit_patients`` in insertion
    order; when given, each record's patients are checked against it too. ``anchors``: each
    names a record the trail must hold with that hash (the local anchor file, kept exports).
    """
    anchors = list(anchors)
    result = _walk(rows, patient_index, {(a.id, a.hash) for a in anchors})
    if not result.ok or not anchors:
        return result
    newest = max(anchors, key=lambda a: a.id)
    if newest.id > result.last_id:
        return replace(
            result,
            ok=False,
            first_broken_id=result.last_id + 1,
            reason=missing_newest(newest, result.last_id),
        )
    return replace(result, anchor_lag=result.last_id - newest.id)


def _walk(
    rows: Iterable[dict],
    patient_index: Iterable[tuple[int, str]] | None,
    anchored: set[tuple[int, str]],
) -> Verification:
    anchored_ids = {record_id for record_id, _ in anchored}
    index = _Index(patient_index) if patient_index is not None else None
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
    for row in rows:
        record_id = row["id"]
        if record_id != expected_id:
            return Verification(False, checked, record_id, missing_before(record_id), expected_prev)
        if row["prev_hash"] != expected_prev:
            return Verification(False, checked, record_id, RELINKED, expected_prev)
        detail = _detail(row["detail"])
        if detail is None or not _hash_matches(row, detail):
            return Verification(False, checked, record_id, CHANGED, expected_prev)
        if index is not None:
            wanted = audit_patient_ids(row["patient_id"], detail)
            if not index.matches(record_id, wanted):
                return Verification(False, checked, record_id, INDEX_DIFFERS, expected_prev)
        if record_id in anchored_ids and (record_id, row["hash"]) not in anchored:
            return Verification(False, checked, record_id, ANCHOR_DIFFERS, expected_prev)
        expected_prev, expected_id, checked = row["hash"], record_id + 1, checked + 1
    if index is not None and (stray := index.leftover()) is not None:
        return Verification(False, checked, stray, INDEX_DIFFERS, expected_prev)
    return Verification(True, checked, last_hash=expected_prev, last_id=expected_id - 1)


_FIELDS = tuple(f.name for f in fields(AuditEntry))


def _detail(text: str) -> dict | None:
    """The stored detail, or None when it is no longer a JSON object (it was edited)."""
    try:
        detail = json.loads(text)
    except (TypeError, ValueError):
        return None
    return detail if isinstance(detail, dict) else None


def _hash_matches(row: dict, detail: dict) -> bool:
    """Does the stored hash match the record? :func:`chain_hash` is the definition; this first
    tries the same computation without building an :class:`AuditEntry` (whose ``asdict`` copy
    costs three quarters of the time), and falls back to the definition on a mismatch, so a
    change to the canonical form can never make an intact record look broken."""
    data = {name: row[name] for name in _FIELDS}
    data["detail"] = detail
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    prefix = row["prev_hash"].encode("ascii") + b"\n"
    if hashlib.sha256(prefix + canonical.encode("utf-8")).hexdigest() == row["hash"]:
        return True
    return chain_hash(row["prev_hash"], AuditEntry.from_row(row)) == row["hash"]


class _Index:
    """A cursor over the patient index, consumed record by record."""

    def __init__(self, rows: Iterable[tuple[int, str]]) -> None:
        self._rows: Iterator[tuple[int, str]] = iter(rows)
        self._peek: tuple[int, str] | None = next(self._rows, None)

    def matches(self, audit_id: int, wanted: list[str]) -> bool:
        found: list[str] = []
        while self._peek is not None and self._peek[0] <= audit_id:
            if self._peek[0] < audit_id:
                return False  # a row for no record, or out of insertion order
            found.append(self._peek[1])
            self._peek = next(self._rows, None)
        return sorted(found) == wanted

    def leftover(self) -> int | None:
        return self._peek[0] if self._peek is not None else None


def verify_database(db: sqlite_utils.Database, anchors: Iterable[Anchor] = ()) -> Verification:
    """Verify the audit trail of an open database (streams; nothing is held in memory)."""
    return verify_records(audit_rows(db), audit_patient_rows(db), anchors)
