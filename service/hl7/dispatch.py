"""One message in, one ACK out: decode by MSH-18, parse, find the sending facility (MSH-4),
answer a control ID seen before with its first ACK, else apply the message kind in one write
transaction that also records the control ID, its ACK and the audit record.

Whatever goes wrong is an ACK too (service/hl7/acks.py): a refused message changes nothing but
the audit trail (an ``hl7.refused`` record naming the reason and the sender's address). Only
applied messages are remembered by control ID: a refused one sent again is judged again, and
still cannot be applied twice since it was never applied.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import hl7
import sqlite_utils

from worklists.sla import SlaPolicy

from ..clock import to_iso, utc_now
from ..storage import Database, hl7_received
from ..storage import facilities as facility_store
from ..storage.audit import append_audit
from ..storage.audit_chain import AuditEntry
from ..worklist.effects import AfterCommit
from ..worklist.live_feed import publish_changes
from . import acks
from .acks import Addressing, Refusal
from .applied import Applied, Handler, Inbound
from .merges import apply_merge
from .messages import Header, read_header
from .orders import apply_orders
from .patient_updates import apply_update
from .wire import Decoded, codec_for, declared_charset, decode, encode

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20


HANDLERS: dict[str, Handler] = {
    "ORM^O01": apply_orders,
    "OMI^O23": apply_orders,
    "ADT^A08": apply_update,
    "ADT^A40": apply_merge,
}


@dataclass(frozen=True)
class Parsed:
    decoded: Decoded
    message: hl7.Message
    header: Header


def parse(raw: bytes) -> Parsed:
    """Decode and parse a message; a Refusal (AR) when it is not a readable HL7 v2 message."""
    decoded = decode(raw)
    text = decoded.text.replace("\r\n", "\r").replace("\n", "\r")
    try:
        message = hl7.parse(text)
        header = read_header(message, decoded.charset)
    except Refusal:
        raise
    except Exception as exc:  # python-hl7 raises several kinds on malformed text
        raise Refusal("AR", "100", f"the message cannot be parsed: {exc}", "MSH") from exc
    return Parsed(decoded, message, header)


def local_zone(facility: dict[str, Any] | None) -> tzinfo:
    try:
        return ZoneInfo(facility["timezone"]) if facility else UTC
    except (KeyError, ValueError):
        return UTC


def apply(
    db: sqlite_utils.Database,
    parsed: Parsed,
    facility: dict[str, Any],
    *,
    now: datetime,
    sla: SlaPolicy,
    peer: str,
) -> tuple[str, Applied | None]:
    """Inside one write transaction: the earlier ACK of a control ID seen before (and None),
    or apply the message and return its AA and what it did."""
    header = parsed.header
    earlier = hl7_received.ack_of(db, facility["id"], header.control_id)
    if earlier is not None:
        return earlier, None
    handler = HANDLERS.get(header.kind)
    if handler is None:
        raise Refusal(
            "AR",
            "200",
            f"unsupported message type {header.kind}: teleread takes {', '.join(HANDLERS)}",
            "MSH^1^9",
        )
    applied = handler(db, Inbound(header, parsed.message, facility, now, sla))
    text = acks.ack(
        header.addressing, "AA", now.astimezone(local_zone(facility)), warnings=applied.warnings
    )
    hl7_received.remember(db, facility["id"], header.control_id, header.kind, text, to_iso(now))
    detail = {
        "message_type": header.kind,
        "control_id": header.control_id,
        "consultations": applied.consultations,
    } | applied.detail
    append_audit(
        db,
        _audit(header, facility, peer, now, applied.action, "success", detail, applied.patient_id),
    )
    return text, applied


def _audit(
    header: Header | None,
    facility: dict[str, Any] | None,
    peer: str,
    now: datetime,
    action: str,
    outcome: str,
    detail: dict[str, Any],
    patient_id: str = "",
) -> AuditEntry:
    application = header.addressing.sending_application if header else ""
    return AuditEntry(
        at=to_iso(now),
        action=action,
        outcome=outcome,
        username=f"hl7:{application or 'unknown'}",
        facility_id=facility["id"] if facility else None,
        resource_type="hl7_message",
        resource_id=header.control_id if header else "",
        patient_id=patient_id,
        client_ip=peer,
        detail=detail,
    )


class Dispatcher:
    """What the MLLP listener hands each message's bytes to."""

    def __init__(self, database: Database, effects: AfterCommit, sla: SlaPolicy) -> None:
        self.database = database
        self.effects = effects
        self.sla = sla

    async def answer(self, raw: bytes, peer: str) -> bytes:
        now = utc_now()
        parsed: Parsed | None = None
        facility: dict[str, Any] | None = None
        try:
            parsed = await asyncio.to_thread(parse, raw)  # up to 1 MiB of text: not on the loop
            facility = await self._facility(parsed.header)
            text, applied = await self.database.write(
                apply, parsed, facility, now=now, sla=self.sla, peer=peer
            )
        except Refusal as refusal:
            return await self._refuse(raw, parsed, facility, refusal, now, peer)
        except Exception:
            log.exception("HL7 message from %s could not be applied", peer)
            refusal = Refusal("AE", "207", "teleread could not apply the message (internal error)")
            return await self._refuse(raw, parsed, facility, refusal, now, peer)
        if applied is None:
            log.info("HL7 %s from %s answered again", parsed.header.control_id, peer)
        else:
            await publish_changes(
                self.database, self.effects, applied.consultations, applied.created
            )
        return encode(text, parsed.decoded.codec)

    async def answer_oversized(self, head: bytes, peer: str) -> bytes:
        """A message over :data:`MAX_MESSAGE_BYTES` (only its first bytes were kept)."""
        refusal = Refusal(
            "AR", "207", f"the message is larger than {MAX_MESSAGE_BYTES} bytes", "MSH"
        )
        return await self._refuse(head, None, None, refusal, utc_now(), peer)

    async def _facility(self, header: Header) -> dict[str, Any]:
        facility = await self.database.read(
            facility_store.facility_by_hl7_code, header.facility_code
        )
        if facility is None:
            raise Refusal(
                "AR",
                "204",
                f"unknown sending facility {header.facility_code!r} in MSH-4: it must be the"
                " HL7 code or AE title of a facility registered with teleread",
                "MSH^1^4",
            )
        return facility

    async def _refuse(
        self,
        raw: bytes,
        parsed: Parsed | None,
        facility: dict[str, Any] | None,
        refusal: Refusal,
        now: datetime,
        peer: str,
    ) -> bytes:
        header = parsed.header if parsed else _header_of(raw)
        addressing = header.addressing if header else Addressing(charset=_charset_of(raw))
        codec = codec_for(addressing.charset) or "utf-8"
        text = acks.ack(addressing, refusal.ack_code, now.astimezone(local_zone(facility)), refusal)
        detail = {
            "message_type": header.kind if header else "",
            "control_id": header.control_id if header else "",
            "ack_code": refusal.ack_code,
            "error_code": refusal.error_code,
            "reason": refusal.text,
        }
        outcome = "denied" if refusal.ack_code == "AR" else "failed"
        entry = _audit(header, facility, peer, now, "hl7.refused", outcome, detail)
        try:
            await self.database.append_audit(entry)
        except Exception:
            log.exception("could not audit a refused HL7 message from %s", peer)
        return encode(text, codec)


def _header_of(raw: bytes) -> Header | None:
    """The MSH of a message that could not be read whole (its character set, its size), read
    as ASCII, so that its ACK still names the control ID it answers; None if even that fails."""
    try:
        first_segment = raw.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
        header = read_header(hl7.parse(first_segment), _charset_of(raw))
    except Exception:
        return None
    return header


def _charset_of(raw: bytes) -> str:
    """MSH-18 of a message too broken to parse, when it names one teleread reads."""
    try:
        charset = declared_charset(raw).strip()
    except Exception:
        return ""
    return charset if codec_for(charset) else ""
