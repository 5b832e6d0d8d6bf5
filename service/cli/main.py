"""The ``teleread`` command: serve, seed demo data, manage facilities and users."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ..logs import configure_logging
from ..runtime.orthanc.process import OrthancStartError
from ..settings import SettingsError, load_settings
from ..storage import Conflict, RecordNotFound
from .admin import add_admin_commands, facility_command, user_command
from .audit import add_audit_commands, audit_command
from .patients import add_patient_commands, patients_command
from .quality import add_quality_commands, quality_command
from .reports import add_report_commands, report_command


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
    add_admin_commands(commands)
    add_audit_commands(commands)
    add_report_commands(commands)
    add_quality_commands(commands)
    add_patient_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"teleread: {exc}", file=sys.stderr)
        return 2
    try:
        # The app is imported only by the commands that run it: a `verify` or `user add` does not
        # pay for importing every route (about 1 s of CPU per call).
        if args.command == "serve":
            from .serve import serve

            return serve(settings, seed_demo=args.demo)
        if args.command == "demo":
            from .demo import seed_demo

            return asyncio.run(seed_demo(settings))
        if args.command == "facility":
            return facility_command(settings, args)
        if args.command == "audit":
            return audit_command(settings, args)
        if args.command == "quality":
            return quality_command(settings, args)
        if args.command == "patients":
            return patients_command(settings, args)
        if args.command in ("verify", "signing"):
            return report_command(settings, args)
        return user_command(settings, args)
    except (Conflict, RecordNotFound, ValueError, OrthancStartError) as exc:
        print(f"teleread: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 1
