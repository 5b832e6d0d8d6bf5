"""An old leader's background work stops counting once another replica leads (issue 22).

A leader cut off from PostgreSQL learns of its loss only at its next check; meanwhile its
report delivery, HL7 results outbox and ATNA forwarding may still be mid-round. Each piece of
work is claimed before it is done (a delivery, an outbox row: one claim wins, on either
engine), and among replicas the claim is fenced by the lease's epoch, raised at each taking:
an old leader's worker claims nothing more, and its round ends with ``Superseded``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from service.clock import to_iso, utc_now
from service.hl7.results_outbox import ResultPolicy, ResultSender
from service.http.keys import HL7_RESULTS, LEADERSHIP, REPORT_DELIVERY
from service.intake.intake import InstanceOrigin, ReceivedStudy, receive_study
from service.reports.delivery import CLAIM_TIMEOUT, DeliveryPolicy, ReportDelivery
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import hl7_outbox as outbox_store
from service.storage import reports as report_store
from service.storage import users as user_store
from service.storage.atna_cursor import ForwardingMoved, forwarded_through, mark_forwarded
from service.storage.fencing import Fence, Superseded, check_fence, current_epoch
from service.storage.leases import AdvisoryLease
from service.storage.postgres.database import PostgresDatabase
from worklists.sla import SlaPolicy

from . import backends
from .test_postgres_leadership import TAKE_OVER_SECONDS, leaders, start_replicas

LEASE = "background work"
ENGINES = ["sqlite", "postgresql"]


def two_handles(engine: str, base: Path) -> tuple[Database, Database]:
    """Two database handles on one database, as two workers (two processes or replicas) have."""
    if engine == "postgresql":
        url = backends.new_database_url(base)
        return PostgresDatabase(url, base / "a" / "teleread.db"), PostgresDatabase(
            url, base / "b" / "teleread.db"
        )
    path = base / "teleread.db"
    return Database(path, checkpoints=False), Database(path, checkpoints=False)


@pytest.fixture(params=ENGINES)
async def handles(request, tmp_path) -> AsyncIterator[tuple[Database, Database]]:
    first, second = await asyncio.to_thread(two_handles, request.param, tmp_path)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def signed_versions(db: sqlite_utils.Database, count: int) -> list[dict[str, int]]:
    """``count`` consultations of one clinic, each with a signed version whose archive
    delivery and HL7 result are queued, due now (what a signing transaction leaves)."""
    now = to_iso(utc_now())
    facility = facility_store.add_facility(
        db,
        name="Clinic",
        kind="township",
        aet="CLINIC",
        timezone="Asia/Shanghai",
        hl7_endpoint="127.0.0.1:1",
    )
    signer = user_store.add_user(
        db, username="dr_li", password_hash="-", role="specialist", facility_id=facility
    )
    made = []
    for n in range(count):
        study = ReceivedStudy(
            orthanc_id=f"o-{n}",
            study_instance_uid=f"1.2.826.0.1.3680043.10.22.9.{n}",
            patient_id=f"PID-{n}",
            patient_name="李四",
            accession_number=f"ACC-{n}",
            modalities=("CT",),
            body_part="HEAD",
            instances_count=1,
            origins=(InstanceOrigin("DicomProtocol", "CLINIC", "10.0.0.7"),),
        )
        [cid] = receive_study(db, study, now=utc_now(), sla=SlaPolicy()).consultation_ids
        report = db.execute(
            "INSERT INTO reports (consultation_id, state, author_id, signed_versions,"
            " created_at, updated_at) VALUES (?, 'signed', ?, 1, ?, ?)",
            [cid, signer, now, now],
        ).lastrowid
        version = db.execute(
            "INSERT INTO report_versions (report_id, version, findings, impression,"
            " recommendation, critical, refer, signer_id, signer_name, certificate_serial,"
            " signed_at, verification_code, verification_url, canonical, signature, pdf)"
            " VALUES (?, 1, '', '', '', 0, 0, ?, 'Li', '01', ?, ?, '', ?, ?, ?)",
            [report, signer, now, f"CODE-{n}", b"{}", b"sig", b"%PDF"],
        ).lastrowid
        delivery = report_store.create_delivery(db, version, "orthanc", now)
        message = outbox_store.enqueue_result(db, cid, version, 1, now)
        assert delivery is not None and message is not None
        made.append({"consultation": cid, "version": version, "delivery": delivery,
                     "message": message})  # fmt: skip
    return made


async def taken(lease: AdvisoryLease, within: float = 5.0) -> bool:
    """Take a lease just given up: the server frees a closed session's locks a moment after
    the connection closes (longer on a busy machine), so ask again until it does."""
    deadline = asyncio.get_running_loop().time() + within
    while not await lease.try_take():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class CountedDelivery(ReportDelivery):
    """The delivery worker with its attempt replaced by a note of who attempted what (and a
    pause, so that two workers' rounds overlap): what is under test is which deliveries a
    worker takes, not storing them in Orthanc (tests/test_reports.py does that)."""

    def __init__(self, database: Database, name: str, attempts: list, fence=lambda: None):
        super().__init__(database, None, None, DeliveryPolicy(1.0, 3), fence)  # type: ignore[arg-type]
        self.name, self.attempts = name, attempts

    async def _attempt(self, delivery: dict[str, Any]) -> None:
        self.attempts.append((self.name, delivery["id"]))
        await asyncio.sleep(0.02)
        await self.database.write(self._succeeded, delivery, {"test": True}, utc_now())


class CountedSender(ResultSender):
    """The HL7 results worker with its MLLP exchange replaced by a note (as above)."""

    def __init__(self, database: Database, name: str, attempts: list, fence=lambda: None):
        super().__init__(database, ResultPolicy(1.0, 3), fence)
        self.name, self.attempts = name, attempts

    async def _attempt(self, row: dict[str, Any]) -> None:
        self.attempts.append((self.name, row["id"]))
        await asyncio.sleep(0.02)
        await self.database.write(outbox_store.record_sent, row["id"], "AA", to_iso(utc_now()))


async def test_a_claim_is_taken_once_until_it_is_recorded_or_goes_stale(handles):
    """Two workers claim one delivery and one HL7 result: one claim each wins; the loser's
    due list no longer shows them; recording the attempt lets the claim go, and a claim
    older than the timeout (its worker died mid-attempt) is due and claimed again."""
    first, second = handles
    [made] = await first.write(signed_versions, 1)
    now = utc_now()
    stamp, stale = to_iso(now), to_iso(now - CLAIM_TIMEOUT)
    for claim, item, due in (
        (report_store.claim_delivery, made["delivery"], report_store.due_deliveries),
        (outbox_store.claim_message, made["message"], outbox_store.due_messages),
    ):
        assert await first.write(claim, item, stamp, stale) is True
        assert await second.write(claim, item, stamp, stale) is False
        assert await second.read(due, stamp, stale) == []
        later = now + CLAIM_TIMEOUT + timedelta(seconds=1)
        late_stamp, late_stale = to_iso(later), to_iso(later - CLAIM_TIMEOUT)
        assert [row["id"] for row in await second.read(due, late_stamp, late_stale)] == [item]
        assert await second.write(claim, item, late_stamp, late_stale) is True
    # a stop mid-attempt on one host: the worker's start forgets its claims, due again at once
    assert await first.write(report_store.release_delivery_claims) == 1
    assert await first.write(outbox_store.release_message_claims) == 1
    assert await first.write(report_store.claim_delivery, made["delivery"], stamp, stale) is True
    assert await first.write(outbox_store.claim_message, made["message"], stamp, stale) is True
    await first.write(
        report_store.record_attempt, made["delivery"], ok=False, detail="refused", now=stamp,
        next_attempt_at=stamp,
    )  # fmt: skip
    assert [d["id"] for d in await second.read(report_store.due_deliveries, stamp, stale)] == [
        made["delivery"]
    ]


async def test_a_workers_start_on_one_host_forgets_the_claims_a_stop_left(handles):
    """A delivery and an HL7 result claimed by a worker that stopped mid-attempt: among
    replicas (a fence) the claims may be another's, live, and the rows wait until they go
    stale; on one host (no fence) the worker's start forgets them, and both are tried at once."""
    first, _ = handles
    [made] = await first.write(signed_versions, 1)
    now = utc_now()
    stamp, stale = to_iso(now), to_iso(now - CLAIM_TIMEOUT)
    assert await first.write(report_store.claim_delivery, made["delivery"], stamp, stale)
    assert await first.write(outbox_store.claim_message, made["message"], stamp, stale)
    deliveries: list[tuple[str, int]] = []
    results: list[tuple[str, int]] = []

    def fenced() -> Fence:
        return Fence(LEASE, 0)  # the lease's epoch now: the fence passes

    async with (
        CountedDelivery(first, "replica", deliveries, fenced).working(0.05),
        CountedSender(first, "replica", results, fenced).working(0.05),
    ):
        await asyncio.sleep(0.3)  # several rounds
    assert deliveries == [] and results == []
    async with (
        CountedDelivery(first, "host", deliveries).working(0.05),
        CountedSender(first, "host", results).working(0.05),
    ):
        deadline = asyncio.get_running_loop().time() + 10
        while not (deliveries and results):
            assert asyncio.get_running_loop().time() < deadline, (deliveries, results)
            await asyncio.sleep(0.05)
    assert deliveries == [("host", made["delivery"])]
    assert results == [("host", made["message"])]


async def test_two_workers_at_once_attempt_each_delivery_and_result_once(handles):
    """Two delivery workers and two HL7 senders on two handles of one database run their
    rounds at the same moment over eight due items: each item is attempted exactly once."""
    first, second = handles
    made = await first.write(signed_versions, 8)
    deliveries: list[tuple[str, int]] = []
    results: list[tuple[str, int]] = []
    counts = await asyncio.gather(
        CountedDelivery(first, "a", deliveries).run_due(),
        CountedDelivery(second, "b", deliveries).run_due(),
        CountedSender(first, "a", results).run_due(),
        CountedSender(second, "b", results).run_due(),
    )
    assert sorted(i for _, i in deliveries) == sorted(m["delivery"] for m in made)
    assert sorted(i for _, i in results) == sorted(m["message"] for m in made)
    assert counts[0] + counts[1] == 8 and counts[2] + counts[3] == 8
    stored = await first.read(
        lambda db: db.execute(
            "SELECT count(*) FROM consultation_events WHERE type = 'report_stored'"
        ).fetchone()[0]
    )
    assert stored == 8


async def test_each_taking_of_the_lease_raises_its_epoch_and_fences_the_one_before(tmp_path):
    """A lease taken, lost (its connection gone, as for a partitioned leader) and taken by
    another session: the epoch went 1 then 2, the row names the new holder, and the first
    holder's fence is refused while the second's passes."""
    url = backends.new_database_url(tmp_path)
    database = PostgresDatabase(url, tmp_path / "teleread.db")
    old, new = AdvisoryLease(url, LEASE, holder="old"), AdvisoryLease(url, LEASE, holder="new")
    try:
        assert await old.try_take() and old.epoch == 1
        assert not await new.try_take() and new.epoch == 0
        await database.read(check_fence, old.fence)
        await old.release()
        assert await taken(new) and new.epoch == 2
        assert await database.read(current_epoch, LEASE) == 2
        with pytest.raises(Superseded):
            await database.read(check_fence, old.fence)
        await database.read(check_fence, new.fence)
        await database.read(check_fence, None)  # one host: nothing to fence
        holder = await database.read(
            lambda db: db.execute("SELECT holder FROM lease_epochs").fetchone()[0]
        )
        assert holder == "new"
    finally:
        await old.release()
        await new.release()
        database.close()


async def test_an_old_leaders_workers_claim_nothing_once_another_took_the_lease(tmp_path):
    """The old leader (epoch 1) still runs its delivery, HL7 and ATNA rounds after the new one
    took the lease: each is refused before it claims or sends anything (Superseded), every
    item stays due, and the new leader's workers then do every one."""
    url = backends.new_database_url(tmp_path)
    old_db = PostgresDatabase(url, tmp_path / "old" / "teleread.db")
    new_db = PostgresDatabase(url, tmp_path / "new" / "teleread.db")
    old_lease, new_lease = AdvisoryLease(url, LEASE), AdvisoryLease(url, LEASE)
    try:
        made = await new_db.write(signed_versions, 3)
        assert await old_lease.try_take()
        await old_lease.release()
        assert await taken(new_lease)
        attempts: list[tuple[str, int]] = []
        with pytest.raises(Superseded):
            await CountedDelivery(old_db, "old", attempts, lambda: old_lease.fence).run_due()
        with pytest.raises(Superseded):
            await CountedSender(old_db, "old", attempts, lambda: old_lease.fence).run_due()
        with pytest.raises(Superseded):
            await old_db.write(mark_forwarded, "tls://repo:6514", 5, "now", 0, old_lease.fence)
        assert attempts == []
        assert await new_db.read(forwarded_through, "tls://repo:6514") == 0
        stamp = to_iso(utc_now())
        due = await new_db.read(report_store.due_deliveries, stamp, stamp)
        assert len(due) == 3 and all(row["claimed_at"] is None for row in due)
        await CountedDelivery(new_db, "new", attempts, lambda: new_lease.fence).run_due()
        await CountedSender(new_db, "new", attempts, lambda: new_lease.fence).run_due()
        assert sorted(attempts) == sorted(
            [("new", m["delivery"]) for m in made] + [("new", m["message"]) for m in made]
        )
    finally:
        await old_lease.release()
        await new_lease.release()
        old_db.close()
        new_db.close()


async def test_a_fence_passes_only_at_the_leases_epoch_now(handles):
    """A lease never taken is at epoch 0: a fence of epoch 0 passes and any other is refused;
    no fence (one host) always passes."""
    first, _ = handles
    assert await first.read(current_epoch, LEASE) == 0
    await first.read(check_fence, Fence(LEASE, 0))
    await first.read(check_fence, None)
    with pytest.raises(Superseded):
        await first.read(check_fence, Fence(LEASE, 1))


async def test_the_atna_cursor_moves_only_from_where_its_worker_read_it(handles):
    """Two forwarders read the cursor at 0 and each sent record 1: the first moves it to 1,
    the second's move (expecting 0) is refused (ForwardingMoved), and it stops there."""
    first, second = handles
    key = "tls://repository:6514"
    await first.write(mark_forwarded, key, 1, to_iso(utc_now()), 0)
    with pytest.raises(ForwardingMoved):
        await second.write(mark_forwarded, key, 1, to_iso(utc_now()), 0)
    await second.write(mark_forwarded, key, 2, to_iso(utc_now()), 1)
    assert await first.read(forwarded_through, key) == 2


async def test_a_replica_that_lost_the_lease_is_fenced_through_the_apps_own_workers(tmp_path):
    """Two replicas: the leader's lease connection drops (as when it is cut off from the
    server); the other replica leads within seconds at the next epoch, and the old leader's
    own delivery and HL7 workers — the app's objects, with the app's fence — are refused
    before they claim anything."""
    services = await start_replicas(tmp_path)
    try:
        (leader,) = leaders(services)
        other = next(s for s in services if s is not leader)
        epoch = leader.app[LEADERSHIP].fence().epoch
        await leader.app[LEADERSHIP].lease.release()
        deadline = asyncio.get_running_loop().time() + TAKE_OVER_SECONDS
        while not other.app[LEADERSHIP].leading:
            assert asyncio.get_running_loop().time() < deadline, "nobody took over"
            await asyncio.sleep(0.05)
        assert other.app[LEADERSHIP].fence() == Fence(LEASE, epoch + 1)
        await other.database.write(signed_versions, 1)
        with pytest.raises(Superseded):
            await leader.app[REPORT_DELIVERY].run_due()
        with pytest.raises(Superseded):
            await leader.app[HL7_RESULTS].run_due()
        stamp = to_iso(datetime.now(UTC))
        [due] = await other.database.read(report_store.due_deliveries, stamp, stamp)
        assert due["claimed_at"] is None
    finally:
        for service in services:
            await service.client.close()


def test_a_lease_fence_is_none_on_one_host():
    """Without a lease (SQLite, one host) the leadership has no fence: nothing to check."""
    from service.runtime.leadership import Leadership

    assert Leadership(leads=True).fence() is None
