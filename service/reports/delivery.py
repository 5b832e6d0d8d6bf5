"""Getting a signed report back where it is needed: into the archive and to the clinic's PACS.

Each signed version has deliveries (``report_deliveries``), worked by one background task:
``orthanc`` stores the DICOM objects (Encapsulated PDF + SR) into the study in Orthanc, so any
viewer shows the report with the images; then, when the originating facility has a DICOM node,
``dicom`` sends them there by C-STORE through Orthanc. Every attempt is logged; failures retry
with a doubling wait and, after the last attempt, the duty managers are told. Successes are
turnaround events (``report_stored``, ``delivered`` with channel ``dicom``).

A delivery is claimed before each attempt (``storage.reports.claim_delivery``), under the lease's
fence among replicas: two workers (an old leader finishing its round, the new one starting) never
store or send the same delivery twice, and an old leader's worker takes nothing more once
another replica leads (service/storage/fencing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydicom
import sqlite_utils

from ..clock import to_iso, utc_now
from ..runtime.leadership import forget_own_claims
from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..runtime.periodic import running
from ..storage import Database
from ..storage import consultations as consultation_store
from ..storage import facilities as facility_store
from ..storage import key_images as key_image_store
from ..storage import reports as store
from ..storage.fencing import Fence
from ..worklist.notifications import Notice, Notifications
from ..worklist.roster import managers_to_tell
from .dicom_objects import encapsulated_pdf, report_sr
from .documents_data import document_for
from .key_object import store_key_object

log = logging.getLogger(__name__)

MAX_WAIT = timedelta(hours=1)
#: An attempt still claimed after this is taken for a dead worker's, and the delivery is due
#: again: well beyond an attempt's longest (Orthanc's store, a C-STORE of a few objects).
CLAIM_TIMEOUT = timedelta(minutes=5)


class DeliveryFailed(Exception):
    """One attempt failed for a reason worth retrying (Orthanc away, the clinic's node down)."""


@dataclass(frozen=True)
class DeliveryPolicy:
    retry_seconds: float
    max_attempts: int

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        wait = timedelta(seconds=self.retry_seconds * 2 ** max(attempts - 1, 0))
        return now + min(wait, MAX_WAIT)


def _dataset_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class ReportDelivery:
    """The background worker; ``kick()`` wakes it at once (after a signature)."""

    def __init__(
        self,
        database: Database,
        orthanc: OrthancClient,
        notifications: Notifications,
        policy: DeliveryPolicy,
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        """``fence``: the lease's fence the worker claims under (the app's leadership's)."""
        self.database = database
        self.fence = fence
        self.orthanc = orthanc
        self.notifications = notifications
        self.policy = policy
        self.wake = asyncio.Event()
        """Set by :meth:`kick`: ends the worker's wait (service.runtime.periodic)."""
        self.kick_relays: list[Callable[[], None]] = []
        """Called on every kick: a secondary web process passes its kicks to the primary,
        where the delivery loop runs (service.runtime.web_processes)."""

    def kick(self) -> None:
        self.wake.set()
        for relay in self.kick_relays:
            relay()

    async def run_due(self, now: datetime | None = None) -> int:
        """Work every delivery that is due and that this worker claims; returns how many were
        attempted. Raises ``Superseded`` when another replica leads now."""
        now = now or utc_now()
        stamp, stale_before = to_iso(now), to_iso(now - CLAIM_TIMEOUT)
        due = await self.database.read(store.due_deliveries, stamp, stale_before)
        attempted = 0
        for delivery in due:
            fence = self.fence()
            claimed = await self.database.write(
                store.claim_delivery, delivery["id"], stamp, stale_before, fence
            )
            if claimed:
                await self._attempt(delivery)
                attempted += 1
        return attempted

    @contextlib.asynccontextmanager
    async def working(self, interval: float) -> AsyncIterator[asyncio.Task[None]]:
        """The worker while the block runs: a round every ``interval`` seconds, or at once
        when kicked, after forgetting the claims a stop left (one host)."""
        await forget_own_claims(
            self.database, store.release_delivery_claims, self.fence(), "report delivery"
        )
        async with running("report delivery", interval, self.run_due, wake=self.wake) as task:
            yield task

    async def _attempt(self, delivery: dict[str, Any]) -> None:
        try:
            if delivery["channel"] == "orthanc":
                detail = await self._store_in_orthanc(delivery)
            else:
                detail = await self._send_to_clinic(delivery)
        except (DeliveryFailed, OrthancError, OrthancUnavailable) as exc:
            await self._failed(delivery, f"{type(exc).__name__}: {exc}")
            return
        await self.database.write(self._succeeded, delivery, detail, utc_now())

    async def _store_in_orthanc(self, delivery: dict[str, Any]) -> dict[str, Any]:
        version_id = delivery["report_version_id"]
        facts = await self.database.read(_delivery_facts, version_id)
        reference = await self._reference_dataset(facts["consultation"]["orthanc_study_id"])
        previous = None
        if facts["previous_sr_uid"]:
            previous = await self._dataset_by_uid(facts["previous_sr_uid"])
        pdf_ds, sr_ds = await asyncio.to_thread(_build_objects, facts, reference, previous)
        ids = []
        for dataset in (pdf_ds, sr_ds):
            answer = await self.orthanc.store_instance(_dataset_bytes(dataset))
            ids.append(answer["ID"])
        await self.database.write(
            store.set_version_objects, version_id, pdf_ds.SOPInstanceUID, sr_ds.SOPInstanceUID
        )
        kos_uid = await store_key_object(  # the key images (issue 19), when the report has any
            self.orthanc,
            self.database,
            version_id,
            facts["document"],
            facts["consultation"]["orthanc_study_id"],
        )
        return {
            "orthanc_ids": ids,
            "pdf_uid": pdf_ds.SOPInstanceUID,
            "sr_uid": sr_ds.SOPInstanceUID,
        } | ({"kos_uid": kos_uid} if kos_uid else {})

    async def _reference_dataset(self, orthanc_study_id: str | None) -> pydicom.Dataset:
        if not orthanc_study_id:
            raise DeliveryFailed("the study's images are not in the archive")
        instances = await self.orthanc.study_instances(orthanc_study_id)
        if not instances:
            raise DeliveryFailed("the study has no instances in the archive")
        raw = await self.orthanc.get(f"/instances/{instances[0]['ID']}/file")
        return pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)

    async def _orthanc_ids(self, sop_instance_uid: str) -> list[str]:
        found = await self.orthanc.request(
            "POST", "/tools/lookup", data=sop_instance_uid, headers={"Content-Type": "text/plain"}
        )
        return [item["ID"] for item in found if item.get("Type") == "Instance"]

    async def _dataset_by_uid(self, sop_instance_uid: str) -> pydicom.Dataset | None:
        """A stored object by its SOP Instance UID (the previous version's SR), if still there."""
        ids = await self._orthanc_ids(sop_instance_uid)
        if not ids:
            return None
        raw = await self.orthanc.get(f"/instances/{ids[0]}/file")
        return pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)

    async def _send_to_clinic(self, delivery: dict[str, Any]) -> dict[str, Any]:
        version = await self.database.read(store.version_row, delivery["report_version_id"])
        facility = await self.database.read(
            facility_store.facility_of_consultation, version["consultation_id"]
        )
        if not facility.get("dicom_host") or not facility.get("dicom_port"):
            raise DeliveryFailed("the facility has no DICOM node configured any more")
        kos_uid = await self.database.read(key_image_store.kos_uid, version["id"])
        ids = []
        for uid in (version["pdf_sop_instance_uid"], version["sr_sop_instance_uid"], kos_uid):
            ids += await self._orthanc_ids(uid) if uid else []
        if not ids:
            raise DeliveryFailed("the report objects are not in the archive")
        answer = await self.orthanc.request(
            "POST",
            f"/modalities/{facility['aet']}/store",
            json={"Resources": ids, "Synchronous": True},
        )
        failed = answer.get("FailedInstancesCount", 0) if isinstance(answer, dict) else 0
        if failed:
            raise DeliveryFailed(f"{failed} object(s) refused by {facility['aet']}")
        return {"aet": facility["aet"], "instances": len(ids)}

    async def _failed(self, delivery: dict[str, Any], reason: str) -> None:
        now = utc_now()
        give_up = delivery["attempts"] + 1 >= self.policy.max_attempts
        next_at = (
            None if give_up else to_iso(self.policy.next_attempt(delivery["attempts"] + 1, now))
        )
        log.warning("delivery %s (%s) failed: %s", delivery["id"], delivery["channel"], reason)
        notice = await self.database.write(
            _record_failure, delivery, reason, to_iso(now), next_at, give_up
        )
        if notice is not None:
            await self.notifications.send(notice)

    def _succeeded(
        self, db: sqlite_utils.Database, delivery: dict[str, Any], detail: dict[str, Any], now
    ) -> None:
        stamp = to_iso(now)
        attempts = store.record_attempt(
            db, delivery["id"], ok=True, detail=_short(detail), now=stamp, next_attempt_at=None
        )
        event = "report_stored" if delivery["channel"] == "orthanc" else "delivered"
        event_detail = detail | {
            "channel": delivery["channel"],
            "attempt": attempts,
            "report_id": delivery["report_id"],
            "version": delivery["version"],
        }
        consultation_store.append_event(
            db, delivery["consultation_id"], event, stamp, None, event_detail
        )
        if delivery["channel"] == "orthanc":
            facility = facility_store.facility_of_consultation(db, delivery["consultation_id"])
            if facility.get("dicom_host") and facility.get("dicom_port"):
                store.create_delivery(db, delivery["report_version_id"], "dicom", stamp)
                self.kick()


