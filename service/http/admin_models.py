"""Request and response models of the administration API (users, facilities, own password)."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Literal, get_args
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator, model_validator

from ..auth.passwords import MIN_PASSWORD_LENGTH
from ..intake.modalities import AET_PATTERN
from ..reports.person_names import checked_person_name
from ..storage.facilities import FACILITY_KINDS, HL7_CODE_PATTERN, HL7_ENDPOINT_PATTERN
from ..storage.users import ROLES
from .models import RecordId, Strict

RoleName = Literal["radiographer", "clinician", "requester", "specialist", "manager", "admin"]
FacilityKind = Literal["township", "county", "regional"]
GradeName = Literal["resident", "attending", "associate_chief", "chief"]
GRADE_DESCRIPTION = (
    "Professional grade: resident (住院医师), attending (主治医师), associate_chief (副主任医师),"
    " chief (主任医师); the worklist rules' [review] table decides whose reports are reviewed"
)
assert get_args(RoleName) == ROLES and get_args(FacilityKind) == FACILITY_KINDS

USERNAME_PATTERN = r"^[A-Za-z0-9._-]+$"
HOST_PATTERN = r"^[A-Za-z0-9.:-]+$"

Password = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: str | None) -> str | None:
    if value is not None and value not in _zones():
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def check_dicom_name(value: str | None) -> str | None:
    """The same check as ``teleread user dicom-name`` (reports/person_names.py)."""
    return value if value is None else checked_person_name(value)


DICOM_NAME_DESCRIPTION = (
    "DICOM person name (PS3.5 6.2) the reports' SR names this signer by, up to three groups"
    " alphabetic=ideographic=phonetic, e.g. 'Li^Ming=李^明=lǐ^míng'; empty: derived from the"
    " display name"
)


class PartialUpdate(Strict):
    """PATCH bodies: omitted fields stay as they are; null only where a field may be empty."""

    _nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _something_and_no_stray_null(self) -> Any:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for name in self.model_fields_set - self._nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


# ---- users ----------------------------------------------------------------------------


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    display_name: str = Field(default="", max_length=200)
    role: RoleName
    facility_id: RecordId
    password: str = Password
    dicom_name: str = Field(default="", max_length=200, description=DICOM_NAME_DESCRIPTION)
    grade: GradeName = Field(default="attending", description=GRADE_DESCRIPTION)

    _dicom_name = field_validator("dicom_name")(check_dicom_name)


class UserUpdate(PartialUpdate):
    display_name: str | None = Field(default=None, max_length=200)
    dicom_name: str | None = Field(
        default=None, max_length=200, description=DICOM_NAME_DESCRIPTION + " ('' clears it)"
    )
    role: RoleName | None = None
    facility_id: RecordId | None = None
    disabled: bool | None = None
    subspecialties: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[a-z0-9_-]*(,[a-z0-9_-]+)*$",
        description="Queues the specialist reads first, comma-separated (e.g. neuro,chest)",
    )
    grade: GradeName | None = Field(default=None, description=GRADE_DESCRIPTION)

    _dicom_name = field_validator("dicom_name")(check_dicom_name)


class PasswordReset(Strict):
    password: str = Password


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Password


class AdminUser(BaseModel):
    id: int
    username: str
    display_name: str
    role: RoleName
    facility_id: int
    facility_name: str
    disabled: bool
    created_at: str
    subspecialties: str = ""
    dicom_name: str = Field(default="", description=DICOM_NAME_DESCRIPTION)
    dicom_name_derived: str = Field(
        description="The name the SR uses while dicom_name is empty (from the display name)"
    )
    active_sessions: int = Field(description="Open sessions (not revoked, not expired)")
    grade: GradeName = Field(default="attending", description=GRADE_DESCRIPTION)


class AdminUserList(BaseModel):
    items: list[AdminUser]


class Created(BaseModel):
    id: int


class UserChanged(BaseModel):
    id: int
    changed: list[str] = Field(description="Fields that actually changed")
    sessions_revoked: int


class SessionsRevoked(BaseModel):
    id: int
    sessions_revoked: int


# ---- facilities -----------------------------------------------------------------------


CharacterSet = Literal["ISO_IR 192", "GB18030"]
HL7_CODE = "The code the facility's HIS sends in MSH-4 (its AE title also matches)"
HL7_ENDPOINT = "host:port of the facility's MLLP receiver for results (ORU^R01)"
CHARACTER_SET = "DICOM character set of its modalities (worklist items; HL7 MSH-18 to match)"


class FacilityCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: FacilityKind
    aet: str = Field(pattern=AET_PATTERN, description="DICOM AE title the facility sends with")
    timezone: str | None = Field(default=None, description="IANA zone; the service's default")
    contact: str = Field(default="", max_length=500)
    dicom_host: str | None = Field(default=None, max_length=253, pattern=HOST_PATTERN)
    dicom_port: int | None = Field(default=None, ge=1, le=65535)
    hl7_code: str | None = Field(default=None, pattern=HL7_CODE_PATTERN, description=HL7_CODE)
    hl7_endpoint: str | None = Field(
        default=None, max_length=260, pattern=HL7_ENDPOINT_PATTERN, description=HL7_ENDPOINT
    )
    character_set: CharacterSet = Field(default="ISO_IR 192", description=CHARACTER_SET)

    _timezone = field_validator("timezone")(check_timezone)


class FacilityUpdate(PartialUpdate):
    _nullable: ClassVar[frozenset[str]] = frozenset(
        {"dicom_host", "dicom_port", "hl7_code", "hl7_endpoint"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: FacilityKind | None = None
    aet: str | None = Field(default=None, pattern=AET_PATTERN)
    timezone: str | None = None
    contact: str | None = Field(default=None, max_length=500)
    dicom_host: str | None = Field(default=None, max_length=253, pattern=HOST_PATTERN)
    dicom_port: int | None = Field(default=None, ge=1, le=65535)
    hl7_code: str | None = Field(default=None, pattern=HL7_CODE_PATTERN, description=HL7_CODE)
    hl7_endpoint: str | None = Field(
        default=None, max_length=260, pattern=HL7_ENDPOINT_PATTERN, description=HL7_ENDPOINT
    )
    character_set: CharacterSet | None = Field(default=None, description=CHARACTER_SET)

    _timezone = field_validator("timezone")(check_timezone)


class AdminFacility(BaseModel):
    id: int
    name: str
    kind: FacilityKind
    aet: str
    timezone: str
    contact: str
    dicom_host: str | None
    dicom_port: int | None
    hl7_code: str | None = None
    hl7_endpoint: str | None = None
    character_set: str = "ISO_IR 192"
    created_at: str


class AdminFacilityList(BaseModel):
    items: list[AdminFacility]


class FacilityCreated(BaseModel):
    id: int
    registered: bool = Field(description="Orthanc took the AE title (false: it was unreachable)")


class FacilityChangedResponse(BaseModel):
    id: int
    changed: list[str]
    registered: bool | None = Field(
        description="Re-registered with Orthanc (null: AE title and DICOM node unchanged)"
    )


# ---- failed logins ----------------------------------------------------------------------


class FailedAddress(BaseModel):
    client_ip: str | None
    failures: int
    last_failure_at: str
    limited: bool = Field(description="This address may not try this account now")


class HammeredAccount(BaseModel):
    username: str
    exists: bool = Field(description="False: somebody is guessing a username that is not one")
    failures: int
    last_failure_at: str
    delayed_until: str | None = Field(
        description="Until when attempts from addresses it never logged in from are refused"
    )
    addresses: list[FailedAddress]


class FailingAddress(BaseModel):
    client_ip: str | None
    failures: int
    accounts: int
    last_failure_at: str
    limited: bool = Field(description="This address may not try any account now")


class LoginFailures(BaseModel):
    window_minutes: int
    accounts: list[HammeredAccount]
    addresses: list[FailingAddress]
