"""``teleread audit``: verify the hash chain and its anchors, export the records."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ..audit import AuditEntry
from ..audit.atna import AuditSource
from ..audit.export import default_source_id, write_export
from ..audit.verify import NO_ANCHOR, verify_database
from ..clock import to_iso, utc_now
from ..settings import Settings
from ..storage import Database
from ..storage.audit import append_audit, append_only_triggers_present, audit_head
from ..storage.audit_anchor import Anchor, read_anchor
from ..storage.audit_search import AuditFilter
from ..storage.opening import open_database


def add_audit_commands(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="verify and export the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check the hash chain and its anchors; exit 1 naming the first break"
    )
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="FILE",
        help="also check against an anchor kept elsewhere (an export's .anchor.json)",
    )
    export = audit_commands.add_parser(
        "export", help="export records as CSV or ATNA (one audit message per line)"
    )
    export.add_argument("--format", required=True, choices=("csv", "atna"))
    export.add_argument(
        "--from", dest="since", type=iso_instant, metavar="ISO", help="ISO 8601, inclusive"
    )
    export.add_argument(
        "--to", dest="until", type=iso_instant, metavar="ISO", help="ISO 8601, exclusive"
    )
    export.add_argument(
        "--output", help="file to write, and its anchor to FILE.anchor.json (default: stdout)"
    )
    export.add_argument("--source-id", help="ATNA AuditSourceID (default: teleread@<host>)")


def iso_instant(text: str) -> str:
    """An ISO 8601 time with a zone (``Z`` or ``+08:00``), as the stored UTC text."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +08:00): {text!r}")
    return to_iso(moment)


def audit_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.audit_command == "verify":
            return audit_verify(database, args.anchor)
        return audit_export(database, args)
    finally:
        database.close()


def audit_verify(database: Database, anchor_files: Sequence[str] = ()) -> int:
    """``teleread audit verify``: 0 and the count when intact, 1 and the first broken record.

    Checked against the anchor file beside the database (which must exist once there are
    records) and any kept anchors named with ``--anchor``.
    """
    if not database.read_sync(append_only_triggers_present):
        print("warning: the append-only triggers of audit_log are missing", file=sys.stderr)
    try:
        local = read_anchor(database.anchor.path)
        kept = [Anchor.from_json(Path(name).read_text(encoding="utf-8")) for name in anchor_files]
    except (ValueError, OSError) as exc:
        print(f"audit trail BROKEN: an anchor cannot be read: {exc}")
        return 1
    result = database.read_sync(verify_database, [a for a in (local, *kept) if a is not None])
    if result.ok and local is None and result.checked:
        print(f"audit trail BROKEN: {NO_ANCHOR} ({database.anchor.path} is missing)")
        return 1
    if not result.ok:
        print(f"audit trail BROKEN at record {result.first_broken_id}: {result.reason}")
        return 1
    print(f"audit trail intact: {result.checked} records")
    print(f"last hash: {result.last_hash}")
    if result.anchor_lag:
        print(
            f"anchor lags by {result.anchor_lag} record{'s' if result.anchor_lag != 1 else ''}"
            " (written just after each commit; a crash in between leaves this, not tampering)"
        )
    return 0


def audit_export(database: Database, args: argparse.Namespace) -> int:
    """``teleread audit export``: stream the records; the export is itself recorded."""
    flt = AuditFilter(since=args.since, until=args.until)
    source = AuditSource(args.source_id or default_source_id())
    head = database.read_sync(audit_head)
    anchor = Anchor(head[0], head[0], head[1], to_iso(utc_now())) if head else None
    if args.output:
        with open(args.output, "wb") as out:
            count = database.read_sync(write_export, out, args.format, flt, source)
        if anchor is not None:
            Path(args.output + ".anchor.json").write_text(anchor.to_json() + "\n")
    else:
        count = database.read_sync(write_export, sys.stdout.buffer, args.format, flt, source)
        sys.stdout.buffer.flush()
        if anchor is not None:
            print(f"anchor: {anchor.to_json()}", file=sys.stderr)
    filters = {k: v for k, v in (("from", args.since), ("to", args.until)) if v}
    entry = AuditEntry(
        at=to_iso(utc_now()),
        action="audit.export",
        outcome="success",
        username=f"os:{os_user()}",
        resource_type="audit",
        detail={"filters": filters, "format": args.format, "exported": count, "via": "cli"},
    )
    database.write_sync(append_audit, entry)
    print(f"exported {count} records", file=sys.stderr)
    return 0


def os_user() -> str:
    """Who ran the command, as the operating system says (the CLI has no teleread login)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
