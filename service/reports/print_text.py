"""How the printed report words dates, times, sex and the examination (issue 19 item 3).

One form throughout, in both languages: dates as ``2026-12-03`` (as Chinese hospital reports
print them, and unambiguous in English), times in the facility's zone with the zone named
where a reader could take it for another: a Chinese reader reads an unnamed time as Beijing
time, so a China-zone time says 北京时间 and any other zone gives its name and UTC offset.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: IANA names of China Standard Time (UTC+8 all year), which Chinese print as 北京时间.
BEIJING_TIME_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"})


def print_date(dicom_date: str) -> str:
    """DICOM DA "20261203" -> "2026-12-03"; anything else as given."""
    d = dicom_date.strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def print_time(moment: datetime, zone: str, language: str) -> str:
    """``moment`` in the facility's ``zone``, zone named: "2026-11-24 06:54:51（北京时间）",
    "2026-11-24 06:54:51 (Asia/Shanghai, UTC+08:00)", "2026-11-24 04:54:51（Asia/Urumqi，
    UTC+06:00）"."""
    name = zone if zone and _zone(zone).key == zone else "UTC"
    local = moment.astimezone(_zone(name))
    stamp = f"{local:%Y-%m-%d %H:%M:%S}"
    if language == "en":
        return f"{stamp} ({name})" if name == "UTC" else f"{stamp} ({name}, {_offset(local)})"
    if name in BEIJING_TIME_ZONES:
        return f"{stamp}（北京时间）"
    return f"{stamp}（{name}）" if name == "UTC" else f"{stamp}（{name}，{_offset(local)}）"


def print_sex(dicom_sex: str, names: dict[str, str]) -> str:
    """DICOM M/F/O in words; empty or anything else is "unknown" (``names["U"]``)."""
    return names.get(dicom_sex.strip().upper(), names["U"])


def _names(text: str, term: str) -> bool:
    """``term`` occurs in ``text`` as a word: "CT" in "胸部CT平扫", not "CR" in "CRANIAL"."""
    if not term:
        return False
    pattern = rf"(?<![A-Z0-9]){re.escape(term.upper())}(?![A-Z0-9])"
    return re.search(pattern, text.upper()) is not None


def examination(modality: str, code: str, body_part: str, description: str) -> str:
    """The examination named once. A description that only repeats modality and body part code
    is dropped ("CT HEAD", not "CT HEAD CT HEAD"); one that already names the modality or the
    body part is the name on its own ("胸部CT平扫", not "CT 胸部 胸部CT平扫"); any other
    description follows modality and body part ("CT 胸部 平扫")."""
    head = [x for x in (modality, body_part) if x]
    described = description.strip()
    if not described:
        return " ".join(head)
    codes = {w.upper() for w in (modality, code) if w}
    if set(described.upper().split()) <= codes:
        return " ".join(head)
    if any(_names(described, term) for term in (modality, code, body_part)):
        return described
    return " ".join([*head, described])
