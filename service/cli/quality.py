"""``teleread quality``: recompute QC scores and the recognition list on demand (what the
monthly background task does), and print the list."""

from __future__ import annotations

import argparse
import asyncio
import json
import re

from ..clock import utc_now
from ..quality import recompute as qc
from ..quality.background import load_recognition_rules
from ..settings import Settings
from ..storage import Database
from ..storage import recognition as list_store
from ..storage.opening import open_database


def _month(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {text!r}")
    return text


def add_quality_commands(commands: argparse._SubParsersAction) -> None:
    quality = commands.add_parser("quality", help="QC scores and the mutual-recognition list")
    quality_commands = quality.add_subparsers(dest="quality_command", required=True)
    recompute = quality_commands.add_parser(
        "recompute",
        help="recompute QC scores (default: the month just closed and the current one), "
        "then the recognition list; prints what changed as JSON",
    )
    which = recompute.add_mutually_exclusive_group()
    which.add_argument("--month", type=_month, action="append", metavar="YYYY-MM")
    which.add_argument("--all", action="store_true", help="every month with studies")
    listing = quality_commands.add_parser("list", help="the recognition list as JSON lines")
    listing.add_argument("--include-suspended", action="store_true")


async def _recompute(settings: Settings, database: Database, args: argparse.Namespace) -> dict:
    rules = load_recognition_rules(settings)
    months = await qc.all_months(database) if args.all else args.month
    outcome = await qc.recompute(database, rules, utc_now(), months)
    return outcome.as_dict()


def quality_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        if args.quality_command == "recompute":
            answer = asyncio.run(_recompute(settings, database, args))
            print(json.dumps(answer, ensure_ascii=False))
            return 0
        for row in database.read_sync(list_store.listing, args.include_suspended):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    finally:
        database.close()
