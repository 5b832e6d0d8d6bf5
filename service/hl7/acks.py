"""Answers: an ACK per message (HL7 v2.5 §2.9 original acknowledgment mode), never silence.

``AA`` the message was applied (or had been: a retried control ID gets its first ACK again);
``AE`` it was understood but cannot be applied as it stands (a required field is missing, the
order to cancel is not open); ``AR`` it was refused outright (unknown sending facility,
unsupported message type or character set, malformed or too large). AE and AR carry an ERR
segment with the HL7 error code (table 0357), where the problem is (segment^sequence^field)
and what is wrong in words, also in MSA-3 for receivers older than v2.5. An AA may carry
warnings the same way with ERR-4 severity ``W`` (HL7 table 0516): an order applied although it
repeats a recent exam.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

#: HL7 table 0357 (message error condition codes) texts of the codes used here.
ERROR_TEXTS = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "207": "Application internal error",
}

RECEIVING_APPLICATION = "TELEREAD"


class Refusal(Exception):
    """A message teleread does not apply, and why (the ACK's MSA-1 and ERR)."""

    def __init__(self, ack_code: str, error_code: str, text: str, location: str = "") -> None:
        super().__init__(text)
        self.ack_code = ack_code
        self.error_code = error_code
        self.text = text
        self.location = location


@dataclass(frozen=True)
class Addressing:
    """What an ACK copies from the message it answers (MSH-3..6, 9.2, 10, 11, 12, 18), each
    as text (unescaped)."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset: str = ""


def escape(text: str) -> str:
    """Text as an HL7 field value with the standard delimiters (``|^~\\&``)."""
    out = text.replace("\\", "\\E\\")
    for char, sequence in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(char, sequence)
    return out.replace("\r", "\\.br\\").replace("\n", "\\.br\\")


def hl7_time(moment: datetime) -> str:
    """An HL7 DTM with its UTC offset: 20261203161500+0800."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def new_control_id() -> str:
    return "TR" + secrets.token_hex(9).upper()


def ack(
    to: Addressing,
    code: str,
    now: datetime,
    refusal: Refusal | None = None,
    warnings: Sequence[tuple[str, str]] = (),
) -> str:
    """The ACK message as text (segments end with CR); ``warnings`` (text, location) each give
    an ERR of severity W after an applied message, their texts joined in MSA-3."""
    msh = [
        "MSH",
        "^~\\&",
        RECEIVING_APPLICATION,
        escape(to.receiving_facility or RECEIVING_APPLICATION),
        escape(to.sending_application),
        escape(to.sending_facility),
        hl7_time(now),
        "",
        f"ACK^{escape(to.trigger)}^ACK" if to.trigger else "ACK",
        new_control_id(),
        escape(to.processing_id or "P"),
        escape(to.version or "2.5"),
    ]
    if to.charset:
        msh += ["", "", "", "", "", escape(to.charset)]
    msa = ["MSA", code, escape(to.control_id)]
    segments = ["|".join(msh)]
    if refusal is None:
        if warnings:
            msa.append(escape(" | ".join(text for text, _ in warnings)))
        segments.append("|".join(msa))
        segments += [_err(Refusal(code, "", text, where), "W") for text, where in warnings]
    else:
        msa.append(escape(refusal.text))
        segments.append("|".join(msa))
        segments.append(_err(refusal))
    return "\r".join(segments) + "\r"


def _err(refusal: Refusal, severity: str = "E") -> str:
    """ERR with both layouts: ERR-1 (v2.3/2.4) and ERR-2..8 (v2.5+); ERR-4 the severity (E
    error, W warning). A warning has no error condition code (ERR-3 is "0", success)."""
    code = refusal.error_code or "0"
    name = ERROR_TEXTS.get(code, "")
    location = refusal.location
    old = f"{location}^{code}&{name}&HL70357" if location else (f"^^^{code}&{name}&HL70357")
    fields = [
        "ERR",
        old,
        location,
        f"{code}^{name}^HL70357",
        severity,
        "",
        "",
        "",
        escape(refusal.text),
    ]
    return "|".join(fields)
