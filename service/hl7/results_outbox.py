"""Sending the HL7 results outbox: each queued ORU^R01 over MLLP to its facility's HIS.

The signing transaction queues a row (service/storage/hl7_outbox.py); this worker, in the
primary web process only, sends what is due: it is woken with report delivery after each
signature (service/app.py hands it the delivery worker's kicks, which the other web processes
already relay to the primary) and otherwise polls. One attempt is one MLLP connection
(python-hl7's asyncio client): write the message, read the ACK. MSA-1 AA (or CA) with our
control ID in MSA-2 is sent; AE/AR, a wrong ACK, a refused connection or silence is a failure
whose reason (the HIS's MSA-3 and ERR text, or the network error) is kept on the row and
retried after a doubling wait, until the attempts run out and the row is failed.

Each outcome is audited (``hl7.result_sent`` / ``hl7.result_failed``, naming the patient and
the consultation) in the same transaction that records it. Message building and database work
run on threads; only the socket is on the event loop.

Each row is claimed before its attempt (``storage.hl7_outbox.claim_message``) under the lease's
fence among replicas, so an old leader finishing its round and the new one never send one
result twice, and the old one sends nothing more once another replica leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import hl7
import sqlite_utils
from hl7.mllp import open_hl7_connection

from ..clock import to_iso, utc_now
from ..reports.documents_data import document_for
from ..runtime.leadership import forget_own_claims
from ..runtime.periodic import running
from ..storage import Database
from ..storage import consultations as consultation_store
from ..storage import hl7_outbox as store
from ..storage.audit import append_audit
from ..storage.audit_chain import AuditEntry
from ..storage.fencing import Fence
from .results_message import ResultFacts, ResultMessage, oru_r01

log = logging.getLogger(__name__)

MAX_WAIT = timedelta(hours=1)
CONNECT_TIMEOUT = 10.0
ACK_TIMEOUT = 30.0
ACCEPTED = ("AA", "CA")
SENDER = "system:hl7"
#: A row still claimed after this is a dead worker's, due again: far beyond one attempt
#: (connect, write, the ACK's wait).
CLAIM_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class ResultPolicy:
    """``TELEREAD_HL7_RETRY_SECONDS`` doubling per failed attempt (at most an hour), and
    ``TELEREAD_HL7_MAX_ATTEMPTS`` before a message is failed."""

    retry_seconds: float
    max_attempts: int
    ack_timeout: float = ACK_TIMEOUT

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failed ones; None: give up."""
        if attempts >= self.max_attempts:
            return None
        wait = timedelta(seconds=self.retry_seconds * 2 ** max(attempts - 1, 0))
        return now + min(wait, MAX_WAIT)


class NotAccepted(Exception):
    """The HIS answered, but not AA: the reason and the ACK code."""

    def __init__(self, reason: str, ack_code: str) -> None:
        super().__init__(reason)
        self.ack_code = ack_code


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def ack_verdict(ack: hl7.Message, control_id: str) -> str:
    """The ACK code of an answer to ``control_id``; raises :class:`NotAccepted` otherwise."""
    found = [s for s in ack if str(s[0]) == "MSA"]  # (an empty segment trips ack.segment())
    if not found:
        raise NotAccepted("the answer has no MSA segment", "")
    msa = found[0]
    code, answered = str(msa(1)).strip(), str(msa(2)).strip()
    if answered != control_id:
        raise NotAccepted(f"the ACK answers message {answered!r}, not {control_id!r}", code)
    if code in ACCEPTED:
        return code
    texts = [_at(msa, 3)]
    errors = [s for s in ack if str(s[0]) == "ERR"]
    for err in errors:  # ERR-8 user message, ERR-3.2 the error's text (v2.5)
        texts += [_at(err, 8), str(err(3)(1)(2)).strip() if len(err) > 3 else ""]
    reason = "; ".join(dict.fromkeys(t for t in texts if t))
    if not reason and errors:  # an older ERR (v2.3 ERR-1): as it came
        reason = "; ".join(str(err) for err in errors)
    raise NotAccepted(f"{code or '?'}: {reason or 'no reason given'}", code)


def _at(segment: hl7.Segment, index: int) -> str:
    return str(segment(index)).strip() if len(segment) > index else ""


async def exchange(endpoint: str, message: ResultMessage, ack_timeout: float) -> str:
    """One MLLP round trip: the message out, the ACK's code back (or an exception)."""
    host, port = parse_endpoint(endpoint)
    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
    # arrives as the awaited call ends, and stopping the sender would then wait for ever
    async with asyncio.timeout(CONNECT_TIMEOUT):
        reader, writer = await open_hl7_connection(
            host, port, encoding=message.encoding, encoding_errors="replace"
        )
    try:
        writer.writeblock(message.encoded())
        await writer.drain()
        async with asyncio.timeout(ack_timeout):
            raw = await reader.readblock()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ConnectionError):
            pass
    try:
        ack = hl7.parse(raw.decode(message.encoding, "replace"))
        return ack_verdict(ack, message.control_id)
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        reason = f"the answer is not an HL7 ACK ({type(exc).__name__}: {exc})"
        raise NotAccepted(reason, "") from exc


