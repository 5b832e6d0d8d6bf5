"""``teleread patients``: the review list of likely matches, and linking, unlinking and
reversing from the server's shell (what /admin/patients does), each with a reason and an audit
record written in the same transaction (user: none, ``via: cli``); and ``backfill``, which
reads once the national identifiers of the studies already in Orthanc (those that arrived
before teleread read them), as ingest reads a new study's.

National numbers are printed masked: a shell's scroll-back and a pasted ticket are not the
places for them; the page shows them in full to the centre's administrators.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

import sqlite_utils

from ..clock import to_iso, utc_now
from ..intake.dicom_identifiers import dicom_identifiers
from ..patients import review
from ..patients.identify import identify
from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..runtime.orthanc.process import load_or_create_credentials
from ..settings import Settings
from ..storage import Database
from ..storage import patient_candidates as candidate_store
from ..storage.audit import append_audit
from ..storage.audit_chain import AuditEntry
from ..storage.opening import open_database


def add_patient_commands(commands: argparse._SubParsersAction) -> None:
    patients = commands.add_parser(
        "patients", help="patient identities across facilities: likely matches, link, unlink"
    )
    sub = patients.add_subparsers(dest="patients_command", required=True)
    listing = sub.add_parser("candidates", help="likely matches as JSON lines (numbers masked)")
    listing.add_argument("--status", choices=("pending", "linked", "rejected"), default="pending")
    sub.add_parser(
        "backfill",
        help="read the national identifiers of the studies already in Orthanc once (links"
        " and likely matches follow); prints counts as JSON",
    )
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


def _orthanc(settings: Settings) -> OrthancClient:
    if settings.managed_orthanc:
        credentials = load_or_create_credentials(settings.orthanc_dir)
        url = f"http://127.0.0.1:{settings.orthanc_http_port}"
        return OrthancClient(url, credentials.username, credentials.password)
    return OrthancClient(
        settings.orthanc_url or "", settings.orthanc_username, settings.orthanc_password
    )


async def backfill(settings: Settings, database: Database) -> dict[str, int]:
    """Each study's first instance's identifiers, recorded for every consultation of it (one
    transaction each, so an interrupted run keeps what it did and a rerun repeats nothing)."""
    studies: dict[str, list[int]] = {}
    for consultation_id, study_id in await database.read(candidate_store.consultations_with_images):
        studies.setdefault(study_id, []).append(consultation_id)
    counts = {"studies": 0, "with_identifiers": 0, "links": 0}
    client = _orthanc(settings)
    try:
        for study_id, consultation_ids in studies.items():
            counts["studies"] += 1
            try:
                series = await client.study_series(study_id)
                first = next(i for s in series for i in s.get("Instances", []))
                tags = await client.get(f"/instances/{first}/tags?short")
            except OrthancUnavailable as exc:
                raise ValueError(f"the image archive is not reachable: {exc}") from exc
            except (OrthancError, StopIteration):
                continue  # gone from Orthanc since: nothing to read
            found = dicom_identifiers(tags) if isinstance(tags, dict) else ()
            if not found:
                continue
            counts["with_identifiers"] += 1
            for consultation_id in consultation_ids:
                recorded = await database.write(identify, consultation_id, found, "dicom")
                counts["links"] += len(recorded.links) if recorded else 0
    finally:
        await client.close()
    return counts


def patients_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.patients_command == "backfill":
            print(json.dumps(asyncio.run(backfill(settings, database))))
            return 0
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
