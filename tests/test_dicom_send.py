"""C-STORE sending that loses no instance: pynetdicom's reactor race, and lost associations.

The race (tests/pynetdicom_race.py, bench/pynetdicom_race.py): pynetdicom's association reactor
can take the C-STORE response its sender waits for; the sender then waited for the DIMSE timeout
and aborted (``make test`` failed that way on a busy machine). Here it is provoked on purpose.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, evt

from service.demo.synthetic import StudySpec, make_study
from service.dicom.send import StoreResult, send_datasets
from service.runtime.orthanc.client import OrthancClient

from .pynetdicom_race import provoked_reactor


def _study(instances: int) -> list[Dataset]:
    return make_study(StudySpec("RACE1", "RACE^TEST", "CT", "HEAD", instances=instances, rows=32))


async def test_a_response_the_reactor_takes_still_reaches_the_sender(orthanc) -> None:
    """With the reactor waking after the response arrived, every instance is stored in Orthanc
    over one association (no DIMSE timeout, no second association)."""
    datasets = _study(4)
    started = time.monotonic()
    with provoked_reactor() as provocations:
        result = await asyncio.to_thread(
            send_datasets,
            datasets,
            host="127.0.0.1",
            port=orthanc.config.dicom_port,
            calling_aet="RACE",
            called_aet="TELEREAD",
            timeout=10,
            associations=1,
        )
    assert provocations.count == 1  # the reactor did wake up with the response queued
    assert result == StoreResult(sent=4, failed=0, statuses=[0] * 4)
    assert time.monotonic() - started < 10
    credentials = orthanc.config.credentials
    client = OrthancClient(orthanc.url, credentials.username, credentials.password)
    try:
        stored = await client.get("/instances", expand="")
    finally:
        await client.close()
    uids = {item["MainDicomTags"]["SOPInstanceUID"] for item in stored}
    assert uids == {str(ds.SOPInstanceUID) for ds in datasets}


#: The sender's timeout against each peer; the peer that falls silent stays silent twice as long.
#: Against the peer that aborts no timeout is reached, and a long one spares a busy machine's
#: slow association (a make test run at a load of 9 failed the abort case at a 1 s ACSE timeout).
SENDER_TIMEOUT = {"abort": 30.0, "silent": 2.0}


@dataclass
class FlakyPeer:
    """A Storage SCP that fails its first association at the second instance."""

    how: str  # "abort" the association, or stay "silent" past the sender's DIMSE timeout
    port: int = 0
    associations: int = 0
    stored: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_open(self, event: evt.Event) -> None:
        with self.lock:
            self.associations += 1

    def on_store(self, event: evt.Event) -> int:
        with self.lock:
            first = self.associations == 1
            failing = first and len(self.stored) == 1
        if failing and self.how == "abort":
            event.assoc.abort()
            return 0x0000
        if failing:
            # past the sender's timeout: it aborts and sends again elsewhere
            time.sleep(2 * SENDER_TIMEOUT["silent"])
            return 0x0000
        with self.lock:
            self.stored.append(str(event.dataset.SOPInstanceUID))
        return 0x0000


@pytest.fixture(params=["abort", "silent"])
def flaky_peer(request: pytest.FixtureRequest) -> Iterator[FlakyPeer]:
    peer = FlakyPeer(request.param)
    ae = AE(ae_title="FLAKY")
    ae.supported_contexts = StoragePresentationContexts
    handlers = [(evt.EVT_ESTABLISHED, peer.on_open), (evt.EVT_C_STORE, peer.on_store)]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    peer.port = server.server_address[1]
    try:
        yield peer
    finally:
        server.shutdown()
        ae.shutdown()


def test_instances_a_lost_association_left_unsent_go_over_a_fresh_one(
    flaky_peer: FlakyPeer,
) -> None:
    """The peer aborts (or falls silent) at the second of four instances: the three without an
    answer are sent again on a second association and every instance arrives once."""
    datasets = _study(4)
    result = send_datasets(
        datasets,
        host="127.0.0.1",
        port=flaky_peer.port,
        calling_aet="TELEREAD",
        called_aet="FLAKY",
        timeout=SENDER_TIMEOUT[flaky_peer.how],
    )
    assert result == StoreResult(sent=4, failed=0, statuses=[0] * 4)
    assert flaky_peer.associations == 2
    assert sorted(flaky_peer.stored) == sorted(str(ds.SOPInstanceUID) for ds in datasets)