def build_message(db: sqlite_utils.Database, outbox_id: int) -> tuple[ResultMessage, dict]:
    """On a reader thread: the message of a row, and what its audit record names."""
    facts = store.message_facts(db, outbox_id)
    outbox, facility, version = facts["outbox"], facts["facility"], facts["version"]
    consultation = consultation_store.with_facility(db, outbox["consultation_id"])
    document = document_for(db, version["report_id"], consultation, version, version["signer_id"])
    message = oru_r01(
        document,
        ResultFacts(
            outbox_id=outbox_id,
            result_status=outbox["result_status"],
            created_at=outbox["created_at"],
            pdf=version["pdf"],
            signer_id=version["signer_id"],
            facility_code=facility.get("hl7_code") or facility["aet"],
            character_set=facility.get("character_set") or "ISO_IR 192",
            placer_order_number=consultation.get("placer_order_number") or "",
            patient_birth_date=consultation.get("patient_birth_date") or "",
            patient_sex=consultation.get("patient_sex") or "",
            requested_procedure=consultation.get("requested_procedure") or "",
            requested_procedure_code=consultation.get("requested_procedure_code") or "",
        ),
    )
    about = {
        "consultation_id": consultation["id"],
        "facility_id": facility["id"],
        "patient_id": document.patient_id,
        "study_instance_uid": document.study_instance_uid,
        "version": document.version,
    }
    return message, about


class ResultSender:
    """The outbox worker; ``wake`` ends its wait at once (set on every signature)."""

    def __init__(
        self,
        database: Database,
        policy: ResultPolicy,
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        """``fence``: the lease's fence the worker claims under (the app's leadership's)."""
        self.database = database
        self.policy = policy
        self.fence = fence
        self.wake = asyncio.Event()

    async def run_due(self, now: datetime | None = None) -> int:
        """Send every message that is due and that this worker claims, in order; returns how
        many were attempted. Raises ``Superseded`` when another replica leads now."""
        seen: set[int] = set()
        attempted = 0
        while True:  # a sent original makes its correction due: go round until none is
            moment = now or utc_now()
            stamp, stale_before = to_iso(moment), to_iso(moment - CLAIM_TIMEOUT)
            due = await self.database.read(store.due_messages, stamp, stale_before)
            due = [row for row in due if row["id"] not in seen]
            if not due:
                return attempted
            for row in due:
                seen.add(row["id"])
                claimed = await self.database.write(
                    store.claim_message, row["id"], stamp, stale_before, self.fence()
                )
                if claimed:
                    await self._attempt(row)
                    attempted += 1

    @contextlib.asynccontextmanager
    async def working(self, interval: float) -> AsyncIterator[asyncio.Task[None]]:
        """The sender while the block runs, after forgetting the claims a stop left (on one
        host, where they can only be its own)."""
        await forget_own_claims(
            self.database, store.release_message_claims, self.fence(), "HL7 results"
        )
        async with running("HL7 results", interval, self.run_due, wake=self.wake) as task:
            yield task

    async def _attempt(self, row: dict[str, Any]) -> None:
        message, about = await self.database.read(build_message, row["id"])
        try:
            code = await exchange(row["endpoint"], message, self.policy.ack_timeout)
        except NotAccepted as exc:
            await self._failed(row, about, str(exc), exc.ack_code)
        except asyncio.IncompleteReadError:
            await self._failed(row, about, "the HIS closed the connection without an ACK", "")
        except (OSError, ConnectionError, TimeoutError, ValueError, EOFError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            await self._failed(row, about, reason, "")
        else:
            await self.database.write(_record_sent, row, about, message.control_id, code)

    async def _failed(self, row: dict[str, Any], about: dict, reason: str, code: str) -> None:
        now = utc_now()
        next_at = self.policy.next_attempt(row["attempts"] + 1, now)
        log.warning("HL7 result %s to %s failed: %s", row["id"], row["endpoint"], reason)
        await self.database.write(
            _record_failure, row, about, reason, code, to_iso(now),
            to_iso(next_at) if next_at else None,
        )  # fmt: skip


def _audit(row: dict[str, Any], about: dict, action: str, outcome: str, **detail) -> AuditEntry:
    return AuditEntry(
        at=to_iso(utc_now()),
        action=action,
        outcome=outcome,
        username=SENDER,
        facility_id=about["facility_id"],
        resource_type="consultation",
        resource_id=str(about["consultation_id"]),
        patient_id=about["patient_id"],
        study_instance_uid=about["study_instance_uid"],
        detail={
            "outbox_id": row["id"],
            "endpoint": row["endpoint"],
            "result_status": row["result_status"],
            "version": about["version"],
        }
        | detail,
    )


def _record_sent(
    db: sqlite_utils.Database, row: dict[str, Any], about: dict, control_id: str, code: str
) -> None:
    now = to_iso(utc_now())
    store.record_sent(db, row["id"], code, now)
    entry = _audit(row, about, "hl7.result_sent", "success", control_id=control_id, ack=code)
    append_audit(db, entry)


def _record_failure(
    db: sqlite_utils.Database,
    row: dict[str, Any],
    about: dict,
    reason: str,
    code: str,
    now: str,
    next_at: str | None,
) -> None:
    store.record_failure(
        db, row["id"], reason=reason, ack_code=code, now=now, next_attempt_at=next_at
    )
    detail = {"reason": reason[:500], "attempt": row["attempts"] + 1, "gave_up": next_at is None}
    append_audit(db, _audit(row, about, "hl7.result_failed", "failed", **detail))
