"""DICOM JSON attributes for QIDO-RS (PS3.18 F.2): naming, building and matching them.

A query names an attribute by keyword (``PatientID``) or by tag (``00100020``); both become the
tag's eight upper-case hex digits, the key of the DICOM JSON model. Matching follows PS3.4
C.2.2.2: single value (``*`` and ``?`` wildcards), a list of UIDs, a date or time range, the
universal (empty) value. PN matches regardless of case (C.2.2.2.1 allows it: a user typing
``wang*`` means Wang^Fang), each component group alone; with ``fuzzymatching`` anywhere in it.
Sequence matching is not offered.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
RANGED_VRS = ("DA", "TM", "DT")
NUMBER_VRS = ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV")


class BadAttribute(ValueError):
    """A query key that names no DICOM attribute, or a value it cannot take."""


def tag_of(name: str) -> str:
    """``PatientID`` or ``00100020`` -> ``00100020``; BadAttribute for anything else."""
    if _TAG.match(name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise BadAttribute(f"{name!r} is neither a DICOM keyword nor a tag (ggggeeee)")
    return f"{tag:08X}"


def vr_of(tag: str) -> str:
    """The dictionary VR of a tag (the first of several; UN for private or unknown tags)."""
    try:
        return dictionary_VR(int(tag, 16)).split(" ")[0]
    except KeyError:
        return "UN"


def keyword_of(tag: str) -> str:
    return keyword_for_tag(int(tag, 16)) or tag


def element(tag: str, *values: Any, vr: str | None = None) -> dict[str, Any]:
    """A DICOM JSON element; empty values make an element with no ``Value`` (present, empty)."""
    vr = vr or vr_of(tag)
    kept = [v for v in values if v not in (None, "")]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [v if isinstance(v, dict) else person_name(str(v)) for v in kept]
    elif vr == "IS":
        kept = [_number(v, int) for v in kept]
    elif vr == "DS":
        kept = [_number(v, float) for v in kept]
    elif vr in NUMBER_VRS:
        kept = [_number(v, float if vr.startswith("F") else int) for v in kept]
    return {"vr": vr, "Value": kept}


def person_name(text: str) -> dict[str, str]:
    """``Wang^Fang=王^芳`` as DICOM JSON's component groups (PS3.18 F.2.2)."""
    groups = zip(("Alphabetic", "Ideographic", "Phonetic"), text.split("="), strict=False)
    return {name: value for name, value in groups if value}


def _number(value: Any, kind: type) -> Any:
    try:
        number = kind(str(value).strip())
    except ValueError:
        return str(value)
    return int(number) if kind is float and float(number).is_integer() else number


def from_text(tag: str, text: str) -> dict[str, Any]:
    """An element from a multi-valued string as Orthanc's MainDicomTags give it (``\\``)."""
    return element(tag, *(text.split("\\") if text else []))


def first_text(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or []
    return _text(values[0]) if values else ""


def _text(value: Any) -> str:
    if isinstance(value, dict):  # PN component groups
        return "=".join(value.get(k, "") for k in ("Alphabetic", "Ideographic", "Phonetic"))
    return str(value)


def _wildcard(pattern: str, value: str, fuzzy: bool, caseless: bool = False) -> bool:
    pattern = pattern.replace("[", "[[]")
    if fuzzy:
        return fnmatch.fnmatchcase(value.lower(), f"*{pattern.lower()}*")
    if caseless:
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


def date_range(text: str) -> tuple[str | None, str | None] | None:
    """``a-b``, ``a-``, ``-b`` -> bounds; a single value -> None (not a range)."""
    if "-" not in text:
        return None
    start, _, end = text.partition("-")
    return start or None, end or None


def matches(item: dict[str, Any], tag: str, wanted: str, fuzzy: bool = False) -> bool:
    """Whether a DICOM JSON data set matches one key (PS3.4 C.2.2.2)."""
    if wanted in ("", "*"):
        return True  # universal matching
    vr = item.get(tag, {}).get("vr") or vr_of(tag)
    values = [_text(v) for v in item.get(tag, {}).get("Value") or []]
    if vr == "UI":
        wanted_uids = {u for u in re.split(r"[,\\]", wanted) if u}
        return any(v in wanted_uids for v in values)
    if vr in RANGED_VRS and (bounds := date_range(wanted)) is not None:
        start, end = bounds
        return any(
            v and (start is None or v >= start) and (end is None or v[: len(end)] <= end)
            for v in values
        )
    alternatives = [wanted] if vr == "PN" else re.split(r"[,\\]" if vr == "CS" else r"\\", wanted)
    pn = vr == "PN"
    candidates = [part for v in values for part in (v.split("=") if pn else [v])]
    return any(
        _wildcard(pattern, value, fuzzy and pn, caseless=pn)
        for pattern in alternatives
        for value in candidates
    )
