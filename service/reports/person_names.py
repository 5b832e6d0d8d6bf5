"""A signer's display name as a DICOM person name (PS3.5 6.2, Annex I/J for Chinese).

The report's SR names its verifying observer and author in the PN form a PACS indexes and
prints: for a Chinese name written in Han characters, three component groups, alphabetic
(pinyin, as on a passport), ideographic (the characters) and phonetic (pinyin with tone
marks), e.g. "李明" -> "Li^Ming=李^明=lǐ^míng"; the family name is split off first (compound
surnames and the usual surname readings of polyphonic characters are known). A Latin name
keeps its words in order, family name first as teleread users write it ("Li Ming" ->
"Li^Ming"), with a leading title as the prefix component ("Dr Li" -> "Li^^^Dr"). A name that
already is a DICOM PN (it has a caret or an equals sign) is taken as written. A user's stored
DICOM name (``teleread user dicom-name``, checked by :func:`checked_person_name`) wins over all
of this.
"""

from __future__ import annotations

import re

HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+$")
TITLES = frozenset({"dr", "prof", "mr", "mrs", "ms", "miss"})
GROUP_LIMIT = 64  # characters per component group (PS3.5 Table 6.2-1, PN)

# Surnames whose reading as a surname differs from the character's everyday reading, and the
# compound surnames that must not be split after their first character.
SURNAME_READINGS = {
    "单": ("shan", "shàn"),
    "解": ("xie", "xiè"),
    "曾": ("zeng", "zēng"),
    "区": ("ou", "ōu"),
    "仇": ("qiu", "qiú"),
    "朴": ("piao", "piáo"),
    "查": ("zha", "zhā"),
    "盖": ("ge", "gě"),
    "覃": ("qin", "qín"),
    "缪": ("miao", "miào"),
    "翟": ("zhai", "zhái"),
    "乐": ("yue", "yuè"),
    "召": ("shao", "shào"),
    "秘": ("bi", "bì"),
    "尉迟": ("yuchi", "yùchí"),
    "万俟": ("moqi", "mòqí"),
    "长孙": ("zhangsun", "zhǎngsūn"),
}
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐",
        "夏侯", "长孙", "宇文", "司徒", "轩辕", "端木", "万俟", "西门", "独孤", "南宫",
    }
)  # fmt: skip


def _pinyin(han: str, *, tones: bool) -> str:
    # Imported here: pypinyin loads its phrase dictionary on import (0.3 s), which every process
    # that imports the app (each CLI call, web process and worker) would otherwise pay.
    from pypinyin import Style, lazy_pinyin

    style = Style.TONE if tones else Style.NORMAL
    return "".join(lazy_pinyin(han, style=style, errors="ignore"))


def _surname_split(han: str) -> tuple[str, str]:
    if len(han) > 2 and han[:2] in COMPOUND_SURNAMES:
        return han[:2], han[2:]
    return han[:1], han[1:]


def _readings(part: str, *, surname: bool) -> tuple[str, str]:
    """(pinyin without tones, pinyin with tone marks) of one name component."""
    if surname and part in SURNAME_READINGS:
        return SURNAME_READINGS[part]
    return _pinyin(part, tones=False), _pinyin(part, tones=True)


def _chinese_name(han: str) -> str:
    family, given = _surname_split(han)
    family_plain, family_tone = _readings(family, surname=True)
    given_plain, given_tone = _readings(given, surname=False)
    alphabetic = f"{family_plain.capitalize()}^{given_plain.capitalize()}"
    return f"{alphabetic}={family}^{given}={family_tone}^{given_tone}"


def _latin_name(words: list[str]) -> str:
    prefix = ""
    if len(words) > 1 and words[0].rstrip(".").lower() in TITLES:
        prefix, words = words[0], words[1:]
    family, given, middle = words[0], " ".join(words[1:2]), " ".join(words[2:])
    if not (given or prefix):
        return f"{family}^"  # a lone family name keeps its caret (PS3.5 6.2, highdicom)
    return "^".join((family, given, middle, prefix)).rstrip("^")


def explicit_family_name(pn: str) -> str:
    """A one-component group with its caret ("张伟" -> "张伟^"): the same name (PS3.5 6.2), in
    the form validators accept; without it dciodvfy calls the value the retired PN form."""
    return "=".join(g if not g or "^" in g else f"{g}^" for g in pn.split("="))


def _fitted(pn: str) -> str:
    """Each component group cut to the 64 characters a PN group may hold."""
    return "=".join(group[:GROUP_LIMIT] for group in pn.split("="))


def dicom_person_name(name: str) -> str:
    """The DICOM PN value for a display name (see the module docstring for the rules)."""
    name = name.strip()
    if not name or "^" in name or "=" in name:
        return _fitted(name)
    han = re.sub(r"[\s·•]", "", name)
    if HAN.match(han):
        return _fitted(_chinese_name(han))
    return _fitted(_latin_name(name.split()))


def derived_signer_name(display_name: str, username: str) -> str:
    """The PN a signer's SR carries when their account has no DICOM name of its own: derived
    from the name the report prints (the display name, else the username; reports/signing.py)."""
    return dicom_person_name(display_name or username)


def checked_person_name(value: str) -> str:
    """``value`` if it is a well-formed DICOM PN (at most 3 groups of at most 5 components and
    64 characters each, no backslash or control character); ValueError saying why otherwise."""
    value = value.strip()
    groups = value.split("=")
    if len(groups) > 3:
        raise ValueError(
            "a DICOM person name has at most 3 groups (alphabetic=ideographic=phonetic)"
        )
    for group in groups:
        if len(group) > GROUP_LIMIT:
            raise ValueError(
                f"each group of a DICOM person name holds at most {GROUP_LIMIT} characters"
            )
        if group.count("^") > 4:
            raise ValueError("a DICOM person name group has at most 5 components")
    if "\\" in value or any(ord(ch) < 32 for ch in value):
        raise ValueError("a DICOM person name has no backslash or control character")
    return value
