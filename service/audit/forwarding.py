"""Live forwarding of the audit trail to an ATNA audit repository: syslog over TLS.

IHE ATNA's Record Audit Event transaction (ITI-20) sends each DICOM audit message (PS3.15 A.5,
:mod:`.atna`) as one RFC 5424 syslog message over TLS (RFC 5425), framed by octet counting::

    MSG-LEN SP <85>1 TIMESTAMP HOSTNAME teleread PROCID IHE+RFC-3881 [meta sequenceId="ID"] BOM MSG

PRI 85 is facility 10 (security/authorization) at severity 5 (notice); MSGID ``IHE+RFC-3881``
is what ITI-20 asks of messages in the DICOM/RFC 3881 format; TIMESTAMP is the record's own time;
MSG is the message XML in UTF-8 behind a byte-order mark (RFC 5424 6.4). The structured element
``meta sequenceId`` (RFC 5424 7.3.1) carries the audit record's id, so a repository can drop a
message it already has.

Delivery: the trail is the queue. ``atna_forwarding`` keeps, per destination, the id of the last
record known to have arrived (service/storage/atna_cursor.py); the forwarder sends the records
after it in chain order and moves the cursor after each confirmed send. Syslog has no
acknowledgement, so "confirmed" is the best TCP offers:

* one message in flight: write it, wait until asyncio has handed every byte to the kernel,
  then until the repository's TCP has acknowledged every
  byte (``SIOCOUTQ`` = 0 on Linux) while the connection is still established or closed by the
  peer in order (an RST is no acknowledgement); only then the cursor moves;
* a new connection is written to only after a moment (``SETTLE_SECONDS``) in which the
  repository did not close it: in TLS 1.3 a server refuses a client certificate after the
  client's handshake has ended, and a message written then would be acknowledged by TCP and
  dropped by TLS;
* before writing, the connection is checked: a repository that closed it (TLS close_notify or
  FIN, which a watcher reading the socket sees, or any TCP state but ESTABLISHED) gets a new
  connection first, so a message is not written into a connection already dead;
* a send that is not confirmed within ``ACK_TIMEOUT`` or fails counts as not sent: the
  connection is dropped and the same record is sent again on the next one.
* a connection the repository ended is closed from this side too as soon as the watcher sees
  it, so a repository that stops as RFC 5425 4.4 intends (ends its side, reads on until the
  sender closes) receives everything written before, and nothing is written after.

So records are never skipped and normally arrive once, in order. The two edges TCP leaves: a
repository whose TCP acknowledged a message but which died before reading it loses that one
message; and a message that arrived but whose acknowledgement was lost with the connection is
sent again (its ``sequenceId`` shows the repeat). Elsewhere than Linux the acknowledgement
cannot be read and "sent" means written to the kernel.

While the repository is unreachable, the forwarder retries with doubling delays (up to
``MAX_BACKOFF``) and logs once when the outage starts and once when it ends. It runs in the
primary web process only (service/app.py): its own records wake it as they are committed, the
other processes' are found by polling every second. Everything on the event loop is
non-blocking: database reads and message building go to threads.

Among replicas only the leader forwards, and the cursor is moved only by a worker that read it
where it stands and whose leader still holds the lease (service/storage/fencing.py): an old
leader still forwarding while a new one starts stops at its next record (``Superseded`` or
``ForwardingMoved``), so at most the one message in flight goes twice, with its ``sequenceId``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import socket
import ssl
import struct
import termios
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..clock import to_iso, utc_now
from ..settings import Settings, SettingsError
from ..storage.atna_cursor import ForwardingMoved, forwarded_through, mark_forwarded
from ..storage.audit_search import EVERYONE, AuditFilter, audit_batch, names_for
from ..storage.database import Database
from ..storage.fencing import Fence, Superseded, check_fence
from .atna import AuditSource, audit_message, to_xml
from .export import default_source_id

log = logging.getLogger(__name__)

SYSLOG_TLS_PORT = 6514  # RFC 5425
PRI = "<85>"  # facility 10 (security/authorization), severity 5 (notice)
APP_NAME = "teleread"
MSGID = "IHE+RFC-3881"  # IHE ITI TF-2 3.20.7: DICOM / RFC 3881 audit messages
BOM = "\ufeff"
MAX_SEQUENCE_ID = 2_147_483_647  # RFC 5424 7.3.1
BATCH = 100
ACK_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
#: After a handshake, how long to wait for the repository's verdict before the first write: in
#: TLS 1.3 the client's handshake ends before the server has checked the client certificate.
SETTLE_SECONDS = 0.2
MAX_BACKOFF = 60.0
_TCP_ESTABLISHED, _TCP_CLOSE_WAIT = 1, 8
#: RFC 5424 TIMESTAMP (RFC 3339, at most six fraction digits), as the trail stores times.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class Destination:
    """Where to forward: ``tls://host[:port]`` (``TELEREAD_ATNA_URL``)."""

    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Destination:
        parts = urlsplit(url)
        if parts.scheme != "tls" or not parts.hostname:
            raise ValueError(f"not a tls://host[:port] address: {url!r}")
        return cls(parts.hostname, parts.port or SYSLOG_TLS_PORT)

    @property
    def key(self) -> str:
        """How the cursor names this destination: a new repository starts from the beginning."""
        return f"tls://{self.host}:{self.port}"


