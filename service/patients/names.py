"""Whether two records' names could be one person's: ideographic and phonetic comparison.

A name alone never links two identities (a resident identity number does); it only proposes a
pair for a person to review. Chinese names reach teleread written three ways: in Han characters
(the ideographic group of a DICOM PN, "陈^国强", an HL7 XPN marked ``I``), in pinyin (the
alphabetic group, "Chen^Guoqiang", a clinic's Latin keyboard) or both ("Chen^Guoqiang=陈^国强",
PS3.5 6.2.1). So a name yields *keys*: its Han characters, and the toneless pinyin of every
group (the Han characters read with pypinyin, the Latin letters folded), in family-given and
given-family order; two names agree when they share a key. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LETTERS = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class NameKeys:
    """What a name is compared by: its Han characters ('' when none) and its phonetic forms."""

    ideographic: str
    phonetic: frozenset[str]


def _pinyin(han: str) -> list[str]:
    # Imported here: pypinyin loads its phrase dictionary on import (0.3 s), paid only by a
    # process that compares a Chinese name (service/reports/person_names.py does the same).
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(han, style=Style.NORMAL, errors="ignore")


def _surname_readings(han: str) -> list[str]:
    """Every reading of a family name's first character: a surname is often read otherwise than
    the everyday word (单 shan, 曾 zeng, 区 ou), and a clinic types it as the patient says it."""
    from pypinyin import Style, pinyin

    return pinyin(han[:1], style=Style.NORMAL, heteronym=True)[0]


def _folded(text: str) -> str:
    """Latin letters without tone marks or case ("Chén" -> "chen")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _orders(components: list[str]) -> set[str]:
    """The components joined in the order written and with the family name moved last."""
    parts = [c for c in components if c]
    if not parts:
        return set()
    return {"".join(parts), "".join(parts[1:] + parts[:1])}


@lru_cache(maxsize=4096)
def name_keys(name: str) -> NameKeys:
    """The keys of a DICOM PN (``=``-separated groups, ``^``-separated components) or of a
    free-text name ("陈国强", "Chen Guoqiang", "Guoqiang CHEN")."""
    ideographic = ""
    phonetic: set[str] = set()
    for group in name.split("="):
        han = "".join(_HAN.findall(group))
        if han:
            ideographic = ideographic or han
            parts = ["".join(_HAN.findall(c)) for c in re.split(r"[\^\s]+", group)]
            parts = [p for p in parts if p]
            family, given = (parts[0], "".join(parts[1:])) if len(parts) > 1 else (han[:1], han[1:])
            surname_rest, given_reading = "".join(_pinyin(family[1:])), "".join(_pinyin(given))
            phonetic.add("".join(_pinyin(han)))
            for reading in _surname_readings(family):
                phonetic |= _orders([reading + surname_rest, given_reading])
        else:
            words = re.split(r"[\^\s]+", group)
            phonetic |= _orders(["".join(_LETTERS.findall(_folded(w))) for w in words])
    return NameKeys(ideographic, frozenset(k for k in phonetic if k))


def ideographic(name: str) -> str:
    """The Han characters of the name's first group that has any, without separators."""
    for group in name.split("="):
        han = "".join(_HAN.findall(group))
        if han:
            return han
    return ""


def name_agreement(a: str, b: str) -> str | None:
    """``ideographic_name`` when both names have the same Han characters, ``phonetic_name`` when
    they sound the same (pinyin of one against the Latin letters or pinyin of the other), else
    None. Two names in different Han characters never agree, whatever they sound like.

    Han against Han (the usual case) is a string comparison; pinyin is computed only when one
    name has no Han characters, so the comparison at ingest stays microseconds per name."""
    ha, hb = ideographic(a), ideographic(b)
    if ha and hb:
        return "ideographic_name" if ha == hb else None
    if name_keys(a).phonetic & name_keys(b).phonetic:
        return "phonetic_name"
    return None
