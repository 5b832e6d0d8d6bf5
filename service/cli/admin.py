"""``teleread facility`` and ``teleread user``: register facilities and people (and the DICOM
person name a signer's reports carry).

A new facility's AE title is registered with a running Orthanc at once; otherwise the service
registers it when it next starts (service/intake/modalities.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worklists.review import DEFAULT_GRADE, Grade

from ..auth.passwords import hash_password
from ..intake.modalities import AET_PATTERN, modality_entry, orthanc_modality
from ..reports.person_names import checked_person_name
from ..runtime.orthanc.auth import basic_auth_header
from ..runtime.orthanc.process import load_or_create_credentials
from ..settings import Settings
from ..storage import Database
from ..storage import facilities as facility_store
from ..storage import users as user_store
from ..storage.facilities import (
    CHARACTER_SETS,
    FACILITY_KINDS,
    HL7_CODE_PATTERN,
    HL7_ENDPOINT_PATTERN,
)
from ..storage.opening import open_database
from ..storage.users import ROLES

DICOM_NAME_HELP = (
    "DICOM person name for the reports' SR, e.g. 'Li^Ming=李^明=lǐ^míng'"
    " (default: derived from the display name)"
)


def add_admin_commands(commands: argparse._SubParsersAction) -> None:
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
    _hl7_arguments(add)
    update = facility_commands.add_parser(
        "update", help="change a facility's settings ('' clears an optional one)"
    )
    update.add_argument("id", type=int, help="facility id")
    update.add_argument("--name")
    update.add_argument("--contact")
    update.add_argument("--timezone")
    update.add_argument("--dicom-host")
    update.add_argument("--dicom-port")
    _hl7_arguments(update)
    facility_commands.add_parser("list", help="list facilities as JSON lines")

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser("add", help="create a user")
    user_add.add_argument("username")
    user_add.add_argument("--role", required=True, choices=ROLES)
    user_add.add_argument("--facility", required=True, type=int, help="facility id")
    user_add.add_argument("--display-name", default="")
    user_add.add_argument("--dicom-name", default="", help=DICOM_NAME_HELP)
    user_add.add_argument(
        "--grade",
        default=DEFAULT_GRADE.value,
        choices=[g.value for g in Grade],
        help="professional grade (default attending; residents' reports are reviewed)",
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from standard input",
    )
    dicom_name = user_commands.add_parser(
        "dicom-name", help="set the DICOM person name a user signs reports with"
    )
    dicom_name.add_argument("username")
    dicom_name.add_argument("name", help=DICOM_NAME_HELP + "; '' clears it")
    grade = user_commands.add_parser(
        "grade", help="set a reader's professional grade (decides whether reports need review)"
    )
    grade.add_argument("username")
    grade.add_argument("grade", choices=[g.value for g in Grade])


def _hl7_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hl7-code", default=None, help="the code its HIS sends in MSH-4 (the AE title also does)"
    )
    parser.add_argument(
        "--hl7-endpoint", default=None, help="host:port of its MLLP receiver for results"
    )
    parser.add_argument(
        "--character-set",
        default=None,
        choices=sorted(CHARACTER_SETS),
        help="DICOM character set of its modalities (default ISO_IR 192, UTF-8)",
    )


def _checked_hl7(args: argparse.Namespace) -> dict[str, object]:
    """The HL7 options given, checked like the admin API checks them; '' clears."""
    values: dict[str, object] = {}
    if args.hl7_code is not None:
        code = args.hl7_code.strip()
        if code and not re.fullmatch(HL7_CODE_PATTERN, code):
            raise ValueError("an HL7 code has 1 to 20 letters, digits, '_', '.' or '-'")
        values["hl7_code"] = code or None
    if args.hl7_endpoint is not None:
        endpoint = args.hl7_endpoint.strip()
        if endpoint and not re.fullmatch(HL7_ENDPOINT_PATTERN, endpoint):
            raise ValueError("an HL7 endpoint is host:port")
        values["hl7_endpoint"] = endpoint or None
    if args.character_set is not None:
        values["character_set"] = args.character_set
    return values


def _checked_timezone(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    return timezone


def _facility_update(database: Database, args: argparse.Namespace) -> dict:
    changes: dict[str, object] = _checked_hl7(args)
    for name in ("name", "contact"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.timezone is not None:
        changes["timezone"] = _checked_timezone(args.timezone)
    if args.dicom_host is not None:
        changes["dicom_host"] = args.dicom_host.strip() or None
    if args.dicom_port is not None:
        changes["dicom_port"] = int(args.dicom_port) if args.dicom_port.strip() else None
    database.write_sync(facility_store.update_facility, args.id, **changes)
    return database.read_sync(facility_store.get_facility, args.id)


def facility_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.facility_command == "list":
            for row in database.read_sync(facility_store.list_facilities):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        if args.facility_command == "update":
            facility = _facility_update(database, args)
            print(json.dumps(facility, ensure_ascii=False))
            if args.dicom_host is not None or args.dicom_port is not None:
                register_with_running_orthanc(settings, facility)
            return 0
        timezone = _checked_timezone(args.timezone or settings.default_timezone)
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
            **_checked_hl7(args),
        )
        facility = database.read_sync(facility_store.get_facility, facility_id)
    finally:
        database.close()
    print(facility_id)
    register_with_running_orthanc(settings, facility)
    return 0


def register_with_running_orthanc(settings: Settings, facility: dict) -> None:
    """Tell the running Orthanc about the new AE title now — every Orthanc of a shared index
    (``TELEREAD_ORTHANC_OTHER_URLS``): each keeps its modalities apart; one not running learns
    it when the service next starts."""
    if settings.managed_orthanc:
        credentials = load_or_create_credentials(settings.orthanc_dir)
        urls = [f"http://127.0.0.1:{settings.orthanc_http_port}"]
        username, password = credentials.username, credentials.password
    else:
        urls = [settings.orthanc_url or "", *settings.other_orthancs]
        username, password = settings.orthanc_username or "", settings.orthanc_password or ""
    entry = modality_entry(facility)
    body = json.dumps(orthanc_modality(entry)).encode()
    for url in urls:
        request = urllib.request.Request(
            f"{url.rstrip('/')}/modalities/{entry['name']}",
            data=body,
            method="PUT",
            headers=basic_auth_header(username, password),
        )
        try:
            with urllib.request.urlopen(request, timeout=3):
                pass
            print(f"registered AE title {entry['aet']} with Orthanc at {url}", file=sys.stderr)
        except (urllib.error.URLError, OSError):
            print(
                f"Orthanc at {url} is not running: AE title {entry['aet']} will be registered "
                "there when the service starts",
                file=sys.stderr,
            )


def user_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.user_command == "dicom-name":
        return _set_dicom_name(settings, args.username, args.name)
    if args.user_command == "grade":
        return _set_grade(settings, args.username, args.grade)
    dicom_name = checked_person_name(args.dicom_name)
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
            dicom_name=dicom_name,
            grade=args.grade,
        )
    finally:
        database.close()
    print(user_id)
    return 0


def _set_dicom_name(settings: Settings, username: str, name: str) -> int:
    name = checked_person_name(name)
    database = open_database(settings)
    try:
        database.write_sync(user_store.set_dicom_name, username, name)
    finally:
        database.close()
    return 0


def _set_grade(settings: Settings, username: str, grade: str) -> int:
    database = open_database(settings)
    try:
        database.write_sync(user_store.set_grade, username, grade)
    finally:
        database.close()
    return 0
