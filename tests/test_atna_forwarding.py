"""Live ATNA forwarding: RFC 5424 messages over RFC 5425 TLS to a real local receiver.

The receiver is written here (asyncio + ssl, certificates made with ``cryptography``) and asks
for a client certificate, as an ATNA Secure Node does. It is stopped and started again while
records are being written; every record must arrive, in order, once, valid against the PS3.15
A.5.1 schema. The trail is a real SQLite database; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.audit import AuditEntry
from service.audit.atna import AuditSource
from service.audit.forwarding import AtnaForwarder, Destination, atna_forwarder, tls_context
from service.settings import SettingsError
from service.storage.atna_cursor import forwarded_through

from .atna_schema import assert_schema_valid
from .backends import database_at
from .conftest import Service, free_port, suite_settings

#: RFC 5424: PRI (authpriv.notice) VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD, then
#: the MSG behind a byte-order mark.
HEADER = re.compile(
    r"<85>1 (?P<time>\S+) (?P<host>\S+) teleread \d+ IHE\+RFC-3881 "
    r'\[meta sequenceId="(?P<id>\d+)"\] \ufeff'
)


# --------------------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, key, signer, ca=False, server=False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory, database_backend: str) -> Path:
    """A CA, the repository's certificate (localhost) and teleread's client certificate (one
    set per engine: a module-scoped fixture of a both-engines module follows the engine)."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test audit CA", "test audit CA", ca_key, ca_key, ca=True)
    _write(folder / "ca", ca, ca_key)
    for name, server in (("repository", True), ("teleread", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder / name, _certificate(name, "test audit CA", key, ca_key, server=server), key)
    return folder


# --------------------------------------------------------------------------- the receiver


class SyslogReceiver:
    """An RFC 5425 receiver: TLS with client certificates, octet-counted RFC 5424 frames."""

    def __init__(self, pki: Path, port: int) -> None:
        self.port = port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki / "ca.crt")
        self.context.load_cert_chain(pki / "repository.crt", pki / "repository.key")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.messages: list[str] = []
        self.clients: list[str] = []
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context, reuse_address=True
        )

    async def stop(self) -> None:
        """Stop as a syslog receiver should: stop listening, end each connection's sending
        direction (a TCP FIN the sender sees), read on until the sender closes its side."""
        assert self._server is not None
        self._server.close()
        for task, writer in list(self._connections.items()):
            with contextlib.suppress(OSError):
                writer.get_extra_info("socket").shutdown(socket.SHUT_WR)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 2)
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.clients.append(writer.get_extra_info("peercert")["subject"][0][0][1])
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            while True:
                length = int((await reader.readuntil(b" "))[:-1])
                self.messages.append((await reader.readexactly(length)).decode("utf-8"))
        self._connections.pop(task, None)


# --------------------------------------------------------------------------- the test


def entry(n: int) -> AuditEntry:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    actions = ("consultation.view", "auth.login", "worklist.query", "report.sign")
    return AuditEntry(
        at=now,
        action=actions[n % len(actions)],
        outcome="success",
        user_id=1,
        username="李专家",
        role="specialist",
        facility_id=1,
        resource_type="consultation",
        resource_id=str(n),
        patient_id=f"P-{n:03d}",
        study_instance_uid=f"1.2.826.0.1.{n}",
        client_ip="10.0.0.7",
    )


