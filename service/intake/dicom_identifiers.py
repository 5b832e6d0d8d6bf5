"""The national identifiers a DICOM object carries for its patient (PS3.3 C.7.1.1).

Read from Orthanc's JSON of one instance's tags (``/instances/{id}/tags?short``: keys
``gggg,eeee``, multiple values joined by backslashes, sequences as lists of items):

- (0010,0020) *Patient ID*, when it is itself a valid resident identity number;
- (0010,1000) *Other Patient IDs* (retired but still sent by modalities), each value that is a
  valid resident identity number (a bare value names no system, so only the checksum tells);
- (0010,1002) *Other Patient IDs Sequence*: each item's (0010,0020) in the system its
  (0010,0021) *Issuer of Patient ID* or its (0010,0024) *Issuer of Patient ID Qualifiers
  Sequence*'s (0040,0032) *Universal Entity ID* names by OID (resident identity number
  2.16.156.10011.1.3, health card 2.16.156.10011.1.19), or whose (0040,0035) *Identifier Type
  Code* is ``NN`` (a national number); otherwise a resident identity number by checksum only.

A local ID of another facility is not a national identifier and is ignored.
"""

from __future__ import annotations

from typing import Any

from ..identity_numbers import OIDS, RESIDENT_ID, Identifier, checked, recognise

PATIENT_ID = "0010,0020"
ISSUER = "0010,0021"
OTHER_PATIENT_IDS = "0010,1000"
OTHER_PATIENT_IDS_SEQUENCE = "0010,1002"
ISSUER_QUALIFIERS = "0010,0024"
UNIVERSAL_ENTITY_ID = "0040,0032"
IDENTIFIER_TYPE_CODE = "0040,0035"

_SYSTEM_OF_OID = {oid: system for system, oid in OIDS.items()}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def system_named(issuer: str) -> str | None:
    """The identifier system an issuer names by OID (``urn:oid:`` prefix or not), else None."""
    return _SYSTEM_OF_OID.get(issuer.strip().removeprefix("urn:oid:"))


def _item_identifier(item: dict[str, Any]) -> Identifier | None:
    value = _text(item.get(PATIENT_ID))
    if not value:
        return None
    system = system_named(_text(item.get(ISSUER)))
    for qualifier in item.get(ISSUER_QUALIFIERS) or []:
        if not isinstance(qualifier, dict):
            continue
        system = system or system_named(_text(qualifier.get(UNIVERSAL_ENTITY_ID)))
        if system is None and _text(qualifier.get(IDENTIFIER_TYPE_CODE)).upper().startswith("NN"):
            system = RESIDENT_ID
    return checked(system, value) if system else recognise(value)


def dicom_identifiers(tags: dict[str, Any]) -> tuple[Identifier, ...]:
    """The checked national identifiers of the instance's patient, each once, in order."""
    found: list[Identifier | None] = [recognise(_text(tags.get(PATIENT_ID)))]
    found += [recognise(v) for v in _text(tags.get(OTHER_PATIENT_IDS)).split("\\") if v.strip()]
    for item in tags.get(OTHER_PATIENT_IDS_SEQUENCE) or []:
        if isinstance(item, dict):
            found.append(_item_identifier(item))
    return tuple(dict.fromkeys(i for i in found if i is not None))
