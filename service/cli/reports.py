"""Command-line side of signed reports: ``teleread verify FILE`` and ``teleread signing ...``.

``verify`` works offline against the data directory (the consortium CA, imported CAs and the
revocations recorded there), so an operator can check a PDF or DICOM file a clinic sends back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..clock import to_iso, utc_now
from ..settings import Settings
from ..storage import Database
from ..storage import signing_identities as identity_store
from ..storage.opening import open_database


def add_report_commands(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify", help="check a report file (PDF or DICOM): exit 0 valid, 1 invalid"
    )
    verify.add_argument("file", type=Path)
    verify.add_argument("--json", action="store_true", help="print the full verdict as JSON")
    signing = commands.add_parser("signing", help="signing certificates and the consortium CA")
    signing_commands = signing.add_subparsers(dest="signing_command", required=True)
    signing_commands.add_parser("ca", help="print the consortium CA certificate (PEM)")
    listing = signing_commands.add_parser("list", help="a user's certificates as JSON lines")
    listing.add_argument("--user-id", type=int, required=True)
    revoke = signing_commands.add_parser("revoke", help="revoke a certificate by serial (hex)")
    revoke.add_argument("serial")
    revoke.add_argument("--reason", required=True)


def verify_command(settings: Settings, database: Database, args: argparse.Namespace) -> int:
    # Imported here: they bring pydicom, highdicom and pyhanko (~0.4 s), which every other
    # command of this process (user, facility, audit) would pay for without using.
    from ..auth import identities
    from ..reports import verification
    from ..reports.lifecycle import load_ca

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"teleread: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    ca = load_ca(settings)
    now = utc_now()

    def check(db):
        return verification.check_file(db, data, identities.trust_store(db, ca, now), now)

    result = database.read_sync(check)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        signed_at = database.read_sync(verification.signed_at_local, result)
        print(f"{'VALID' if result.valid else 'INVALID'}: {args.file}")
        print(f"signed by {result.signer or '?'} at {signed_at or '?'}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0 if result.valid else 1


def signing_command(settings: Settings, database: Database, args: argparse.Namespace) -> int:
    if args.signing_command == "ca":
        from cryptography.hazmat.primitives import serialization

        from ..reports.lifecycle import load_ca

        pem = load_ca(settings).certificate.public_bytes(serialization.Encoding.PEM)
        sys.stdout.write(pem.decode("ascii"))
        return 0
    if args.signing_command == "list":
        for row in database.read_sync(identity_store.identities_of, args.user_id):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    row = database.write_sync(
        identity_store.revoke,
        serial=args.serial.lower(),
        at=to_iso(utc_now()),
        reason=args.reason,
    )
    print(f"certificate {row['serial']} revoked at {row['revoked_at']}")
    return 0


def report_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.command == "verify":
            return verify_command(settings, database, args)
        return signing_command(settings, database, args)
    finally:
        database.close()