async def wait_until(condition, timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_repository_stopped_and_restarted_gets_every_record_once_in_order(
    tmp_path, pki, caplog
):
    """Records written before, during and after an outage of the repository all arrive, in
    chain order, none twice, each a valid audit message in a well-formed syslog frame; the
    outage is logged once; a new forwarder (a restarted service) resumes after the cursor."""
    database = database_at(tmp_path / "teleread.db")
    receiver = SyslogReceiver(pki, free_port())
    destination = Destination.from_url(f"tls://localhost:{receiver.port}")
    context = tls_context(str(pki / "ca.crt"), str(pki / "teleread.crt"), str(pki / "teleread.key"))

    def forwarder() -> AtnaForwarder:
        source = AuditSource("teleread@teleread-test.example")
        return AtnaForwarder(
            database,
            destination,
            context,
            source,
            "teleread-test.example",
            poll_interval=0.02,
            max_backoff=0.2,
        )

    async def record(first: int, count: int, pause: float = 0.0) -> None:
        for n in range(first, first + count):
            await database.append_audit(entry(n))
            await asyncio.sleep(pause)

    caplog.set_level(logging.WARNING, logger="service.audit.forwarding")
    try:
        await receiver.start()
        async with forwarder().running():
            await record(0, 10)
            await wait_until(lambda: len(receiver.messages) >= 10)

            writing = asyncio.create_task(record(10, 40, pause=0.01))
            await asyncio.sleep(0.1)
            await receiver.stop()  # while records are being written and forwarded
            await asyncio.sleep(0.4)
            await receiver.start()
            await writing
            await wait_until(lambda: len(receiver.messages) >= 50)

        await record(50, 5)  # written while the service is stopped
        async with forwarder().running():
            await wait_until(lambda: len(receiver.messages) >= 55)
            await asyncio.sleep(0.1)  # nothing more comes
    finally:
        with contextlib.suppress(AssertionError):
            await receiver.stop()
        last = await database.read(forwarded_through, destination.key)
        database.close()

    sequence = []
    for message in receiver.messages:
        header = HEADER.match(message)
        assert header, message[:120]
        dt.datetime.fromisoformat(header["time"])
        assert header["host"] == "teleread-test.example"
        sequence.append(int(header["id"]))
        xml = message[header.end() :]
        assert_schema_valid(xml)
        patient = f"P-{int(header['id']) - 1:03d}"  # record n is about patient P-(n-1)
        assert f'ParticipantObjectID="{patient}"' in xml
    assert sequence == list(range(1, 56))
    assert last == 55
    assert set(receiver.clients) == {"teleread"}  # mutual TLS: teleread's certificate
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    recoveries = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert (len(outages), len(recoveries)) == (1, 1)


async def test_a_refused_client_certificate_forwards_nothing(tmp_path, pki, caplog):
    """A repository that refuses teleread (no client certificate) gets nothing counted as
    sent: TLS 1.3 refuses after the client's handshake, so the first write waits for the
    verdict. The outage is logged once, with the likely reason."""
    database = database_at(tmp_path / "teleread.db")
    receiver = SyslogReceiver(pki, free_port())
    destination = Destination.from_url(f"tls://localhost:{receiver.port}")
    anonymous = tls_context(str(pki / "ca.crt"))
    source = AuditSource("teleread@teleread-test.example")
    caplog.set_level(logging.WARNING, logger="service.audit.forwarding")
    forwarder = AtnaForwarder(
        database, destination, anonymous, source, "h", poll_interval=0.02, max_backoff=0.1
    )
    try:
        await receiver.start()
        await database.append_audit(entry(0))
        async with forwarder.running():
            await wait_until(lambda: forwarder.down)
            await asyncio.sleep(0.5)
        assert await database.read(forwarded_through, destination.key) == 0
    finally:
        await receiver.stop()
        database.close()
    assert receiver.messages == []
    (outage,) = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert "client certificate" in outage.getMessage()


# --------------------------------------------------------------------------- the service


@pytest.fixture
def app_orthanc() -> None:
    """No image is stored or shown here: the app runs without Orthanc."""
    return None


@pytest.fixture
async def repository(pki: Path):
    receiver = SyslogReceiver(pki, free_port())
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def settings(tmp_path: Path, pki: Path, repository: SyslogReceiver):
    """The suite's settings with forwarding to the local repository, mutual TLS."""
    return replace(
        suite_settings(tmp_path, None),
        atna_url=f"tls://localhost:{repository.port}",
        atna_ca_file=str(pki / "ca.crt"),
        atna_client_cert=str(pki / "teleread.crt"),
        atna_client_key=str(pki / "teleread.key"),
    )


async def test_the_service_forwards_what_it_records(service: Service, repository):
    """With TELEREAD_ATNA_* set, the running service sends its records as they are written:
    a refused login arrives as a User Authentication message naming the name tried."""
    await service.client.post("/api/login", json={"username": "王医生", "password": "wrong"})
    await wait_until(lambda: any("王医生" in m for m in repository.messages))
    (message,) = [m for m in repository.messages if "王医生" in m]
    header = HEADER.match(message)
    assert header, message[:120]
    xml = message[header.end() :]
    assert_schema_valid(xml)
    assert 'csd-code="110114"' in xml and 'EventOutcomeIndicator="4"' in xml


def test_an_unreadable_certificate_stops_start_up_naming_the_settings(tmp_path):
    """A wrong path is a configuration error at start, not an outage found later."""
    settings = replace(
        suite_settings(tmp_path, None),
        atna_url="tls://arr.example",
        atna_ca_file=str(tmp_path / "missing.pem"),
    )
    with pytest.raises(SettingsError, match="TELEREAD_ATNA_CA_FILE"):
        atna_forwarder(settings, None)  # type: ignore[arg-type]
