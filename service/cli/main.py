"""The ``teleread`` command: serve, seed demo data, manage facilities and users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import re
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from ..app import create_app
from ..audit import AuditEntry
from ..audit.anchor import Anchor, read_anchor
from ..audit.atna import AuditSource
from ..audit.export import default_source_id, write_export
from ..audit.verify import NO_ANCHOR, verify_database
from ..auth.passwords import hash_password
from ..clock import to_iso, utc_now
from ..demo import seed as demo
from ..demo.signed_report import sign_demo_report
from ..http.admin_models import AET_PATTERN
from ..http.keys import DATABASE, FOLLOWER, SECONDARIES, SERVICE_EXIT, SETTINGS, SLA
from ..intake.modalities import modality_entry, orthanc_modality
from ..runtime.orthanc.auth import basic_auth_header
from ..runtime.orthanc.process import OrthancStartError, load_or_create_credentials
from ..runtime.web_processes import PrimaryLock, ProcessRole, bus_path_for
from ..settings import Settings, SettingsError, load_settings, web_process_count
from ..storage import Conflict, Database, RecordNotFound
from ..storage import consultations as consultation_store
from ..storage import facilities as facility_store
from ..storage import users as user_store
from ..storage.audit import append_audit, append_only_triggers_present, audit_head
from ..storage.audit_search import AuditFilter
from ..storage.facilities import FACILITY_KINDS
from ..storage.users import ROLES
from .reports import add_report_commands, report_command

log = logging.getLogger("teleread")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teleread", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start Orthanc (managed mode) and the web service")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="on first start, seed demo facilities, users and studies",
    )

    commands.add_parser("demo", help="seed demo facilities, users and studies, then exit")

    facility = commands.add_parser("facility", help="manage facilities")
    facility_commands = facility.add_subparsers(dest="facility_command", required=True)
    add = facility_commands.add_parser("add", help="register a facility (prints its id)")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=FACILITY_KINDS)
    add.add_argument("--aet", required=True, help="the facility's DICOM AE title")
    add.add_argument("--timezone", default=None, help="IANA zone, default the service's")
    add.add_argument("--contact", default="")
    add.add_argument("--dicom-host", default=None)
    add.add_argument("--dicom-port", type=int, default=None)
    facility_commands.add_parser("list", help="list facilities as JSON lines")

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser("add", help="create a user")
    user_add.add_argument("username")
    user_add.add_argument("--role", required=True, choices=ROLES)
    user_add.add_argument("--facility", required=True, type=int, help="facility id")
    user_add.add_argument("--display-name", default="")
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from standard input",
    )
    add_audit_commands(commands)
    add_report_commands(commands)
    return parser


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
    export = audit_commands.add_parser("export", help="export records as CSV or ATNA XML")
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


def configure_logging() -> None:
    """INFO to standard error, for the command and for every web process it starts."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # highdicom narrates every module it copies into a report object at INFO.
    logging.getLogger("highdicom").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"teleread: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return serve(settings, seed_demo=args.demo)
        if args.command == "demo":
            return asyncio.run(seed_demo(settings))
        if args.command == "facility":
            return facility_command(settings, args)
        if args.command == "audit":
            return audit_command(settings, args)
        if args.command in ("verify", "signing"):
            return report_command(settings, args)
        return user_command(settings, args)
    except (Conflict, RecordNotFound, ValueError, OrthancStartError) as exc:
        print(f"teleread: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 1


def open_database(settings: Settings) -> Database:
    return Database(settings.database_path)


def facility_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.facility_command == "list":
            for row in database.read_sync(facility_store.list_facilities):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        timezone = args.timezone or settings.default_timezone
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        aet = args.aet.strip()
        if not re.fullmatch(AET_PATTERN, aet):
            raise ValueError("an AE title has 1 to 16 letters, digits, '_' or '-'")
        facility_id = database.write_sync(
            facility_store.add_facility,
            name=args.name,
            kind=args.kind,
            aet=aet,
            timezone=timezone,
            contact=args.contact,
            dicom_host=args.dicom_host,
            dicom_port=args.dicom_port,
        )
        facility = database.read_sync(facility_store.get_facility, facility_id)
    finally:
        database.close()
    print(facility_id)
    register_with_running_orthanc(settings, facility)
    return 0


def register_with_running_orthanc(settings: Settings, facility: dict) -> None:
    """Tell a running Orthanc about the new AE title now; otherwise the service does at start."""
    if settings.managed_orthanc:
        credentials = load_or_create_credentials(settings.orthanc_dir)
        url = f"http://127.0.0.1:{settings.orthanc_http_port}"
        username, password = credentials.username, credentials.password
    else:
        url = settings.orthanc_url or ""
        username, password = settings.orthanc_username or "", settings.orthanc_password or ""
    entry = modality_entry(facility)
    body = json.dumps(orthanc_modality(entry))
    request = urllib.request.Request(
        f"{url.rstrip('/')}/modalities/{entry['name']}",
        data=body.encode(),
        method="PUT",
        headers=basic_auth_header(username, password),
    )
    try:
        with urllib.request.urlopen(request, timeout=3):
            pass
        print(f"registered AE title {entry['aet']} with Orthanc", file=sys.stderr)
    except (urllib.error.URLError, OSError):
        print(
            f"Orthanc is not running: AE title {entry['aet']} will be registered when the "
            "service starts",
            file=sys.stderr,
        )


def user_command(settings: Settings, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    password_hash = hash_password(password)
    database = open_database(settings)
    try:
        user_id = database.write_sync(
            user_store.add_user,
            username=args.username,
            password_hash=password_hash,
            role=args.role,
            facility_id=args.facility,
            display_name=args.display_name,
        )
    finally:
        database.close()
    print(user_id)
    return 0


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
            count = database.read_sync(write_export, out, args.format, flt, source, anchor)
        if anchor is not None:
            Path(args.output + ".anchor.json").write_text(anchor.to_json() + "\n")
    else:
        count = database.read_sync(
            write_export, sys.stdout.buffer, args.format, flt, source, anchor
        )
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


def print_banner(settings: Settings, seeded: bool, processes: int = 1) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    served_by = f" ({processes} web processes)" if processes > 1 else ""
    lines = ["", f"teleread is running at http://{host}:{settings.port}/{served_by}"]
    if settings.managed_orthanc:
        lines.append(
            f"DICOM modalities send to AE title {settings.orthanc_aet} on port "
            f"{settings.orthanc_dicom_port}"
        )
    if seeded:
        lines.append(f"Demo logins (password for all: {demo.DEMO_PASSWORD}):")
        for username, role, facility_key, _ in demo.USERS:
            facility = next(f.name for f in demo.FACILITIES if f.key == facility_key)
            lines.append(f"  {username:<8} {role:<13} {facility}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def refuse_a_taken_port(host: str, port: int) -> None:
    """With ``SO_REUSEPORT`` a second service of the same user could bind the port too and take
    half the connections; a plain bind first fails as it would without it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def serve(settings: Settings, seed_demo: bool = False) -> int:
    with PrimaryLock(settings.data_dir):
        return _serve(settings, seed_demo)


def _serve(settings: Settings, seed_demo: bool) -> int:
    seeded = False
    if seed_demo:
        database = open_database(settings)
        try:
            seeded = database.read_sync(user_store.count_users) == 0
            if seeded:
                demo.seed_accounts(database)
            else:
                seeded = database.read_sync(user_store.user_by_username, "admin") is not None
        finally:
            database.close()
    count = web_process_count(settings)
    if count > 1:
        refuse_a_taken_port(settings.host, settings.port)
    role = ProcessRole(0, count, bus_path_for(settings) if count > 1 else None)
    app = create_app(settings, role)
    if seed_demo:
        app.cleanup_ctx.append(demo_studies_context)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            reuse_port=count > 1,
            print=lambda _message: print_banner(settings, seeded, count),
            shutdown_timeout=5,
            access_log=None,
        )
    finally:  # a second Ctrl-C cuts the clean-up short: the secondaries must still go
        secondaries = app.get(SECONDARIES)
        if secondaries is not None:
            secondaries.stop_now()
    ending = app[SERVICE_EXIT]
    if ending.code:
        print(f"teleread: {ending.reason}", file=sys.stderr)
    return ending.code


async def demo_studies_context(app: web.Application):
    """Send the demo studies once, on the first start with an empty archive."""
    settings = app[SETTINGS]
    task: asyncio.Task | None = None
    database = app[DATABASE]
    already = await database.read(consultation_store.count_consultations)
    if not already:
        task = asyncio.create_task(send_demo(app, settings))
    yield
    if task is not None and not task.done():
        task.cancel()


async def send_demo(app: web.Application, settings: Settings) -> None:
    database = app[DATABASE]
    facility_ids = {
        f.key: (await database.read(facility_store.facility_by_aet, f.aet) or {}).get("id")
        for f in demo.FACILITIES
    }
    if None in facility_ids.values():
        return
    try:
        sent = await demo.send_demo_studies(
            database,
            facility_ids,
            dicom_host="127.0.0.1",
            dicom_port=settings.orthanc_dicom_port,
            called_aet=settings.orthanc_aet,
            sla=app[SLA],
        )
        log.info("demo: sent %d instances by C-STORE; they reach the worklist once stable", sent)
        await sign_demo_report(app, demo.DEMO_PASSWORD)
    except Exception:
        log.exception("demo studies could not be sent")


async def seed_demo(settings: Settings) -> int:
    """``teleread demo``: accounts and studies, through a temporary start of the service's core
    (which follows Orthanc: not while a ``teleread serve`` has the data directory)."""
    with PrimaryLock(settings.data_dir):
        return await _seed_demo(settings)


async def _seed_demo(settings: Settings) -> int:
    database = open_database(settings)
    try:
        demo.seed_accounts(database)
    finally:
        database.close()
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await send_demo(app, settings)
        follower = app[FOLLOWER]
        await asyncio.wait_for(_wait_until_ingested(app), timeout=settings.stable_age * 3 + 60)
        await follower.caught_up.wait()
    finally:
        await runner.cleanup()
    print("demo data seeded")
    return 0


async def _wait_until_ingested(app: web.Application) -> None:
    expected = len(demo.demo_studies(utc_now()))
    database = app[DATABASE]
    while True:
        ready = await database.read(consultation_store.count_consultations, with_images=True)
        if ready >= expected:
            return
        await asyncio.sleep(0.5)
