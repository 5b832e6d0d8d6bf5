"""Words for the recognition list's codes (changes, reasons) and exam items, in the reader's
language: people read "Suspended: poor image quality 14.2 % (limit 10 %)", not
``poor_share_above``. Body parts are named as the printed report names them
(service/reports/pdf.py), so the list, the page and the PDF agree."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..reports.pdf import BODY_PARTS_ZH

Gettext = Callable[[str], str]


def change_labels(_: Gettext) -> dict[str, str]:
    return {"added": _("Added"), "suspended": _("Suspended"), "restored": _("Restored")}


def status_labels(_: Gettext) -> dict[str, str]:
    return {"listed": _("Recognised"), "suspended": _("Suspended")}


def reason_text(reason: Mapping[str, Any], _: Gettext) -> str:
    """One reason ({code, figure, limit}) as a sentence."""
    values = {"n": reason.get("figure"), "limit": reason.get("limit")}
    texts = {
        "meets_rules": _("Meets every rule"),
        "too_few_studies": _("Too few studies: {n} (at least {limit})"),
        "no_ratings": _("No image quality rating"),
        "poor_share_above": _("Poor image quality {n} percent (limit {limit} percent)"),
        "retake_share_above": _("Retakes {n} percent (limit {limit} percent)"),
        "flagged_share_above": _(
            "Technical parameters flagged {n} percent (limit {limit} percent)"
        ),
        "open_significant_discrepancy": _("Open clinically significant discrepancy"),
    }
    return texts.get(str(reason.get("code")), _("Other reason")).format(**values)


def exam_item_label(modality: str, body_part: str, locale: str) -> str:
    """ "CT head" / "CT 头颅": the modality code and the body part in the reader's language."""
    if locale.startswith("zh"):
        part = BODY_PARTS_ZH.get(body_part, body_part)
    else:
        part = body_part.lower() if body_part else ""
    return f"{modality} {part}".strip()
