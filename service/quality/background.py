"""The recognition rules of this app and the monthly QC task (started and stopped with the
app's ``cleanup_ctx`` in service/app.py, in the primary only, like the other sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from worklists.recognition import RecognitionRules, parse_recognition

from ..clock import utc_now
from ..runtime.periodic import running
from ..settings import Settings, read_worklist_rules
from ..storage.database import Database
from .recompute import monthly_round

CHECK_EVERY_SECONDS = 3600.0
"""How often the task asks whether a month has closed: the round is one read when none has."""
FIRST_CHECK_AFTER_SECONDS = 300.0
"""The first round waits this long after start-up: a service started on the 1st (or the suite's
hundreds of short-lived apps) is not recomputing while it starts; a month still closes on time."""


def load_recognition_rules(settings: Settings) -> RecognitionRules:
    """The ``[recognition]`` table of TELEREAD_WORKLIST_RULES (or the shipped defaults); a file
    whose table cannot be used stops start-up with a message naming the key."""
    return read_worklist_rules(settings, parse_recognition)


@contextlib.asynccontextmanager
async def monthly_task(database: Database, rules: RecognitionRules) -> AsyncIterator[None]:
    """The monthly recomputation of QC scores and the list, while the block runs."""
    first = True

    async def round_() -> None:
        nonlocal first
        if first:
            first = False
            await asyncio.sleep(FIRST_CHECK_AFTER_SECONDS)
        await monthly_round(database, rules, utc_now())

    async with running("QC monthly", CHECK_EVERY_SECONDS, round_):
        yield
