"""What a message kind receives (one message from a registered facility) and what applying it
did (the audit action, the patient, the consultations touched)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import hl7
import sqlite_utils

from worklists.sla import SlaPolicy

from .messages import Header


@dataclass(frozen=True)
class Inbound:
    """One decoded, parsed message from a registered facility."""

    header: Header
    message: hl7.Message
    facility: dict[str, Any]
    now: datetime
    sla: SlaPolicy


@dataclass
class Applied:
    action: str  # hl7.order | hl7.cancel | hl7.patient_update
    patient_id: str = ""
    consultations: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """What the AA's ERR segments warn of (severity W): text and location (a repeat exam)."""


#: A message kind: applies one message inside the caller's write transaction, or raises
#: :class:`~service.hl7.acks.Refusal` (the transaction is then rolled back).
Handler = Callable[[sqlite_utils.Database, Inbound], Applied]