def tls_context(
    ca_file: str | None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """Verify the repository against ``ca_file`` (else the system's CAs); present a client
    certificate when given (ATNA's Secure Node authenticates both ends)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


def syslog_frame(row: dict, xml: str, hostname: str, procid: str) -> bytes:
    """One audit message as an octet-counted RFC 5424 message (RFC 5425 4.3)."""
    sequence = int(row["id"])
    data = f'[meta sequenceId="{sequence}"]' if 0 < sequence <= MAX_SEQUENCE_ID else "-"
    stamp = row["at"] if _TIMESTAMP.fullmatch(row["at"] or "") else "-"
    header = f"{PRI}1 {stamp} {hostname} {APP_NAME} {procid} {MSGID} {data} "
    message = (header + BOM + xml).encode("utf-8", "replace")
    return f"{len(message)} ".encode("ascii") + message


def syslog_hostname(host: str | None = None) -> str:
    """RFC 5424 HOSTNAME: printable ASCII, at most 255 characters, '-' when unknown."""
    name = host or socket.getfqdn() or "-"
    name = "".join(c for c in name if 33 <= ord(c) <= 126)[:255]
    return name or "-"


class RepositoryUnreachable(ConnectionError):
    """The repository could not be reached, closed the connection or did not confirm a send."""


class _Connection:
    """One TLS connection to the repository, with a watcher that notices the peer closing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.watcher = asyncio.create_task(self._watch(), name="atna-connection-watch")

    async def _watch(self) -> None:
        """A syslog receiver sends nothing: anything read is the end (close_notify, FIN)."""
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
            while await self.reader.read(4096):
                pass

    def usable(self) -> bool:
        """Established and not closed by the peer: safe to write the next message into."""
        if self.watcher.done() or self.writer.is_closing():
            return False
        state = _tcp_state(self.sock)
        return state is None or state == _TCP_ESTABLISHED

    async def send(self, frame: bytes) -> None:
        """Write one frame; return once the peer's TCP has acknowledged all of it."""
        self.writer.write(frame)
        await self.writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACK_TIMEOUT
        while True:
            if not self.writer.transport.get_write_buffer_size():  # all handed to the kernel
                state, unacked = _tcp_state(self.sock), _unacknowledged(self.sock)
                if state is None or unacked is None:
                    return  # not measurable here: written to the kernel is all we can know
                if unacked == 0 and state in (_TCP_ESTABLISHED, _TCP_CLOSE_WAIT):
                    return
                if state not in (_TCP_ESTABLISHED, _TCP_CLOSE_WAIT):
                    raise RepositoryUnreachable("the connection was reset before it arrived")
            elif self.writer.is_closing():
                raise RepositoryUnreachable("the connection closed before the message was sent")
            if loop.time() > deadline:
                raise RepositoryUnreachable(f"no acknowledgement within {ACK_TIMEOUT:g} s")
            await asyncio.sleep(0.002)

    async def close(self) -> None:
        self.watcher.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


def _tcp_state(sock: object) -> int | None:
    """The kernel's TCP state of the socket (Linux ``TCP_INFO``), None where unknown."""
    option = getattr(socket, "TCP_INFO", None)
    if sock is None or option is None:
        return None
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, option, 8)[0]  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return None


