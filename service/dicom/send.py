"""DICOM C-STORE sender (Storage SCU) built on pynetdicom.

teleread forwards studies to PACS/Orthanc nodes with DIMSE C-STORE, the one
protocol every hospital system speaks. :func:`send_datasets` opens an
association, stores every dataset over it and releases it; if the association is
lost on the way, the datasets it left unsent go over a fresh one. It is
synchronous (pynetdicom is thread based), so asyncio callers run it in an
executor.

pynetdicom's association reactor can take a C-STORE response off the queue the
sender is waiting on (:func:`keep_responses_for_the_sender` says how, and
``bench/pynetdicom_race.py`` reproduces it); the response is handed back to the
sender, and the fresh association is the fallback for any other loss.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, Association, evt
from pynetdicom.status import code_to_category
from pynetdicom.transport import AddressInformation, AssociationSocket

__all__ = [
    "STATUS_NOT_SENT",
    "STATUS_SOP_CLASS_NOT_SUPPORTED",
    "StoreError",
    "StoreResult",
    "send_datasets",
]

# pynetdicom logs every PDU at INFO/DEBUG; only keep problems. Respect an explicit
# level set by the application (e.g. pynetdicom.debug_logger() while debugging).
_PYNETDICOM_LOGGER = logging.getLogger("pynetdicom")
if _PYNETDICOM_LOGGER.level == logging.NOTSET:
    _PYNETDICOM_LOGGER.setLevel(logging.WARNING)

LOGGER = logging.getLogger(__name__)

#: Status recorded locally (never received from the peer) when the peer accepted the
#: association but rejected the presentation context for a dataset's SOP Class.
#: It is the C-STORE "Refused: SOP Class not supported" code, which is what the
#: peer would have answered had it been asked.
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122

#: Status recorded locally for datasets that were not sent: no accepted transfer
#: syntax fits or encoding failed (in :attr:`StoreResult.statuses`), or the
#: association was lost before their turn (in :attr:`StoreError.result`).
STATUS_NOT_SENT = -1

#: Upper bound from PS3.8: presentation context IDs are odd numbers 1..255.
_MAX_CONTEXTS = 128


@dataclass(frozen=True)
class StoreResult:
    """Outcome of :func:`send_datasets`.

    Attributes
    ----------
    sent : int
        Datasets the peer stored (status *Success* or *Warning*, e.g. 0xB000
        "coercion of data elements": the instance is stored, possibly modified).
    failed : int
        All other datasets.
    statuses : list of int
        DICOM status per dataset, in input order (0x0000 is success).
    """

    sent: int
    failed: int
    statuses: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every dataset was stored."""
        return self.failed == 0


