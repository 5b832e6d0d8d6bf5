"""Request and response models: declared once, used to validate and to build /api/openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..identity_numbers import HEALTH_CARD, RESIDENT_ID, Identifier, checked, resident_id_problem

SQLITE_INTEGER_MAX = 2**63 - 1
"""SQLite stores INTEGER as a signed 64-bit value: a larger Python int cannot even be bound as a
query parameter (OverflowError), so every id and number a client sends is held to this range at
the edge and answers 4xx instead of reaching the database."""

RecordId = Annotated[
    int, Field(ge=1, le=SQLITE_INTEGER_MAX, description="A record's id (1 to 2^63-1)")
]
"""Any id a client names, in a path, a query or a body: ids start at 1 and fit SQLite."""

PriorityName = Literal["stat", "urgent", "routine"]
StatusName = Literal[
    "awaiting_images",
    "awaiting_request",
    "ready",
    "awaiting_review",
    "signed",
    "closed",
    "cancelled",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserInfo(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    facility_id: int
    facility_name: str
    facility_kind: str
    facility_timezone: str
    locale: str | None


class LoginResponse(BaseModel):
    token: str = Field(description="Bearer token for API clients (Authorization: Bearer ...)")
    expires_at: str
    csrf_token: str = Field(description="Send as X-CSRF-Token with cookie-authenticated writes")
    user: UserInfo


class ConsultationRequestBody(Strict):
    """A clinic's request for a reading; linked to a study by UID or accession number."""

    study_instance_uid: str | None = Field(
        default=None, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$"
    )
    accession_number: str | None = Field(default=None, max_length=16)
    patient_id: str | None = Field(default=None, max_length=64)
    patient_name: str | None = Field(default=None, max_length=200)
    modality: str | None = Field(default=None, max_length=16)
    body_part: str | None = Field(default=None, max_length=32)
    clinical_history: str | None = Field(default=None, max_length=4000)
    clinical_question: str | None = Field(default=None, max_length=2000)
    callback_phone: str | None = Field(default=None, max_length=32)
    priority: PriorityName = "routine"
    patient_birth_date: str | None = Field(
        default=None, pattern=r"^[0-9]{8}$", description="YYYYMMDD (DICOM DA)"
    )
    patient_sex: Literal["M", "F", "O"] | None = None
    requested_procedure: str | None = Field(default=None, max_length=64)
    requested_procedure_code: str | None = Field(default=None, max_length=16)
    placer_order_number: str | None = Field(
        default=None, max_length=22, description="The ordering system's order number"
    )
    repeat_reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why the exam is done again although a repeat alert named a prior one"
        " (file again with it after a 409 repeat_exam)",
    )
    repeat_alert_id: int | None = Field(
        default=None, ge=1, description="The alert the 409 repeat_exam answer named"
    )

    patient_identity_number: str | None = Field(
        default=None,
        max_length=32,
        description="The patient's resident identity card number (GB 11643, 18 characters,"
        " check character verified: 400 when wrong); links the patient across facilities",
    )
    patient_health_card_number: str | None = Field(
        default=None,
        max_length=40,
        description="The patient's resident health card number (10-32 letters and digits)",
    )

    @field_validator("patient_identity_number")
    @classmethod
    def resident_id_checks(cls, value: str | None) -> str | None:
        """Refused with the reason (never the number) when the check character or the birth
        date inside is wrong; kept in canonical form otherwise."""
        if not value:
            return None
        problem = resident_id_problem(value)
        if problem:
            raise PydanticCustomError("resident_id", problem)
        return checked(RESIDENT_ID, value).value  # type: ignore[union-attr]

    @field_validator("patient_health_card_number")
    @classmethod
    def health_card_checks(cls, value: str | None) -> str | None:
        if not value:
            return None
        card = checked(HEALTH_CARD, value)
        if card is None:
            raise PydanticCustomError(
                "health_card", "a resident health card number is 10 to 32 letters and digits"
            )
        return card.value

    def identifiers(self) -> tuple[Identifier, ...]:
        """The checked national identifiers the request names (service/identity_numbers.py)."""
        given = [
            (RESIDENT_ID, self.patient_identity_number),
            (HEALTH_CARD, self.patient_health_card_number),
        ]
        return tuple(Identifier(system, value) for system, value in given if value)

    @model_validator(mode="after")
    def needs_a_study_link(self) -> ConsultationRequestBody:
        if not self.study_instance_uid and not self.accession_number:
            raise ValueError("give study_instance_uid or accession_number to link the study")
        return self


