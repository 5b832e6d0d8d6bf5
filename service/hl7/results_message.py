"""The ORU^R01 (HL7 v2.5.1, chapter 7) that carries one signed report version to a facility's HIS.

Segments: MSH, PID, ORC, OBR, then OBX rows: the report text one line per OBX (value type TX,
grouped by OBX-4 into findings, impression and recommendation, with LOINC codes; a critical
finding flags the impression's lines ``AA`` in OBX-8, HL7 table 0078's "very abnormal"), the
verification code the paper prints (ST, so the HIS can show it beside the result), and the
signed PDF as an encapsulated document (ED ``^AP^PDF^Base64^...``). Result status (OBR-25,
OBX-11) is P for a report released before review, F for the first final version and C for a
correction.

Order numbers follow IHE Radiology (SWF, RAD-4/RAD-128): the HIS's own order number (the
consultation's ``placer_order_number``) in ORC-2/OBR-2, the accession number in OBR-18 and, as
the filler order number, in ORC-3/OBR-3 (``TR<consultation id>`` when there is no accession
number). Times are the facility's local time with its UTC offset (DTM ``YYYYMMDDHHMMSS+ZZZZ``).
MSH-18 names the character set the bytes are in: ``UNICODE UTF-8`` or ``GB 18030``, from the
facility's ``character_set``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ..clock import from_iso
from ..reports.document import ReportDocument
from ..storage.facilities import CHARACTER_SETS
from .acks import hl7_time
from .wire import codec_for

SENDING_APPLICATION = "TELEREAD"
VERSION = "2.5.1"
SECTIONS = (
    ("findings", "18782-3", "Radiology Study observation"),
    ("impression", "19005-8", "Radiology Imaging study [Impression]"),
    ("recommendation", "18783-1", "Radiology Study recommendation"),
)
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def escape(text: str) -> str:
    """Text as one HL7 field value: the five delimiters escaped (HL7 v2.5.1 2.7.4), line
    breaks turned into spaces (a segment ends at a carriage return)."""
    out = "".join(_ESCAPES.get(ch, ch) for ch in text)
    return " ".join(out.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def local_hl7_time(moment: datetime, zone_name: str) -> str:
    """DTM with the offset: 20261203163012+0800 in the facility's zone."""
    return hl7_time(moment.astimezone(ZoneInfo(zone_name or "UTC")))


def control_id(outbox_id: int) -> str:
    """MSH-10: stable across retries of the same row, unique per message (at most 20 chars)."""
    return f"TR{outbox_id:010d}"


@dataclass(frozen=True)
class ResultMessage:
    """What is sent: the message's text, its MSH-10 and the codec of its bytes."""

    text: str
    control_id: str
    encoding: str

    def encoded(self) -> bytes:
        return self.text.encode(self.encoding)


@dataclass(frozen=True)
class ResultFacts:
    """Everything the message says beyond the report document."""

    outbox_id: int
    result_status: str  # P (preliminary, before review) | F | C
    created_at: str
    pdf: bytes
    signer_id: int
    facility_code: str
    character_set: str
    placer_order_number: str
    patient_birth_date: str
    patient_sex: str
    requested_procedure: str
    requested_procedure_code: str


def _person_name(dicom_name: str) -> str:
    """XPN repetitions from a DICOM person name: one per group (alphabetic, ideographic), with
    family^given^middle as DICOM orders them; HL7 puts the suffix before the prefix."""
    repetitions = []
    for group in dicom_name.split("=")[:2]:
        parts = (group.split("^") + [""] * 5)[:5]
        if any(parts):
            family, given, middle, prefix, suffix = (escape(p) for p in parts)
            repetitions.append("^".join([family, given, middle, suffix, prefix]).rstrip("^"))
    return "~".join(repetitions)


def _segment(*fields: str) -> str:
    return "|".join(fields).rstrip("|")


def _obx(
    set_id: int, kind: str, code: str, sub_id: str, value: str, facts, stamp: str, flag: str = ""
) -> str:
    return _segment(
        "OBX", str(set_id), kind, code, sub_id, value, "", "", flag, "", "",
        facts.result_status, "", "", stamp,
    )  # fmt: skip


def oru_r01(document: ReportDocument, facts: ResultFacts) -> ResultMessage:
    """The ORU^R01 of one signed version (see the module docstring for the fields)."""
    charset = CHARACTER_SETS.get(facts.character_set, "UNICODE UTF-8")
    zone = document.timezone
    signed = local_hl7_time(document.signed_at, zone)
    ident = control_id(facts.outbox_id)
    filler = document.accession_number or f"TR{document.consultation_id}"
    procedure = "^".join(
        [escape(facts.requested_procedure_code), escape(facts.requested_procedure
         or document.study_description or f"{document.modality} {document.body_part}".strip()),
         "L" if facts.requested_procedure_code else ""]
    ).rstrip("^")  # fmt: skip
    interpreter = f"{facts.signer_id}&{escape(document.signer_name)}"
    segments = [
        _segment(
            "MSH", "^~\\&", SENDING_APPLICATION, escape(document.centre_name), "",
            escape(facts.facility_code), local_hl7_time(from_iso(facts.created_at), zone), "",
            "ORU^R01^ORU_R01", ident, "P", VERSION, "", "", "", "", "CHN", charset,
        ),
        _segment(
            "PID", "1", "", f"{escape(document.patient_id)}^^^{escape(facts.facility_code)}^MR",
            "", _person_name(document.patient_name), "",
            escape(facts.patient_birth_date or document.patient_birth_date),
            escape(facts.patient_sex or document.patient_sex),
        ),
        _segment(
            "ORC", "RE", escape(facts.placer_order_number), escape(filler), "", "CM", "", "",
            "", signed,
        ),
        _segment(
            "OBR", "1", escape(facts.placer_order_number), escape(filler), procedure, "", "",
            escape(document.study_date), "", "", "", "", "", "", "", "", "", "",
            escape(document.accession_number), "", "", "", signed, "", "RAD",
            facts.result_status, "", "", "", "", "", "", interpreter,
        ),
    ]  # fmt: skip
    set_id = 0
    for sub_id, (field, code, name) in enumerate(SECTIONS, start=1):
        text = getattr(document, field) or ""
        for line in text.splitlines() or ([""] if field == "findings" else []):
            set_id += 1
            segments.append(
                _obx(
                    set_id, "TX", f"{code}^{name}^LN", str(sub_id), escape(line), facts, signed,
                    "AA" if document.critical and field == "impression" else "",
                )
            )  # fmt: skip
    set_id += 1
    segments.append(
        _obx(
            set_id, "ST", "VERIFY^Verification code^L", "", escape(document.verification_code),
            facts, signed,
        )
    )  # fmt: skip
    set_id += 1
    pdf = base64.b64encode(facts.pdf).decode("ascii")
    segments.append(
        _obx(set_id, "ED", "PDF^Signed report^L", "", f"^AP^PDF^Base64^{pdf}", facts, signed)
    )
    codec = codec_for(charset)  # the same table inbound messages are read with
    assert codec is not None, charset
    return ResultMessage("\r".join(segments) + "\r", ident, codec)
