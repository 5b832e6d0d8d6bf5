"""National person identifiers: which ones teleread links patients by, and how to check them.

Local Patient IDs are issued per facility and township clinics reuse short numbers, so one
person has as many IDs as facilities that saw them. What follows a person from one facility to
the next is a national identifier: the resident identity card number (居民身份证号码,
GB 11643-1999: 17 digits and an ISO 7064 MOD 11-2 check character, with the birth date at
positions 7-14 and the sex in the parity of position 17) or the resident health card number
(居民健康卡号). Only a checked identifier links two local identities; a name never does.

Pure functions, no I/O: used by intake (DICOM, upload, request form), HL7, FHIR and storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

RESIDENT_ID = "resident_id"
"""居民身份证号码, GB 11643-1999."""

HEALTH_CARD = "health_card"
"""居民健康卡号: issued nationally; no public check-character rule, so its shape is checked."""

SYSTEMS = (RESIDENT_ID, HEALTH_CARD)

OIDS = {RESIDENT_ID: "2.16.156.10011.1.3", HEALTH_CARD: "2.16.156.10011.1.19"}
"""The identifier systems' OIDs in China's health information standards (WS/T 500 documents
name the 身份证号 root 2.16.156.10011.1.3 and the 健康卡号 root 2.16.156.10011.1.19); FHIR
carries them as ``urn:oid:`` systems."""

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_RESIDENT_SHAPE = re.compile(r"^[1-9]\d{16}[\dX]$")
_HEALTH_CARD_SHAPE = re.compile(r"^[0-9A-Z]{10,32}$")


@dataclass(frozen=True)
class Identifier:
    """A checked national identifier of a person."""

    system: str
    value: str

    @property
    def masked(self) -> str:
        return mask(self.value)


def resident_id_problem(text: str) -> str | None:
    """Why ``text`` is not a valid resident identity number, or None when it is.

    The check character catches any single wrong digit and any swap of two neighbours; the
    birth date must be a real day, not in the future."""
    value = normalise_resident_id(text)
    if len(value) != 18:
        return "a resident identity number has 18 characters"
    if not _RESIDENT_SHAPE.match(value):
        return "a resident identity number is 17 digits and a digit or X"
    expected = _CHECK[sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True)) % 11]
    if value[17] != expected:
        return "the check character of the resident identity number does not match"
    born = resident_id_birth_date(value)
    if born is None or born > date.today() or born.year < 1880:
        return "the birth date inside the resident identity number is not a real date"
    return None


def normalise_resident_id(text: str) -> str:
    """Spaces and hyphens dropped, a lower-case x made upper case, full-width digits folded."""
    folded = "".join(chr(ord(c) - 0xFEE0) if "０" <= c <= "９" or c in "ｘＸ" else c for c in text)
    return re.sub(r"[\s-]", "", folded).upper()


def resident_id_birth_date(value: str) -> date | None:
    """The birth date a resident identity number carries (positions 7-14)."""
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def resident_id_sex(value: str) -> str:
    """``M`` or ``F`` from the parity of position 17 (odd: male)."""
    return "M" if int(value[16]) % 2 else "F"


def checked(system: str, text: str) -> Identifier | None:
    """The identifier in canonical form if it passes its system's check, else None."""
    if system == RESIDENT_ID:
        value = normalise_resident_id(text)
        return None if resident_id_problem(value) else Identifier(RESIDENT_ID, value)
    if system == HEALTH_CARD:
        value = re.sub(r"[\s-]", "", text).upper()
        return Identifier(HEALTH_CARD, value) if _HEALTH_CARD_SHAPE.match(value) else None
    return None


def recognise(text: str) -> Identifier | None:
    """A bare value from a field that does not name its system (a Patient ID, an Other Patient
    ID without an issuer): a resident identity number only if its check character holds."""
    return checked(RESIDENT_ID, text)


def contradiction(identifier: Identifier, birth_date: str, sex: str) -> str | None:
    """Why a resident identity number cannot be this patient's (its birth date or sex disagree
    with the record's, DICOM ``YYYYMMDD`` and ``M``/``F``), or None. Such a number is kept for a
    human to look at and never links by itself."""
    if identifier.system != RESIDENT_ID:
        return None
    if birth_date and birth_date.replace("-", "") != identifier.value[6:14]:
        return "the birth date disagrees with the one inside the resident identity number"
    if sex in ("M", "F") and sex != resident_id_sex(identifier.value):
        return "the sex disagrees with the one inside the resident identity number"
    return None


def mask(value: str) -> str:
    """``1101**********1234``-style: the first four and last four characters kept, for people
    who recognise a number without needing it (the region code and the last digits)."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
