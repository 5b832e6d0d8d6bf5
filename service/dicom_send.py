"""DICOM C-STORE sender (Storage SCU) built on pynetdicom.

teleread forwards studies to PACS/Orthanc nodes with DIMSE C-STORE, the one
protocol every hospital system speaks. :func:`send_datasets` opens a single
association, stores every dataset over it and releases it; it is synchronous
(pynetdicom is thread based), so asyncio callers run it in an executor.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from ssl import SSLContext

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
) -> StoreResult:
    """One association, C-STORE every dataset (synchronous; callers run it in an executor).

    Parameters
    ----------
    datasets : iterable of pydicom.Dataset
        Datasets with *SOP Class UID*, *SOP Instance UID* and file meta
        *Transfer Syntax UID* (as produced by :mod:`service.synthetic` or read
        with ``dcmread``). Consumed once, up front, to negotiate the contexts.
    host, port : str, int
        Address of the Storage SCP.
    calling_aet, called_aet : str
        Our AE title and the peer's; PACS commonly reject unknown calling AETs.
    timeout : float
        Seconds allowed for the TCP connect, association negotiation, each
        DIMSE response and network inactivity.

    Returns
    -------
    StoreResult
        Per-dataset statuses. Refusals by the peer (e.g. 0xA700 out of resources)
        are reported here, not raised, so callers can retry just those.

    Raises
    ------
    StoreError
        If the association is not established (connection refused, timeout,
        rejection by the peer) or is aborted/lost before every dataset is sent.
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
        try:
            return _store_all(assoc, items, peer)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        ae.shutdown()
        if assoc is not None:
            _join_threads(assoc, timeout)
        ae.close_sockets()


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


def _store_all(assoc: Association, items: list[Dataset], peer: str) -> StoreResult:
    """C-STORE each dataset over the established `assoc`."""
    accepted = {UID(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    statuses: list[int] = []
    for ds in items:
        if not assoc.is_established:
            raise _lost(peer, statuses, len(items), "association aborted by the peer")
        if UID(ds.SOPClassUID) not in accepted:
            LOGGER.warning(
                "%s rejected SOP Class %s; not sending %s", peer, ds.SOPClassUID, ds.SOPInstanceUID
            )
            statuses.append(STATUS_SOP_CLASS_NOT_SUPPORTED)
            continue
        try:
            response = assoc.send_c_store(ds)
        except ValueError as exc:
            # No usable context for the dataset's transfer syntax, or encoding failed:
            # a problem with this dataset only, so carry on with the others.
            LOGGER.warning("could not send %s to %s: %s", ds.SOPInstanceUID, peer, exc)
            statuses.append(STATUS_NOT_SENT)
            continue
        except RuntimeError as exc:  # the association dropped since the check above
            raise _lost(peer, statuses, len(items), "association lost") from exc
        status = response.get("Status")
        if status is None:
            # Empty response: DIMSE timeout, abort or invalid reply; pynetdicom aborts.
            reason = f"no C-STORE response for {ds.SOPInstanceUID}"
            raise _lost(peer, statuses, len(items), reason)
        statuses.append(int(status))
        if not _is_stored(int(status)):
            LOGGER.warning("%s refused %s: status 0x%04X", peer, ds.SOPInstanceUID, int(status))
    return _result(statuses)


def _is_stored(status: int) -> bool:
    """True for statuses meaning the peer kept the instance (Success or Warning)."""
    return status >= 0 and code_to_category(status) in ("Success", "Warning")


def _result(statuses: list[int]) -> StoreResult:
    """Summarise statuses into a :class:`StoreResult`."""
    sent = sum(1 for status in statuses if _is_stored(status))
    return StoreResult(sent=sent, failed=len(statuses) - sent, statuses=list(statuses))


def _lost(peer: str, statuses: list[int], total: int, reason: str) -> StoreError:
    """Build the :class:`StoreError` for a lost association, with the partial result."""
    padded = statuses + [STATUS_NOT_SENT] * (total - len(statuses))
    return StoreError(
        f"{reason} ({peer}); {len(statuses)} of {total} datasets attempted",
        result=_result(padded),
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
