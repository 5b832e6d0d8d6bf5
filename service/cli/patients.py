"""``teleread patients``: the review list of likely matches, and linking, unlinking and
reversing from the server's shell (what /admin/patients does), each with a reason and an audit
record written in the same transaction (user: none, ``via: cli``).

National numbers are printed masked: a shell's scroll-back and a pasted ticket are not the
places for them; the page shows them in full to the centre's administrators.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from ..patients import review
from ..settings import Settings
from ..storage import Database
from ..storage.audit import append_audit
from ..storage.audit_chain import AuditEntry


def add_patient_commands(commands: argparse._SubParsersAction) -> None:
    patients = commands.add_parser(
        "patients", help="patient identities across facilities: likely matches, link, unlink"
    )
    sub = patients.add_subparsers(dest="patients_command", required=True)
    listing = sub.add_parser("candidates", help="likely matches as JSON lines (numbers masked)")
    listing.add_argument("--status", choices=("pending", "linked", "rejected"), default="pending")
    for name, target, text in (
        ("link", "candidate", "link a likely match (its id)"),
        ("reject", "candidate", "reject a likely match: two different people"),
        ("unlink", "identity", "take a local identity (its id) out of its person"),
        ("reverse", "change", "reverse a link or unlink (the link history's id)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument(target, type=int)
        command.add_argument("--reason", required=True, help="why (kept in the history)")


ACTIONS: dict[str, tuple[Callable[..., review.Decision], str, str]] = {
    "link": (review.link_candidate, "patient.linked", "patient_link_candidate"),
    "reject": (review.reject_candidate, "patient.link_rejected", "patient_link_candidate"),
    "unlink": (review.unlink_identity, "patient.unlinked", "patient_identity"),
    "reverse": (review.reverse, "patient.link_reversed", "patient_link_change"),
}


def _masked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for side in ("identity", "other"):
            for identifier in row[side]["identifiers"]:
                identifier["value"] = identifier["masked"]
    return rows


def _decide(db: sqlite_utils.Database, name: str, target: int, reason: str) -> dict[str, Any]:
    """The decision and its audit record, in one transaction."""
    action, audit_action, resource = ACTIONS[name]
    decision = action(db, target, None, reason)
    detail = {
        "identities": list(decision.identity_ids),
        "change": decision.change_id,
        "patients": list(decision.patient_ids),
        "via": "cli",
    }
    append_audit(
        db,
        AuditEntry(
            at=to_iso(utc_now()),
            action=audit_action,
            outcome="success",
            resource_type=resource,
            resource_id=str(target),
            detail=detail,
        ),  # fmt: skip
    )
    return {"change_id": decision.change_id, "identity_ids": list(decision.identity_ids)}


def patients_command(settings: Settings, args: argparse.Namespace) -> int:
    database = Database(settings.database_path)
    try:
        if args.patients_command == "candidates":
            for row in _masked(database.read_sync(review.review_list, args.status)):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        target = getattr(args, {"unlink": "identity", "reverse": "change"}.get(
            args.patients_command, "candidate"
        ))  # fmt: skip
        if not args.reason.strip():
            raise ValueError("give a reason")
        answer = database.write_sync(_decide, args.patients_command, target, args.reason.strip())
        print(json.dumps(answer))
        return 0
    finally:
        database.close()
