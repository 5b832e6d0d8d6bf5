"""HEAD answers headers only, streamed downloads included: a body written after a HEAD answer's
headers is read by the client as the start of the next answer on the same connection (schemathesis
saw "Connection aborted" on the request after ``HEAD /api/audit.csv``), and HEAD of the worklist's
event stream would never end."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def manager(service) -> dict[str, str]:
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("boss", "manager", centre)
    return await service.login("boss")


async def _raw(server_port: int, request: bytes) -> bytes:
    """Everything the server sends for ``request`` until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    return answer


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/audit.csv", "text/csv"),
        ("/api/audit/atna", "text/plain"),
        ("/api/worklist/events", "text/event-stream"),  # a stream that otherwise never ends
    ],
)
async def test_head_of_a_streamed_answer_sends_no_body(service, manager, path, content_type):
    request = (
        f"HEAD {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {manager['Authorization']}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer = await _raw(service.client.server.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert content_type.encode() in head
    assert body == b""
