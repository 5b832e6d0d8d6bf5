"""The report feature's long-lived parts: the consortium CA and the critical-finding sweep.

``service.app.reports_context`` starts and stops them (with the delivery worker); what is here
takes its collaborators as arguments, so it needs nothing of the web layer.
"""

from __future__ import annotations

import logging

from ..clock import utc_now
from ..settings import Settings
from ..signing import ConsortiumCA
from ..storage import Database
from ..worklist.effects import AfterCommit, Effects
from .acknowledgement import escalate_unacknowledged_critical

log = logging.getLogger(__name__)


def load_ca(settings: Settings) -> ConsortiumCA:
    """The consortium CA under DATA_DIR/pki, created on first start."""
    passphrase = settings.ca_passphrase.encode() if settings.ca_passphrase else None
    return ConsortiumCA.load_or_create(
        settings.data_dir / "pki", settings.ca_name, passphrase=passphrase
    )


async def critical_sweep_once(database: Database, effects: AfterCommit, minutes: float) -> int:
    notices = await database.write(escalate_unacknowledged_critical, utc_now(), minutes)
    await effects.apply(Effects(notices=tuple(notices)))
    return len(notices)
