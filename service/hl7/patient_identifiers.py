"""The national identifiers in PID-3 (patient identifier list, CX, repeated) of an HL7 v2 order.

Each repetition is ID^check digit^scheme^assigning authority (HD: namespace^universal ID^type)
^identifier type code (HL7 table 0203). A repetition is a national identifier when its
assigning authority names one of the systems' OIDs (resident identity number
2.16.156.10011.1.3, health card 2.16.156.10011.1.19), or its type is ``NN`` / ``NNCHN``
(national person identifier; a resident identity number); a repetition of type ``PI`` or of no
type, without an authority, counts only when it is a valid resident identity number. Every
value is checked (:func:`service.identity_numbers.checked`): one that fails is ignored, never
refused, since the order itself is sound. PID-19 is a US social security number: not read.
"""

from __future__ import annotations

from ..identity_numbers import OIDS, RESIDENT_ID, Identifier, checked, recognise
from .messages import Segment

_SYSTEM_OF_OID = {oid: system for system, oid in OIDS.items()}


def _authority_system(pid: Segment, repetition: int) -> str | None:
    for sub in (2, 1):
        named = pid.value(3, 4, repetition, sub).removeprefix("urn:oid:")
        if named in _SYSTEM_OF_OID:
            return _SYSTEM_OF_OID[named]
    return None


def _identifier(pid: Segment, repetition: int) -> Identifier | None:
    value = pid.value(3, 1, repetition)
    if not value:
        return None
    system = _authority_system(pid, repetition)
    kind = pid.value(3, 5, repetition).upper()
    if system is None and kind.startswith("NN"):
        system = RESIDENT_ID
    if system is not None:
        return checked(system, value)
    authority = pid.value(3, 4, repetition, 1) or pid.value(3, 4, repetition, 2)
    if kind in ("PI", "") and not authority:
        return recognise(value)
    return None


def pid_identifiers(pid: Segment | None) -> tuple[Identifier, ...]:
    """The checked national identifiers among PID-3's repetitions, each once, in order."""
    if pid is None:
        return ()
    found = (_identifier(pid, r) for r in range(1, max(pid.repetitions(3), 1) + 1))
    return tuple(dict.fromkeys(i for i in found if i is not None))
