"""Repeat-exam windows: how long after an exam item the same item again is a repeat to warn of.

A patient scanned at the township clinic last week is often scanned again at the county
hospital, because each facility trusts only its own images. The consortium sets, per exam item
(modality + body part, as DICOM (0008,0060) *Modality* and (0018,0015) *Body Part Examined*
name them, upper case), a window within which a second exam of the same item is worth a word
before it is done. The ``[repeat_exams]`` table of the worklist rules file (docs/worklists.md):

    [repeat_exams]
    default_days = 0   # every item not named below (0 or omitted: no alert)
    CT.HEAD = 7        # a dotted key: modality, then body part
    CR.CHEST = 30
    DX.CHEST = 30

A window of 0 days names an item that is never alerted (e.g. under a default). Pure: no I/O, no
clock (the time is a parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CODE = re.compile(r"^[A-Z0-9_ ]{1,16}$")
"""A DICOM code string (CS): upper-case letters, digits, space and underscore, 16 at most."""


class RepeatWindowError(ValueError):
    """A ``[repeat_exams]`` value cannot be used; the message names the key."""


@dataclass(frozen=True)
class RepeatWindows:
    """The window per exam item, and the one for items not named (None: no alert)."""

    items: Mapping[tuple[str, str], int] = field(default_factory=dict)
    default_days: int = 0

    def days(self, modality: str | None, body_part: str | None) -> int:
        """The item's window in days; 0 when no alert applies (or the item is incomplete)."""
        modality, body_part = (modality or "").strip().upper(), (body_part or "").strip().upper()
        if not modality or not body_part:
            return 0
        return self.items.get((modality, body_part), self.default_days)

    def since(self, modality: str | None, body_part: str | None, now: datetime) -> datetime | None:
        """The earliest time a same-item exam counts as a repeat of one done ``now``; None when
        the item is not checked."""
        days = self.days(modality, body_part)
        return now - timedelta(days=days) if days else None


def parse_repeat_exams(table: Any, where: str = "[repeat_exams]") -> RepeatWindows:
    """The ``[repeat_exams]`` table (a missing table: no alerts); a :class:`RepeatWindowError`
    naming the key when a value cannot be used."""
    if table is None:
        return RepeatWindows()
    if not isinstance(table, dict):
        raise RepeatWindowError(f"{where}: repeat_exams must be a table")
    default = _days(table.get("default_days", 0), f"{where} default_days")
    items: dict[tuple[str, str], int] = {}
    for modality, parts in table.items():
        if modality == "default_days":
            continue
        if not isinstance(parts, dict):
            raise RepeatWindowError(
                f"{where} {modality}: give a body part after the modality, e.g. CT.HEAD = 7"
            )
        code = _code(modality, f"{where} {modality}", "modality")
        for part, days in parts.items():
            key = f"{where} {modality}.{part}"
            item = (code, _code(part, key, "body part"))
            if item in items:
                raise RepeatWindowError(f"{key}: the item is given twice")
            items[item] = _days(days, key)
    return RepeatWindows(items, default)


def _code(text: str, where: str, what: str) -> str:
    value = text.strip().upper()
    if not CODE.match(value):
        raise RepeatWindowError(
            f"{where}: {what} {text!r} is not a DICOM code (letters, digits, _; 16 at most)"
        )
    return value


def _days(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3660:
        raise RepeatWindowError(f"{where}: days must be a whole number 0..3660, got {value!r}")
    return value
