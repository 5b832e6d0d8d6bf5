"""The demo's county hospital information system: it orders one MR by HL7 ORM^O01 and receives
its signed result (ORU^R01, with the PDF) on an MLLP listener of its own.

``make run`` turns teleread's HL7 listener on (``TELEREAD_HL7_PORT``); ``teleread serve --demo``
then starts this receiver on a free local port, points the county's ``hl7_endpoint`` at it and
its HL7 code at ``COUNTY-HIS``. Each received message is acknowledged (AA) and kept as a file
under ``DATA_DIR/demo-his/`` so a reader of docs/integration.md can open what a HIS gets.
The receiver is python-hl7's MLLP server, as a real HIS's interface engine would be something
teleread did not write.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import hl7
from hl7.mllp import HL7StreamReader, HL7StreamWriter, open_hl7_connection, start_hl7_server

from ..clock import utc_now
from ..hl7.acks import ack, hl7_time
from ..hl7.messages import read_header
from ..storage import Database
from ..storage import facilities as facility_store

log = logging.getLogger(__name__)

HIS_CODE = "COUNTY-HIS"
#: The demo's county study that has no request of its own: the HIS orders it (seed.py sends it).
ORDERED_ACCESSION = "CY248820"
ORDER_NUMBER = "HIS-ORD-8820"
#: A result carries its signed PDF (base64): far above python-hl7's 64 KiB default read limit.
MAX_RESULT_BYTES = 16 << 20


def order_message(now: datetime, control_id: str = "DEMO-ORM-8820") -> str:
    """ORM^O01 for the county's lumbar spine MR, as the county HIS would send it."""
    stamp = hl7_time(now)
    return (
        "\r".join(
            [
                f"MSH|^~\\&|HIS|{HIS_CODE}|TELEREAD|REGIONAL_IC|{stamp}||ORM^O01^ORM_O01|{control_id}"
                "|P|2.5|||||CHN|UNICODE UTF-8",
                "PID|1||CY8820^^^COUNTY^MR||ZHOU^LEI^^^^^L^A~周^磊^^^^^L^I||19751111|M",
                "PV1|1|O",
                f"ORC|NW|{ORDER_NUMBER}|||||||{stamp}|||zhao^Zhao^^^^Dr",  # Dr Zhao ordered it
                f"OBR|1|{ORDER_NUMBER}||MR-LSPINE^MR lumbar spine^L|R||||||||"
                "Low back pain radiating to the left leg for 6 weeks"
                f"|||||{ORDERED_ACCESSION}||||||MR|||||||^Disc herniation? Nerve root compression?",
            ]
        )
        + "\r"
    )


async def send_order(port: int, now: datetime) -> str:
    """Send the order to teleread's HL7 listener; the ACK code it answered (AA when taken)."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        writer.writemessage(hl7.parse(order_message(now)))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readmessage(), 30)
    finally:
        writer.close()
        await writer.wait_closed()
    return str(answer.segment("MSA")(1))


class CountyHis:
    """The HIS's result receiver: acknowledges and files every message."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.received: list[hl7.Message] = []

    async def _serve(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(message)
                header = read_header(message, "UNICODE UTF-8")
                path = self._keep(str(message), header.control_id)
                log.info(
                    "demo county HIS: received %s^%s %s, kept as %s",
                    header.message_type, header.trigger, header.control_id, path,
                )  # fmt: skip
                writer.writemessage(hl7.parse(ack(header.addressing, "AA", utc_now())))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    def _keep(self, text: str, control_id: str) -> Path:
        self.inbox.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", control_id) or "message"
        path = self.inbox / f"{len(self.received):03d}-{name}.hl7"
        path.write_text(text.replace("\r", "\n"), encoding="utf-8")
        return path

    @asynccontextmanager
    async def running(self, port: int) -> AsyncIterator[None]:
        server = await start_hl7_server(
            self._serve, "127.0.0.1", port, encoding="utf-8", limit=MAX_RESULT_BYTES
        )
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()


def free_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def connect_county(database: Database, his_port: int) -> None:
    """Give the demo county its HIS: the code MSH-4 carries and where results go."""
    county = await database.read(facility_store.facility_by_aet, "COUNTY_CT")
    if county is None:
        return
    await database.write(
        facility_store.update_facility,
        county["id"],
        hl7_code=HIS_CODE,
        hl7_endpoint=f"127.0.0.1:{his_port}",
    )