class ConsultationCreated(BaseModel):
    id: int
    status: StatusName
    created: bool


class WorklistFilters(Strict):
    """The worklist's filters: a query's, and what a saved filter stores."""

    status: list[StatusName] = []
    priority: list[PriorityName] = []
    modality: list[str] = []
    body_part: list[str] = []
    facility: list[RecordId] = []
    queue: list[str] = Field(default=[], description="Subspecialty queues, e.g. neuro, chest")
    assigned: Literal["me"] | None = Field(
        default=None, description="`me`: only items the caller holds with a live claim"
    )
    order: Literal["due", "mine_first"] = Field(
        default="due",
        description="`mine_first`: the caller's subspecialty queues first, each part in due order",
    )


class WorklistQuery(WorklistFilters):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class WorklistItem(BaseModel):
    id: int
    study_instance_uid: str | None
    facility: str
    facility_id: int
    patient_name: str
    patient_id: str
    accession_number: str
    modality: str
    body_part: str
    priority: PriorityName
    status: StatusName
    instances: int
    received_at: str | None
    requested_at: str | None
    due_at: str
    clinical_question: str | None
    queue: str = Field(default="general", description="Subspecialty queue the routing chose")
    claimed_by: str | None = Field(
        default=None, description="Who holds the claim (display name, else username)"
    )
    claimed_by_id: int | None = None
    claim_expires_at: str | None = Field(
        default=None, description="When the claim lapses; null when free or expired"
    )
    escalation: str | None = Field(
        default=None, description="Latest escalation reason (unclaimed, overdue); null if none"
    )
    prior_count: int = Field(
        default=0,
        description="Studies of the same person (any linked facility the caller may see) with"
        " images, performed before this one",
    )


class WorklistCounts(BaseModel):
    total: int
    status: dict[str, int]
    priority: dict[str, int]
    queue: dict[str, int] = Field(default={}, description="Items per subspecialty queue")


class WorklistResponse(BaseModel):
    items: list[WorklistItem]
    counts: WorklistCounts
    next: str | None


class UploadedFile(BaseModel):
    filename: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    study_instance_uid: str | None = None
    sop_instance_uid: str | None = None


class UploadedStudy(BaseModel):
    study_instance_uid: str
    patient_name: str = Field(description="DICOM PN as received, e.g. 'ZHANG^SAN'")
    patient_id: str
    study_description: str
    instances: int = Field(description="Files of this study accepted by this request")
    consultation_id: int | None = Field(
        description="The uploader's facility's consultation of this study, once there is one"
    )
    consultation: str | None = Field(description="Link to the consultation page")


class UploadResponse(BaseModel):
    files: list[UploadedFile]
    accepted: int
    rejected: int
    studies: list[str]
    study_details: list[UploadedStudy] = Field(
        default=[], description="One entry per accepted study: whose, what, how many files"
    )


class Problem(BaseModel):
    field: str = Field(description="Where, dotted (empty for the body as a whole)")
    message: str


class ErrorResponse(BaseModel):
    """Every error answer (service/http/errors.py ``ApiError``); some codes add fields of
    their own."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="Stable machine-readable code")
    detail: str = Field(description="Human-readable explanation")
    problems: list[Problem] | None = Field(
        default=None, description="invalid_request (400): each field's problem"
    )
    retry_after: float | None = Field(
        default=None, description="429: seconds to wait, also sent as Retry-After"
    )
