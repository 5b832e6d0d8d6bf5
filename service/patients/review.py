"""An administrator's decisions on patient identities: link a likely match or any two local
identities, reject a match, unlink an identity, reverse a change.

Each runs inside one write transaction (``Database.write``), so a refusal leaves nothing half
applied: the link history row (``patient_link_changes``, with the reason and the actor), the
review list's row and the pairs a change decided are written together or not at all. The
reason is required (the HTTP edge refuses a blank one). Merging, separating and reversing are
:mod:`service.storage.patients`' rules; what is added here is the review list and the refusals
as :class:`~service.storage.Conflict` codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from ..clock import to_iso, utc_now
from ..identity_numbers import mask
from ..storage import Conflict, RecordNotFound
from ..storage import patient_candidates as candidate_store
from ..storage import patients as store


@dataclass(frozen=True)
class Decision:
    """What a decision did: the link change it recorded (if any) and the identities involved."""

    change_id: int | None
    identity_ids: tuple[int, ...]
    patient_ids: tuple[str, ...] = ()
    """Their local Patient IDs, for the audit trail's per-patient index (never a number)."""


def _decision(db: sqlite_utils.Database, change_id: int | None, ids: list[int]) -> Decision:
    described = candidate_store.identities(db, ids)
    patients = sorted({row["patient_id"] for row in described.values()})
    return Decision(change_id, tuple(ids), tuple(patients))


def _now() -> str:
    return to_iso(utc_now())


def link_identities(
    db: sqlite_utils.Database, identity_id: int, other_identity_id: int, actor_id: int, reason: str
) -> Decision:
    """Put two local identities (and everyone linked with either) into one person."""
    if identity_id == other_identity_id:
        raise Conflict("same_identity", "an identity cannot be linked with itself")
    try:
        change = store.merge_persons(
            db, identity_id, other_identity_id, "administrator", actor_id, reason
        )
    except ValueError as exc:
        raise Conflict("already_linked", str(exc)) from exc
    candidate_store.settle(db, [identity_id, other_identity_id], _now())
    return _decision(db, change, [identity_id, other_identity_id])


def link_candidate(
    db: sqlite_utils.Database, candidate_id: int, actor_id: int, reason: str
) -> Decision:
    """Confirm a likely match: link its two identities and mark it linked, by whom and why."""
    candidate = _pending(db, candidate_id)
    pair = (candidate["identity_id"], candidate["other_identity_id"])
    decision = link_identities(db, *pair, actor_id, reason)
    candidate_store.decide(db, candidate_id, "linked", actor_id, reason, _now(), decision.change_id)
    return decision


def reject_candidate(
    db: sqlite_utils.Database, candidate_id: int, actor_id: int, reason: str
) -> Decision:
    """Two different people: the pair leaves the review list and is not proposed again."""
    candidate = _pending(db, candidate_id)
    candidate_store.decide(db, candidate_id, "rejected", actor_id, reason, _now())
    return _decision(db, None, [candidate["identity_id"], candidate["other_identity_id"]])


def _pending(db: sqlite_utils.Database, candidate_id: int) -> dict:
    candidate = candidate_store.get_candidate(db, candidate_id)
    if candidate["status"] != "pending":
        raise Conflict(
            "candidate_decided", f"the likely match {candidate_id} is already {candidate['status']}"
        )
    return candidate


def unlink_identity(
    db: sqlite_utils.Database, identity_id: int, actor_id: int, reason: str
) -> Decision:
    """Take an identity out of its person; no identifier links it back to those it left."""
    identity = candidate_store.identities(db, [identity_id]).get(identity_id)
    if identity is None:
        raise RecordNotFound(f"patient identity {identity_id}")
    left = store.linked_identities(db, identity["facility_id"], identity["patient_id"])
    try:
        change = store.separate_identity(db, identity_id, actor_id, reason)
    except ValueError as exc:
        raise Conflict("not_linked", str(exc)) from exc
    involved = [row["id"] for row in left]
    candidate_store.settle(db, involved, _now())
    return _decision(db, change, involved)


def reverse(db: sqlite_utils.Database, change_id: int, actor_id: int, reason: str) -> Decision:
    """Undo a link or unlink (once); the review list's pairs it decides are resolved."""
    try:
        reversal = store.reverse_change(db, change_id, actor_id, reason)
    except ValueError as exc:
        raise Conflict("already_reversed", str(exc)) from exc
    change = store.get_change(db, change_id)
    involved = [change["identity_id"]]
    if change["other_identity_id"] is not None:
        involved.append(change["other_identity_id"])
    candidate_store.settle(db, involved, _now())
    return _decision(db, reversal, involved)


def described_identities(db: sqlite_utils.Database, identity_ids: list[int]) -> dict[int, dict]:
    """Those identities side by side: facility, local ID, name, birth date, sex, and the
    national identifiers each carried, in full and masked (for administrators only: the
    caller decides who may read ``value``)."""
    described = candidate_store.identities(db, identity_ids)
    for identity in described.values():
        identity["identifiers"] = []
    for row in store.identifiers_of(db, described):
        row["masked"] = mask(row["value"])
        described[row["identity_id"]]["identifiers"].append(row)
    return described


def review_list(db: sqlite_utils.Database, status: str, limit: int = 200) -> list[dict]:
    """The likely matches in that status, each with both identities described."""
    candidates = candidate_store.list_candidates(db, status, limit)
    ids = [c[k] for c in candidates for k in ("identity_id", "other_identity_id")]
    described = described_identities(db, ids)
    for candidate in candidates:
        candidate["identity"] = described[candidate["identity_id"]]
        candidate["other"] = described[candidate["other_identity_id"]]
    return candidates


def link_history(db: sqlite_utils.Database, limit: int = 100) -> list[dict]:
    """The link and unlink history, newest first, with the identities each named."""
    changes = candidate_store.recent_changes(db, limit)
    ids = [c[k] for c in changes for k in ("identity_id", "other_identity_id") if c[k]]
    described = described_identities(db, ids)
    for change in changes:
        change["identity"] = described.get(change["identity_id"])
        change["other"] = described.get(change["other_identity_id"] or 0)
    return changes
