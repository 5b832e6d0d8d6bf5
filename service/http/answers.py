"""Response models of the answers that handlers build as plain dicts: declared for the OpenAPI
document (``/api/openapi.json``), not used to validate (the dicts come from our own code).

Rows straight from storage are described by the fields a client relies on; others may follow
(no ``additionalProperties: false``), so a column added later breaks no client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Ok(BaseModel):
    """A command done; nothing else to say."""

    ok: Literal[True]


class Row(BaseModel):
    """A stored record as the API shows it: its id, and its columns."""

    model_config = ConfigDict(extra="allow")
    id: int


class Rows(BaseModel):
    items: list[Row]


class FacilityList(Rows):
    """The consortium's facilities (id, name, kind, AE title...)."""


class TokenList(Rows):
    """Your API tokens: name, creation and last use; never the token itself."""


class QuarantineList(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="One entry per quarantined study: why, from where, when"
    )


class OnDuty(BaseModel):
    user_id: int
    role_on_duty: str


class Roster(BaseModel):
    items: list[Row] = Field(description="Current and future shifts")
    on_duty: list[OnDuty]


class DutyPeople(Rows):
    """The regional centre's enabled specialists and managers."""


class NotificationList(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Notices, unread first: kind, text, consultation_id, read_at..."
    )
    unread: int


class UnreadCount(BaseModel):
    unread: int = Field(ge=0)


class Event(BaseModel):
    type: str
    at: str
    actor_user_id: int | None
    actor: str | None
    detail: Any


class ConsultationDetail(BaseModel):
    """A worklist item with the clinical details and the consultation's events, oldest first."""

    model_config = ConfigDict(extra="allow")
    id: int
    status: str
    priority: str
    clinical_history: str | None
    callback_phone: str | None
    facility_timezone: str | None
    preliminary: Any
    events: list[Event]


class ViewerManifest(BaseModel):
    """What the viewer needs to open a study: its series and instances with their URLs
    (docs/viewer.md)."""

    consultation_id: int
    study: dict[str, Any]
    series: list[dict[str, Any]]
    priors: list[Any]


class TurnaroundGroups(BaseModel):
    """Turnaround figures over a period, one entry per group (docs/dashboard.md)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(alias="from")
    to: str | None
    time_zone: Literal["UTC"]
    group_by: list[str]
    groups: list[dict[str, Any]]
    review_stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Two-level sign-off (reports that went to review), over the whole period:"
        " claimed_to_written and written_to_reviewed, each with count, p50, p90, p95, mean"
        " seconds",
    )


class PeriodItems(BaseModel):
    """Rows over a period (breaches, workload, quality)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(alias="from")
    to: str | None
    items: list[dict[str, Any]]


class QueueNow(BaseModel):
    at: str
    items: list[dict[str, Any]]


class PrintRecorded(BaseModel):
    consultation_id: int
    version: int
    pdf: str = Field(description="The URL of the version's PDF")


class PublicVerification(BaseModel):
    """The verdict on a report named by its printed code: what matches the paper, no more."""

    valid: bool
    reasons: list[str]
    revoked: bool
    signer: str
    signed_at: str
    facility: str
    patient_initials: str
    version: int
    latest_version: int
    superseded: bool


class Check(BaseModel):
    valid: bool
    intact: bool
    trusted: bool
    revoked: bool
    reasons: list[str]


class FileVerification(BaseModel):
    """The verdict on a report file, with each signature's checks."""

    valid: bool
    reasons: list[str]
    signer: str | None
    signed_at: str | None
    revoked: bool
    checks: dict[str, Check]


DICTIONARY: dict[str, Any] = {
    "description": 'PS3.6 keywords by tag: {"00100010": "PatientName", ...}',
    "type": "object",
    "propertyNames": {"pattern": "^[0-9A-F]{8}$"},
    "additionalProperties": {"type": "string"},
}


class Health(BaseModel):
    """The service's health (200) or what is wrong (503, ``detail``)."""

    model_config = ConfigDict(extra="allow")
    status: str
    detail: str | None = None
    ingest_caught_up: bool | None
    web_process: int
    web_processes: int
    leader: bool | None = None
    """This replica runs the background work (on PostgreSQL one replica does; null in a
    secondary web process that has not heard its primary yet)."""