class StoreError(Exception):
    """The association could not be used: not established, rejected or aborted.

    Attributes
    ----------
    result : StoreResult or None
        For an association lost mid-transfer, what had been stored so far
        (datasets not attempted carry :data:`STATUS_NOT_SENT`); ``None`` when
        nothing was attempted.
    """

    def __init__(self, message: str, result: StoreResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def send_datasets(
    datasets: Iterable[Dataset],
    *,
    host: str,
    port: int,
    calling_aet: str,
    called_aet: str,
    timeout: float = 30.0,
    associations: int = 3,
) -> StoreResult:
    """C-STORE every dataset, over one association unless it is lost (synchronous; callers run
    it in an executor).

    Parameters
    ----------
    datasets : iterable of pydicom.Dataset
        Datasets with *SOP Class UID*, *SOP Instance UID* and file meta
        *Transfer Syntax UID* (as produced by :mod:`service.demo.synthetic` or read
        with ``dcmread``). Consumed once, up front, to negotiate the contexts.
    host, port : str, int
        Address of the Storage SCP.
    calling_aet, called_aet : str
        Our AE title and the peer's; PACS commonly reject unknown calling AETs.
    timeout : float
        Seconds allowed for the TCP connect, association negotiation, each
        DIMSE response and network inactivity.
    associations : int
        At most this many associations: when one is aborted, times out or drops
        mid-transfer, the datasets without a response (the one in flight
        included: storing an instance twice is harmless, the SOP Instance UID
        identifies it) are sent again over a fresh one.

    Returns
    -------
    StoreResult
        Per-dataset statuses. Refusals by the peer (e.g. 0xA700 out of resources)
        are reported here, not raised, so callers can retry just those.

    Raises
    ------
    StoreError
        If the first association is not established (connection refused,
        timeout, rejection by the peer), or if the last association allowed is
        lost, or a fresh one refused, before every dataset is sent; its
        ``result`` then says what was stored.
    ValueError
        If the datasets span more SOP Classes than one association can negotiate.
    """
    items = list(datasets)
    if not items:
        return StoreResult(sent=0, failed=0, statuses=[])

    ae = _StorageSCU(ae_title=calling_aet)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    for sop_class, syntaxes in _requested_contexts(items).items():
        ae.add_requested_context(sop_class, syntaxes)

    peer = f"{called_aet}@{host}:{port}"
    # None: not answered yet (never sent, or sent over an association lost before the answer).
    statuses: list[int | None] = [None] * len(items)
    attempts = max(associations, 1)
    try:
        for attempt in range(1, attempts + 1):
            try:
                _associate_and_store(ae, host, port, called_aet, timeout, items, statuses, peer)
                break
            except _AssociationLost as lost:
                if attempt == attempts:
                    raise _lost(peer, statuses, str(lost)) from None
                LOGGER.warning(
                    "%s (%s); sending the %d unanswered dataset(s) over a fresh association",
                    lost,
                    peer,
                    statuses.count(None),
                )
            except StoreError as exc:
                if attempt == 1:
                    raise
                raise _lost(peer, statuses, str(exc)) from exc
    finally:
        ae.shutdown()
        ae.close_sockets()
    return _result(statuses)


class _AssociationLost(Exception):
    """The association ended before every dataset it carried was answered."""


def _associate_and_store(
    ae: AE,
    host: str,
    port: int,
    called_aet: str,
    timeout: float,
    items: list[Dataset],
    statuses: list[int | None],
    peer: str,
) -> None:
    """One association: C-STORE the datasets not answered yet, filling in `statuses`."""
    connected = threading.Event()

    def on_connection_open(event: evt.Event) -> None:
        connected.set()
        _enable_tcp_nodelay(event)

    assoc: Association | None = None
    try:
        assoc = ae.associate(
            host,
            port,
            ae_title=called_aet,
            evt_handlers=[(evt.EVT_CONN_OPEN, on_connection_open)],
        )
        if not assoc.is_established:
            reason = (
                _failure_reason(assoc)
                if connected.is_set()
                else "connection failed (refused, unreachable or timed out)"
            )
            raise StoreError(f"could not associate with {peer}: {reason}")
        keep_responses_for_the_sender(assoc)
        try:
            _store_all(assoc, items, statuses, peer)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        if assoc is not None:
            _join_threads(assoc, timeout)


def keep_responses_for_the_sender(assoc: Association) -> None:
    """Hand a DIMSE response that pynetdicom's reactor took back to the sender waiting for it.

    pynetdicom (3.0.4, ``Association.send_c_store``) pauses the association's reactor thread
    while a request waits for its response, and takes "the reactor set ``_is_paused``" as proof
    that it is paused. The flag stays set after the reactor has been woken by the previous
    request's end, until that thread runs again; on a busy machine it may not run before the next
    request is sent and answered. It then takes the response off the queue and drops it
    ("Received unexpected C-STORE service message"), and the sender waits for the DIMSE timeout
    and aborts (``bench/pynetdicom_race.py`` reproduces it). A response taken while a sender
    waits (the checkpoint is cleared only then) goes back on the queue the sender reads; anything
    else goes to pynetdicom's own handling. This wraps a private method: should pynetdicom rename
    it, nothing is wrapped and a lost response costs a fresh association instead.
    """
    serve = getattr(assoc, "_serve_request", None)
    messages = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
    if serve is None or messages is None or not hasattr(assoc, "_reactor_checkpoint"):
        LOGGER.debug("pynetdicom internals changed; responses taken by the reactor are lost")
        return

    def serve_or_hand_back(msg: Any, context_id: int) -> None:
        waiting = not assoc._reactor_checkpoint.is_set()  # cleared only while a sender waits
        if getattr(msg, "is_valid_response", False) and waiting:
            LOGGER.debug("reactor took the %s meant for the sender; handed back", msg.msg_type)
            messages.put((context_id, msg))
            return
        serve(msg, context_id)

    assoc._serve_request = serve_or_hand_back  # type: ignore[method-assign]


class _StorageSCU(AE):
    """An :class:`~pynetdicom.AE` that always closes the sockets it creates.

    pynetdicom 3.0.x drops the socket without closing it when the TCP connect
    fails (``shutdown()`` raises on an unconnected socket and ``close()`` is
    skipped), leaking a file descriptor and a ``ResourceWarning`` per failed
    attempt; pydicom/pynetdicom#999 fixes it upstream. Keeping a reference lets
    us close it ourselves; closing an already closed socket is a no-op.
    """

    def __init__(self, ae_title: str) -> None:
        super().__init__(ae_title=ae_title)
        self._raw_sockets: list[socket.socket] = []

    def _create_socket(
        self,
        assoc: Association,
        address: AddressInformation,
        tls_args: tuple[SSLContext, str] | None,
    ) -> AssociationSocket:
        """Create the socket as pynetdicom does, remembering the raw socket."""
        assoc_socket = super()._create_socket(assoc, address, tls_args)
        if assoc_socket.socket is not None:
            self._raw_sockets.append(assoc_socket.socket)
        return assoc_socket

    def close_sockets(self) -> None:
        """Close every socket created by this AE (call once its associations ended)."""
        for sock in self._raw_sockets:
            sock.close()
        self._raw_sockets.clear()


def _join_threads(assoc: Association, timeout: float) -> None:
    """Wait for the association's reactor and DUL threads to finish.

    They exit on their own shortly after release/abort; waiting makes
    :func:`send_datasets` leave nothing running behind (important for executors
    and for tests that check for leaked threads and sockets).
    """
    for thread in (assoc, assoc.dul):
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)


