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
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def _priority(_: Gettext, code: str) -> str:
    return {"stat": _("Stat"), "urgent": _("Urgent"), "routine": _("Routine")}.get(code, code)


def _stat(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    return (
        _("Stat {study} from {facility}").format(**values),
        _("Queue {queue}, due {due}").format(**values),
    )


def _escalation(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    if values.get("reason") == "overdue":
        title = _("Escalated, overdue: {priority} {study} from {facility}")
    else:
        title = _("Escalated, not claimed in time: {priority} {study} from {facility}")
    values = {**values, "priority": _priority(_, values.get("priority", ""))}
    return title.format(**values), _("Queue {queue}, due {due}").format(**values)


def _critical_unacknowledged(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    return (
        _("Critical finding not acknowledged: {study} from {facility}").format(**values),
        _("{facility} has not acknowledged it for {minutes} minutes").format(**values),
    )


def _delivery_failed(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    return (
        _("Report delivery failed: {study}").format(**values),
        _("{channel}: {reason}").format(**values),
    )


def _report_final(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    values = {"version": "", "preliminary_version": "", **values}
    return (
        _("Final report: {patient}, ID {patient_id}").format(**values),
        _(
            "{study}: the reviewed final report (version {version}) replaces the preliminary"
            " report (version {preliminary_version})."
        ).format(**values),
    )


def _peer_discrepancy(_: Gettext, values: Mapping[str, str]) -> tuple[str, str]:
    values = {"score": "", **values}
    return (
        _("Peer review discrepancy ({score}): {study}").format(**values),
        _(
            "A peer reviewer scored your report {score}. Read the comment and answer it;"
            " a manager closes the discrepancy."
        ).format(**values),
    )


MESSAGES: dict[str, Callable[[Gettext, Mapping[str, str]], tuple[str, str]]] = {
    "critical_finding": _critical_finding,
    "stat": _stat,
    "escalation": _escalation,
    "critical_unacknowledged": _critical_unacknowledged,
    "delivery_failed": _delivery_failed,
    "report_final": _report_final,
    "peer_discrepancy": _peer_discrepancy,
}


def local_time(iso: str | None, zone: str) -> str:
    """A stored UTC time as the reader's facility reads it ("2026-03-01 16:30"); "—" if none."""
    if not iso:
        return "—"
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    except (ValueError, ZoneInfoNotFoundError):
        return iso


def render_notice(item: dict[str, Any], gettext: Gettext, zone: str = "UTC") -> dict[str, Any]:
    """One row of ``notifications_of`` as the reader sees it: title and body in their language
    (times in their facility's zone ``zone``), the patient, study and a link to the consultation.
    """
    consultation_id = item.get("consultation_id")
    params = item.get("params") or {}
    values = {
        **{str(k): "" if v is None else str(v) for k, v in params.items()},
        "due": local_time(params.get("due_at"), zone),
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
