"""Reading a parsed message (python-hl7's ``hl7.Message``): field values as plain text, the
header, patient names, dates and times.

python-hl7 nests a field as repetitions, components and sub-components only as deep as the
text goes; :func:`value` walks that tree with 1-based positions and answers '' for anything
absent, unescaped (``\\F\\`` is ``|`` again), so the message kinds read fields without caring
how deep each one happens to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import hl7

from .acks import Addressing, Refusal


def _part(node: Any, index: int) -> Any:
    if isinstance(node, str):
        return node if index == 1 else ""
    if len(node) == 1 and isinstance(node[0], str):
        return node[0] if index == 1 else ""
    return node[index - 1] if index <= len(node) else ""


@dataclass(frozen=True)
class Segment:
    """One segment and the message it belongs to (for the message's escape character)."""

    message: hl7.Message
    segment: hl7.Segment

    @property
    def name(self) -> str:
        return str(self.segment[0])

    def value(self, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
        """The text at FIELD.REPETITION.COMPONENT.SUB ('' when absent), unescaped."""
        if field >= len(self.segment):
            return ""
        node: Any = self.segment[field]
        for index in (repetition, component, sub):
            node = _part(node, index)
        text = node if isinstance(node, str) else str(node)
        return self.message.unescape(text).strip() if "\\" in text else text.strip()

    def raw(self, field: int) -> str:
        """The field as sent (escaped, with its delimiters); '' when absent."""
        return str(self.segment[field]).strip() if field < len(self.segment) else ""

    def repetitions(self, field: int) -> int:
        """How many repetitions the field has (0 when empty)."""
        if field >= len(self.segment) or not str(self.segment[field]):
            return 0
        node = self.segment[field]
        return len(node) if all(isinstance(r, hl7.Repetition) for r in node) else 1


def segments(message: hl7.Message) -> list[Segment]:
    return [Segment(message, segment) for segment in message]


def first(message: hl7.Message, name: str) -> Segment | None:
    return next((s for s in segments(message) if s.name == name), None)


@dataclass(frozen=True)
class Header:
    """MSH: who sent the message, what it is, its control ID."""

    addressing: Addressing
    message_type: str  # MSH-9.1, e.g. ORM
    trigger: str  # MSH-9.2, e.g. O01

    @property
    def kind(self) -> str:
        return f"{self.message_type}^{self.trigger}"

    @property
    def control_id(self) -> str:
        return self.addressing.control_id

    @property
    def facility_code(self) -> str:
        return self.addressing.sending_facility


def read_header(message: hl7.Message, charset: str) -> Header:
    """The MSH of a parsed message; MSH-9 and MSH-10 must be there (AR otherwise)."""
    msh = Segment(message, message.segment("MSH"))
    addressing = Addressing(
        sending_application=msh.value(3),
        sending_facility=msh.value(4),
        receiving_application=msh.value(5),
        receiving_facility=msh.value(6),
        trigger=msh.value(9, 2),
        control_id=msh.value(10),
        processing_id=msh.value(11) or "P",
        version=msh.value(12) or "2.5",
        charset=charset,
    )
    header = Header(addressing, msh.value(9, 1).upper(), msh.value(9, 2).upper())
    if not header.message_type:
        raise Refusal("AR", "101", "MSH-9 (message type) is missing", "MSH^1^9")
    if not header.control_id:
        raise Refusal("AR", "101", "MSH-10 (message control ID) is missing", "MSH^1^10")
    if len(header.control_id) > 199:
        raise Refusal("AR", "102", "MSH-10 is longer than 199 characters", "MSH^1^10")
    return header


def person_name(pid: Segment, field: int = 5) -> str:
    """PID-5 (XPN, possibly repeated per representation) as a DICOM person name: family^given
    ^middle^prefix^suffix, with the repetitions marked alphabetic (XPN-8 ``A``), ideographic
    (``I``) and phonetic (``P``) as the name's three groups ("Wang^Fang=王^芳=wáng^fāng"); a name
    without representation codes is its first repetition."""
    groups: dict[str, str] = {}
    for repetition in range(1, max(pid.repetitions(field), 1) + 1):
        parts = [pid.value(field, c, repetition) for c in (1, 2, 3, 5, 4)]
        name = "^".join(parts).rstrip("^")
        if name:
            code = pid.value(field, 8, repetition).upper()
            groups.setdefault(code if code in ("A", "I", "P") else "A", name)
    if len(groups) <= 1:
        return next(iter(groups.values()), "")
    return "=".join([groups.get("A", ""), groups.get("I", ""), groups.get("P", "")]).rstrip("=")


def birth_date(text: str, location: str) -> str:
    """PID-7 (DTM, a date is enough) as DICOM DA, YYYYMMDD: the date as the sender wrote it,
    whatever offset follows (a birthday is not moved across time zones)."""
    if not text:
        return ""
    digits = text[:8]
    try:
        datetime.strptime(digits, "%Y%m%d")
    except ValueError as exc:
        raise Refusal("AE", "102", f"{text!r} is not a date (YYYYMMDD)", location) from exc
    return digits


SEXES = {"M": "M", "F": "F", "O": "O", "U": "", "A": "O", "N": "", "": ""}


def sex(text: str, location: str) -> str:
    """PID-8 (HL7 table 0001) as DICOM (0010,0040): M, F, O; unknown is left empty."""
    code = text.upper()
    if code not in SEXES:
        raise Refusal("AE", "103", f"{text!r} is not a sex code of HL7 table 0001", location)
    return SEXES[code]


def moment(text: str, local: tzinfo, location: str) -> datetime | None:
    """An HL7 DTM as an aware time: its own offset when it has one (20261203091500+0800),
    else the sending facility's time zone. None when empty."""
    if not text:
        return None
    try:
        parsed = hl7.parse_datetime(text)
    except ValueError as exc:
        raise Refusal("AE", "102", f"{text!r} is not an HL7 date/time", location) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=local)
    return parsed.astimezone(UTC)