def _unacknowledged(sock: object) -> int | None:
    """Bytes sent but not yet acknowledged by the peer (Linux ``SIOCOUTQ``), None if unknown."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)  # type: ignore[attr-defined]
    except (OSError, AttributeError, ValueError):
        return None
    return struct.unpack("i", raw)[0]


class AtnaForwarder:
    """Sends the audit trail, in order, to one repository; see the module docstring."""

    def __init__(
        self,
        database: Database,
        destination: Destination,
        context: ssl.SSLContext,
        source: AuditSource,
        hostname: str,
        *,
        poll_interval: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        """``fence``: the lease's fence the cursor is moved under (the app's leadership's)."""
        self.database, self.destination, self.context = database, destination, context
        self.fence = fence
        self.source, self.hostname = source, hostname
        self.poll_interval, self.max_backoff = poll_interval, max_backoff
        self.procid = str(os.getpid())
        self.wake = asyncio.Event()
        self.down = False
        self._stopping = False
        self._in_flight = False
        self._connection: _Connection | None = None

    async def run(self) -> None:
        """Forward until cancelled: poll (or be woken), back off while the repository is down."""
        failures = 0
        while not self._stopping:
            self.wake.clear()
            try:
                while await self.forward_batch():
                    pass
            except (Superseded, ForwardingMoved) as exc:  # another replica forwards now
                failures += 1
                await self._drop_connection()
                log.warning("ATNA forwarding to %s stops: %s", self.destination.key, exc)
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
                failures += 1
                await self._drop_connection()
                self._outage(exc)
            except Exception:
                failures += 1
                await self._drop_connection()
                log.exception("ATNA forwarding to %s failed", self.destination.key)
            else:
                failures = 0
            if self._connection is not None and not self._connection.usable():
                await self._drop_connection()  # closed by the repository: close our side too
            if failures:  # new records do not cut a back-off short
                await asyncio.sleep(
                    min(self.poll_interval * 2 ** min(failures, 30), self.max_backoff)
                )
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll_interval)

    def _outage(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            log.warning(
                "ATNA repository %s unreachable (%s); audit records wait in the trail and are "
                "sent in order when it is back",
                self.destination.key,
                exc or type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self.down:
            self.down = False
            log.warning(
                "ATNA repository %s reachable again; forwarding resumed", self.destination.key
            )

    async def forward_batch(self) -> int:
        """Send the next records after the cursor, one at a time; how many were sent. Raises
        ``Superseded`` (another replica leads) or ``ForwardingMoved`` (another worker moved
        the cursor) before sending anything more."""
        key = self.destination.key
        after = await self.database.read(forwarded_through, key)
        rows = await self.database.read(audit_batch, AuditFilter(), EVERYONE, after, BATCH)
        if not rows:
            return 0
        await self.database.read(check_fence, self.fence())
        frames = await self.database.read(self._frames, rows)
        sent = 0
        for row, frame in zip(rows, frames, strict=True):
            if self._stopping:
                break
            connection = await self._usable_connection()
            self._in_flight = True
            try:
                await connection.send(frame)
                await self.database.write_bookkeeping(
                    mark_forwarded, key, int(row["id"]), to_iso(utc_now()), after, self.fence()
                )
            finally:
                self._in_flight = False
            after = int(row["id"])
            self._recovered()
            sent += 1
        return sent

    def _frames(self, db: object, rows: list[dict]) -> list[bytes]:
        """On a reader thread: the names the messages show, then the framed messages."""
        names = names_for(db, rows, EVERYONE)  # type: ignore[arg-type]
        return [
            syslog_frame(
                row, to_xml(audit_message(row, self.source, names)), self.hostname, self.procid
            )
            for row in rows
        ]

    async def _usable_connection(self) -> _Connection:
        if self._connection is not None and self._connection.usable():
            return self._connection
        await self._drop_connection()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.destination.host,
                self.destination.port,
                ssl=self.context,
                ssl_handshake_timeout=CONNECT_TIMEOUT,
            ),
            CONNECT_TIMEOUT,
        )
        self._connection = _Connection(reader, writer)
        await asyncio.sleep(SETTLE_SECONDS)
        if not self._connection.usable():
            raise RepositoryUnreachable(
                "the repository closed the connection after the handshake "
                "(was teleread's client certificate refused?)"
            )
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """The forwarding task while the block runs. On the way out a send in flight is let
        finish (and its cursor written) before the task ends, so stopping the service does not
        leave a message sent but not marked, which the next start would send again; only a
        send still unconfirmed after ``ACK_TIMEOUT`` is cancelled. Anything else (waiting,
        connecting) is cancelled at once."""
        task = asyncio.create_task(self.run(), name="atna-forwarding")
        self.database.audit_listeners.append(self.wake.set)
        try:
            yield task
        finally:
            self.database.audit_listeners.remove(self.wake.set)
            self._stopping = True
            self.wake.set()
            if self._in_flight:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), ACK_TIMEOUT)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._drop_connection()


def atna_forwarder(
    settings: Settings,
    database: Database,
    fence: Callable[[], Fence | None] = lambda: None,
) -> AtnaForwarder | None:
    """The forwarder ``TELEREAD_ATNA_*`` ask for, or None when ``TELEREAD_ATNA_URL`` is unset;
    ``fence``: the leadership's, among replicas.

    Reads certificate files and may ask DNS for this machine's name: call it off the loop."""
    if not settings.atna_url:
        return None
    host = urlsplit(settings.public_url or "").hostname
    try:
        context = tls_context(
            settings.atna_ca_file, settings.atna_client_cert, settings.atna_client_key
        )
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"TELEREAD_ATNA_CA_FILE / TELEREAD_ATNA_CLIENT_CERT / TELEREAD_ATNA_CLIENT_KEY: "
            f"cannot load: {exc}"
        ) from exc
    return AtnaForwarder(
        database,
        Destination.from_url(settings.atna_url),
        context,
        AuditSource(default_source_id(host)),
        syslog_hostname(host),
        fence=fence,
    )
