"""Logical ids and identifier systems: how teleread's records are named in FHIR.

A patient is known by the facility that registered them and that facility's patient ID (two
clinics may both have a patient "1001"), so its logical id carries both: ``f<facility id>-`` and
the patient ID in base64url with ``_`` written ``.`` (FHIR ids allow ``[A-Za-z0-9\\-.]`` only,
at most 64 characters: patient IDs up to 45 bytes of UTF-8 fit). Orders, studies and reports use
the consultation's id. Identifier systems are URNs naming the facility's AE title, so an HIS
matches them with the ids it sent (PID-3, the placer order number).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote, unquote

PATIENT_ID_SYSTEM = "urn:teleread:patient-id:"
"""+ the facility's AE title: the system of a patient ID issued by that facility."""
PLACER_SYSTEM = "urn:teleread:placer-order:"
"""+ the facility's AE title: the placer (HIS) order numbers of that facility."""
ACCESSION_SYSTEM = "urn:teleread:accession:"
FACILITY_SYSTEM = "urn:teleread:facility-aet"
VERIFICATION_SYSTEM = "urn:teleread:verification-code"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

_PATIENT_ID = re.compile(r"^f(\d{1,18})-([A-Za-z0-9\-.]+)$")


def system_for(prefix: str, facility_aet: str) -> str:
    return prefix + quote(facility_aet, safe="")


def aet_of_system(prefix: str, system: str) -> str | None:
    """The AE title a system names, or None when it is not of this kind."""
    return unquote(system[len(prefix) :]) if system.startswith(prefix) else None


def patient_logical_id(facility_id: int, patient_id: str) -> str:
    encoded = base64.urlsafe_b64encode(patient_id.encode()).decode().rstrip("=")
    return f"f{facility_id}-{encoded.replace('_', '.')}"


def parse_patient_logical_id(logical_id: str) -> tuple[int, str] | None:
    """(facility id, patient ID) of a logical id, or None for one teleread never made."""
    found = _PATIENT_ID.match(logical_id)
    if found is None:
        return None
    encoded = found[2].replace(".", "_")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        patient_id = raw.decode()
    except (binascii.Error, ValueError):
        return None
    if patient_logical_id(int(found[1]), patient_id) != logical_id:
        return None  # not the one spelling teleread makes
    return int(found[1]), patient_id


def consultation_id_of(logical_id: str) -> int | None:
    """The consultation an order/report/study id names (a positive integer), or None."""
    if not logical_id.isascii() or not logical_id.isdigit() or len(logical_id) > 18:
        return None
    value = int(logical_id)
    return value if value > 0 else None
