"""The Orthanc client reuses a kept-alive connection only while Orthanc still holds it open.

Orthanc 1.10 closes an idle keep-alive connection after about 0.8 s; aiohttp kept one for 15 s
by default, so a request sent just as Orthanc closed its connection failed with "Server
disconnected" and became a 503 (a browser upload under load failed this way). The client's
``KEEPALIVE_SECONDS`` must stay under Orthanc's limit: this measures the limit on the real
Orthanc, so an Orthanc that closes sooner (a new version, another setting) fails here instead
of as a rare 503.
"""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

from service.runtime.orthanc.auth import basic_auth_header
from service.runtime.orthanc.client import KEEPALIVE_SECONDS

#: Scheduling slack on a loaded 2-core machine between Orthanc's idle clock and the reuse.
MARGIN_SECONDS = 0.2


def _still_open_after(url: str, headers: dict[str, str], idle: float) -> bool:
    """Send one request on a fresh connection, read the answer, stay idle, see if Orthanc closed."""
    parts = urlsplit(url)
    lines = ["GET /system HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            answer += conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        time.sleep(idle)
        conn.setblocking(False)
        try:
            return conn.recv(1) != b""  # b"": Orthanc closed it
        except BlockingIOError:
            return True


async def test_orthanc_keeps_an_idle_connection_longer_than_the_client_reuses_it(orthanc):
    credentials = orthanc.config.credentials
    headers = basic_auth_header(credentials.username, credentials.password)
    idle = KEEPALIVE_SECONDS + MARGIN_SECONDS
    assert await asyncio.to_thread(_still_open_after, orthanc.url, headers, idle)
    # And the limit is real: the measurement sees a connection Orthanc did close.
    assert not await asyncio.to_thread(_still_open_after, orthanc.url, headers, 3.0)