def _requested_contexts(items: list[Dataset]) -> dict[UID, list[UID]]:
    """Transfer syntaxes to offer per SOP Class, preserving first-seen order.

    Each dataset's own transfer syntax is offered first (no re-encoding needed),
    plus Implicit VR Little Endian, the default every SCP must accept; pynetdicom
    converts between the uncompressed syntaxes if only the latter is accepted.
    """
    contexts: dict[UID, list[UID]] = {}
    for ds in items:
        syntaxes = contexts.setdefault(UID(ds.SOPClassUID), [])
        file_meta = getattr(ds, "file_meta", None) or {}
        own = UID(file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
        if own not in syntaxes:
            syntaxes.append(own)
    for syntaxes in contexts.values():
        if ImplicitVRLittleEndian not in syntaxes:
            syntaxes.append(ImplicitVRLittleEndian)
    if len(contexts) > _MAX_CONTEXTS:
        raise ValueError(
            f"{len(contexts)} SOP Classes exceed the {_MAX_CONTEXTS} presentation "
            "contexts of one association; split the datasets"
        )
    return contexts


def _store_all(
    assoc: Association, items: list[Dataset], statuses: list[int | None], peer: str
) -> None:
    """C-STORE each dataset not answered yet over the established `assoc`, recording statuses.

    Raises :class:`_AssociationLost` when the association ends before all are answered.
    """
    accepted = {UID(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    for index, ds in enumerate(items):
        if statuses[index] is not None:
            continue
        if not assoc.is_established:
            raise _AssociationLost("association aborted by the peer")
        if UID(ds.SOPClassUID) not in accepted:
            LOGGER.warning(
                "%s rejected SOP Class %s; not sending %s", peer, ds.SOPClassUID, ds.SOPInstanceUID
            )
            statuses[index] = STATUS_SOP_CLASS_NOT_SUPPORTED
            continue
        try:
            response = assoc.send_c_store(ds)
        except ValueError as exc:
            # No usable context for the dataset's transfer syntax, or encoding failed:
            # a problem with this dataset only, so carry on with the others.
            LOGGER.warning("could not send %s to %s: %s", ds.SOPInstanceUID, peer, exc)
            statuses[index] = STATUS_NOT_SENT
            continue
        except RuntimeError as exc:  # the association dropped since the check above
            raise _AssociationLost("association lost") from exc
        status = response.get("Status")
        if status is None:
            # Empty response: DIMSE timeout, abort or invalid reply; pynetdicom aborts.
            raise _AssociationLost(f"no C-STORE response for {ds.SOPInstanceUID}")
        statuses[index] = int(status)
        if not _is_stored(int(status)):
            LOGGER.warning("%s refused %s: status 0x%04X", peer, ds.SOPInstanceUID, int(status))


def _is_stored(status: int) -> bool:
    """True for statuses meaning the peer kept the instance (Success or Warning)."""
    return status >= 0 and code_to_category(status) in ("Success", "Warning")


def _result(statuses: list[int | None]) -> StoreResult:
    """Summarise statuses into a :class:`StoreResult` (unanswered: :data:`STATUS_NOT_SENT`)."""
    final = [STATUS_NOT_SENT if status is None else status for status in statuses]
    sent = sum(1 for status in final if _is_stored(status))
    return StoreResult(sent=sent, failed=len(final) - sent, statuses=final)


def _lost(peer: str, statuses: list[int | None], reason: str) -> StoreError:
    """Build the :class:`StoreError` for a lost association, with the partial result."""
    answered = sum(1 for status in statuses if status is not None)
    return StoreError(
        f"{reason} ({peer}); {answered} of {len(statuses)} datasets answered",
        result=_result(statuses),
    )


def _failure_reason(assoc: Association) -> str:
    """Human-readable reason why `assoc` is not established."""
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        details = ""
        if rsp is not None:
            details = f" ({rsp.result_str}, {rsp.source_str}: {rsp.reason_str})"
        return f"association rejected{details}"
    if assoc.is_aborted:
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            offered = ", ".join(sorted({str(cx.abstract_syntax) for cx in assoc.rejected_contexts}))
            return f"peer accepted none of the presentation contexts ({offered})"
        return "association aborted during negotiation"
    return "connection failed or timed out"


def _enable_tcp_nodelay(event: evt.Event) -> None:
    """Disable Nagle's algorithm on the freshly connected association socket.

    pynetdicom has no option for it, but ``EVT_CONN_OPEN`` is triggered right
    after ``connect()`` and before the A-ASSOCIATE-RQ is written, so every PDU
    benefits. Without it, small PDUs (the C-STORE command set that precedes each
    dataset, A-RELEASE) can wait for delayed ACKs, costing up to ~40 ms per image.
    """
    assoc_socket = event.assoc.dul.socket
    sock = assoc_socket.socket if assoc_socket is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # e.g. an exotic transport; a missed optimisation only
        LOGGER.debug("could not set TCP_NODELAY: %s", exc)
