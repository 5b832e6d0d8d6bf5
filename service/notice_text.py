"""What an in-app notice says, in the language of whoever reads it.

A notice is stored once for several readers who may use different languages, so it is stored
as a message code with its parameters (``notifications.message``, ``params``) and rendered
here when it is shown, through the translation catalogue. The patient and study are named at
that moment from the consultation, never stored in the notice: the same notice goes out to
webhook gateways, which are outside the trust boundary (docs/notifications.md). Rows stored
before codes existed (or with a code this version does not know) are shown as stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Gettext = Callable[[str], str]


def person_name(dicom_name: str | None) -> str:
    """DICOM PN for people: "ZHANG^SAN" reads "ZHANG SAN"; groups ("ZHANG^SAN=张^三") stay."""
    groups = (group.replace("^", " ").split() for group in (dicom_name or "").split("="))
    return " = ".join(" ".join(words) for words in groups if words)


def study_label(item: Mapping[str, Any]) -> str:
    """The study as the clinic knows it: its description, else modality and body part."""
    description = (item.get("study_description") or "").strip()
    if description:
        return description
    return " ".join(part for part in (item.get("modality"), item.get("body_part")) if part)


def _critical_finding(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    return (
        _("Critical finding: {patient}, ID {patient_id}").format(**values),
        _(
            "{study}: a critical finding was reported. Open the report and acknowledge it now."
        ).format(**values),
    )


MESSAGES: dict[str, Callable[[Gettext, Mapping[str, str]], tuple[str, str]]] = {
    "critical_finding": _critical_finding,
}


def render_notice(item: dict[str, Any], gettext: Gettext) -> dict[str, Any]:
    """One row of ``notifications_of`` as the reader sees it: title and body in their language,
    the patient, study and a link to the consultation."""
    consultation_id = item.get("consultation_id")
    values = {
        **{str(k): str(v) for k, v in (item.get("params") or {}).items()},
        "patient": person_name(item.get("patient_name")) or "—",
        "patient_id": item.get("patient_id") or "—",
        "study": study_label(item) or "—",
    }
    render = MESSAGES.get(item.get("message") or "")
    title, body = item["title"], item["body"]
    if render is not None and consultation_id is not None:
        title, body = render(gettext, values)
    return {
        "id": item["id"],
        "kind": item["kind"],
        "message": item.get("message") or "",
        "consultation_id": consultation_id,
        "title": title,
        "body": body,
        "created_at": item["created_at"],
        "read_at": item["read_at"],
        "link": f"/consultations/{consultation_id}" if consultation_id is not None else None,
        "patient_name": item.get("patient_name") or "",
        "patient_id": item.get("patient_id") or "",
        "study": study_label(item),
    }
