"""The MLLP listener on ``TELEREAD_HL7_PORT``: transport only.

MLLP frames each message as ``<VT> message <FS><CR>``; the sender waits for the ACK before the
next message. This reads one frame at a time with python-hl7's asyncio MLLP server
(``hl7.mllp.start_hl7_server``), hands its bytes (not text: the character set is MSH-18's,
service/hl7/wire.py) to the :class:`~service.hl7.dispatch.Dispatcher` and writes back the ACK it
returns. A frame over 1 MiB is not read into memory past its first MiB: it is skipped up to its
end and refused (AR).

There is no TLS in MLLP as python-hl7 speaks it: the port belongs on the hospital network, or
behind stunnel or a VPN (docs/integration.md). It listens on ``TELEREAD_HOST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

from .dispatch import MAX_MESSAGE_BYTES, Dispatcher

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
FRAMING = len(START_BLOCK) + len(END_BLOCK)


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bool] | None:
    """The next frame's message bytes and whether it was too large (then only its first
    bytes); None when the sender closed the connection."""
    try:
        frame = await reader.readuntil(END_BLOCK)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        head = await reader.readexactly(exc.consumed)
        await _skip_frame(reader)
        return _message(head), True
    return _message(frame[: -len(END_BLOCK)]), False


def _message(frame: bytes) -> bytes:
    """A frame without its start byte (and whatever stray bytes preceded it)."""
    start = frame.find(START_BLOCK)
    return frame[start + 1 :] if start >= 0 else frame


async def _skip_frame(reader: asyncio.StreamReader) -> None:
    """Drop the rest of an oversized frame, up to and including its end."""
    while True:
        try:
            await reader.readuntil(END_BLOCK)
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(max(exc.consumed, 1))


#: A connection that brings no complete message for this long is closed: interface engines
#: reconnect when they next have something to send, and a sender that opens connections (or
#: starts a frame) and never finishes cannot hold them open for ever.
IDLE_SECONDS = 600


class MllpListener:
    """Accepts connections and answers each message in order, one connection per sender."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._connections: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        try:
            while (frame := await asyncio.wait_for(read_frame(reader), IDLE_SECONDS)) is not None:
                message, oversized = frame
                if oversized:
                    ack = await self.dispatcher.answer_oversized(message, address)
                else:
                    ack = await self.dispatcher.answer(message, address)
                writer.writeblock(ack)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except TimeoutError:
            log.info("MLLP connection from %s closed after %d s without a message", address,
                     IDLE_SECONDS)  # fmt: skip
        except Exception:
            log.exception("MLLP connection from %s failed", address)
        finally:
            self._connections.discard(task)
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self, host: str, port: int) -> AsyncIterator[None]:
        """Listen for as long as the context lasts; open connections end with it."""
        server = await start_hl7_server(self._serve, host, port, limit=MAX_MESSAGE_BYTES + FRAMING)
        log.info("HL7 MLLP listener on %s:%s", host, port)
        try:
            yield
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()