def _short(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items())[:500]


def _record_failure(
    db: sqlite_utils.Database,
    delivery: dict[str, Any],
    reason: str,
    stamp: str,
    next_at: str | None,
    give_up: bool,
) -> Notice | None:
    store.record_attempt(
        db,
        delivery["id"],
        ok=False,
        detail=reason,
        now=stamp,
        next_attempt_at=next_at,
        give_up=give_up,
    )
    if not give_up:
        return None
    consultation_store.append_event(
        db,
        delivery["consultation_id"],
        "delivery_failed",
        stamp,
        None,
        {"channel": delivery["channel"], "reason": reason, "version": delivery["version"]},
    )
    return Notice(
        kind="delivery_failed",
        user_ids=tuple(managers_to_tell(db, datetime.fromisoformat(stamp.replace("Z", "+00:00")))),
        consultation_id=delivery["consultation_id"],
        title=f"Report delivery failed: consultation #{delivery['consultation_id']}",
        body=f"{delivery['channel']}: {reason}",
        facts={"channel": delivery["channel"], "reason": reason},
        message="delivery_failed",
        params={"channel": delivery["channel"], "reason": reason},
    )


def _delivery_facts(db: sqlite_utils.Database, version_id: int) -> dict[str, Any]:
    """Everything the DICOM objects of a version are built from, read in one go."""
    version = store.version_row(db, version_id)
    blobs = store.version_blobs(db, version["report_id"], version["version"])
    consultation = consultation_store.with_facility(db, version["consultation_id"])
    previous = None
    if version["supersedes_version"]:
        previous = store.version_blobs(db, version["report_id"], version["supersedes_version"])
    document = document_for(db, version["report_id"], consultation, version, version["signer_id"])
    return {
        "consultation": consultation,
        "document": document,
        "pdf": blobs["pdf"],
        "canonical": blobs["canonical"],
        "signature": blobs["signature"],
        "previous_sr_uid": previous["sr_sop_instance_uid"] if previous else None,
    }


def _build_objects(
    facts: dict[str, Any], reference: pydicom.Dataset, previous: pydicom.Dataset | None
) -> tuple[pydicom.Dataset, pydicom.Dataset]:
    document = facts["document"]
    pdf_ds = encapsulated_pdf(facts["pdf"], document, reference)
    sr_ds = report_sr(
        document, facts["canonical"], facts["signature"], reference, previous=previous
    )
    return pdf_ds, sr_ds
