"""Administration: accounts, facilities, the quarantine; and each user's own password.

Every route here but the self-service password change is for administrators only; the rules
(last administrator, self-lockout, session revocation, Orthanc registration) live in
:mod:`service.auth.accounts` and :mod:`service.intake.facility_admin`, so handlers only translate
HTTP.
"""

from __future__ import annotations

from aiohttp import web

from ...auth import accounts
from ...auth.password_check import WrongPassword
from ...auth.sessions import LoginLocked
from ...clock import to_iso, utc_now
from ...intake import facility_admin
from ...reports.person_names import derived_signer_name
from ...storage import facilities as facility_store
from ...storage import ingest as ingest_store
from ...storage import users as user_store
from ..access import AUTHENTICATED, allow
from ..admin_models import (
    AdminFacilityList,
    AdminUserList,
    Created,
    FacilityChangedResponse,
    FacilityCreate,
    FacilityCreated,
    FacilityUpdate,
    PasswordChange,
    PasswordReset,
    SessionsRevoked,
    UserChanged,
    UserCreate,
    UserUpdate,
)
from ..answers import FacilityList, QuarantineList
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError
from ..keys import DATABASE, ORTHANC, SETTINGS, current_user
from ..requests import client_ip, path_id, read_model
from .openapi import NO_BODY, documented

routes = web.RouteTableDef()

USER = "/api/admin/users/{id:\\d+}"
FACILITY = "/api/admin/facilities/{id:\\d+}"


def _id(request: web.Request) -> int:
    return path_id(request)


@routes.get("/api/admin/quarantine")
@allow("admin")
@audited("quarantine.view", "quarantine")
@documented(
    "Studies from unknown AE titles, sent around the service, or naming a study another"
    " facility owns (moved out of Orthanc), kept for review",
    response=QuarantineList,
)
async def quarantine(request: web.Request) -> web.Response:
    include_resolved = request.query.get("resolved") in {"1", "true"}
    rows = await request.app[DATABASE].read(ingest_store.list_quarantine, include_resolved)
    return web.json_response({"items": rows})


@routes.get("/api/facilities")
@allow("admin", "manager", "specialist")
@not_audited("the consortium's facilities, no patient data")
@documented("Facilities of the consortium", response=FacilityList)
async def facilities(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(facility_store.list_facilities)
    return web.json_response({"items": rows})


# ---- users ----------------------------------------------------------------------------


@routes.get("/api/admin/users")
@allow("admin")
@not_audited("staff accounts, no patient data (changes to them are audited)")
@documented(
    "Every account with its role, facility and state (never a password hash)",
    response=AdminUserList,
)
async def list_users(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(user_store.list_users, to_iso(utc_now()))
    items = [
        row | {"dicom_name_derived": derived_signer_name(row["display_name"], row["username"])}
        for row in rows
    ]
    return web.json_response({"items": items})


@routes.post("/api/admin/users")
@allow("admin")
@audited("user.create", "user")
@documented("Create an account", body=UserCreate, response=Created, success=(201,))
async def create_user(request: web.Request) -> web.Response:
    body = await read_model(request, UserCreate)
    audit = audit_context(request)
    audit.detail.update(username=body.username, role=body.role, facility_id=body.facility_id)
    if body.dicom_name:
        audit.detail["dicom_name"] = body.dicom_name
    if body.grade != "attending":
        audit.detail["grade"] = body.grade
    user_id = await accounts.create_account(
        request.app[DATABASE],
        accounts.NewAccount(
            username=body.username,
            display_name=body.display_name,
            role=body.role,
            facility_id=body.facility_id,
            password=body.password,
            dicom_name=body.dicom_name,
            grade=body.grade,
        ),
    )
    audit.resource_id = str(user_id)
    return web.json_response(Created(id=user_id).model_dump(), status=201)


async def _change_user(request: web.Request, change: accounts.AccountChange) -> web.Response:
    audit = audit_context(request)
    audit.detail["requested"] = change.given()
    changed = await accounts.change_account(
        request.app[DATABASE], current_user(request), _id(request), change
    )
    audit.detail.update(changes=changed.changes, sessions_revoked=changed.sessions_revoked)
    answer = UserChanged(
        id=_id(request), changed=sorted(changed.changes), sessions_revoked=changed.sessions_revoked
    )
    return web.json_response(answer.model_dump())


@routes.patch(USER)
@allow("admin")
@audited("user.update", "user")
@documented(
    "Change an account's name, DICOM person name, role, facility or state; disabling revokes"
    " its sessions at once",
    body=UserUpdate,
    response=UserChanged,
)
async def update_user(request: web.Request) -> web.Response:
    body = await read_model(request, UserUpdate)
    return await _change_user(request, accounts.AccountChange(**body.given()))


@routes.post(USER + "/disable")
@allow("admin")
@audited("user.disable", "user")
@documented(
    "Disable an account and revoke its sessions at once", body=NO_BODY, response=UserChanged
)
async def disable_user(request: web.Request) -> web.Response:
    return await _change_user(request, accounts.AccountChange(disabled=True))


@routes.post(USER + "/enable")
@allow("admin")
@audited("user.enable", "user")
@documented("Enable a disabled account again", body=NO_BODY, response=UserChanged)
async def enable_user(request: web.Request) -> web.Response:
    return await _change_user(request, accounts.AccountChange(disabled=False))


@routes.post(USER + "/password")
@allow("admin")
@audited("user.password_reset", "user")
@documented(
    "Set a new password for an account and revoke its sessions",
    body=PasswordReset,
    response=SessionsRevoked,
)
async def reset_password(request: web.Request) -> web.Response:
    body = await read_model(request, PasswordReset)
    revoked = await accounts.reset_password(
        request.app[DATABASE], current_user(request), _id(request), body.password
    )
    audit_context(request).detail["sessions_revoked"] = revoked
    return web.json_response(
        SessionsRevoked(id=_id(request), sessions_revoked=revoked).model_dump()
    )


@routes.post("/api/me/password")
@allow(AUTHENTICATED)
@audited("user.password_change", "user")
@documented(
    "Change your own password; your other sessions are logged out",
    body=PasswordChange,
    response=SessionsRevoked,
    errors=(429,),
)
async def change_own_password(request: web.Request) -> web.Response:
    body = await read_model(request, PasswordChange)
    user = current_user(request)
    audit = audit_context(request)
    audit.resource_id = str(user.id)
    try:
        revoked = await accounts.change_own_password(
            request.app[DATABASE],
            user,
            body.current_password,
            body.new_password,
            client_ip(request),
            now=utc_now(),
        )
    except WrongPassword as exc:
        raise ApiError(403, "wrong_password", "the current password is wrong") from exc
    except LoginLocked as exc:
        raise ApiError(
            429,
            "too_many_attempts",
            "too many wrong passwords; wait a few minutes and try again",
            retry_after=exc.retry_after,
        ) from exc
    audit.detail["sessions_revoked"] = revoked
    return web.json_response(SessionsRevoked(id=user.id, sessions_revoked=revoked).model_dump())


# ---- facilities -----------------------------------------------------------------------


@routes.get("/api/admin/facilities")
@allow("admin")
@not_audited("the consortium's facilities, no patient data")
@documented("Facilities with their AE titles and DICOM nodes", response=AdminFacilityList)
async def list_facilities(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(facility_store.list_facilities)
    return web.json_response({"items": rows})


@routes.post("/api/admin/facilities")
@allow("admin")
@audited("facility.create", "facility")
@documented(
    "Create a facility and register its AE title with Orthanc",
    body=FacilityCreate,
    response=FacilityCreated,
    success=(201,),
)
async def create_facility(request: web.Request) -> web.Response:
    body = await read_model(request, FacilityCreate)
    audit = audit_context(request)
    audit.detail.update(name=body.name, kind=body.kind, aet=body.aet)
    draft = facility_admin.NewFacility(
        **body.model_dump(exclude={"timezone"}),
        timezone=body.timezone or request.app[SETTINGS].default_timezone,
    )
    facility_id, registered = await facility_admin.create_facility(
        request.app[DATABASE], request.app[ORTHANC], draft
    )
    audit.resource_id = str(facility_id)
    audit.detail["registered"] = registered
    answer = FacilityCreated(id=facility_id, registered=registered)
    return web.json_response(answer.model_dump(), status=201)


@routes.patch(FACILITY)
@allow("admin")
@audited("facility.update", "facility")
@documented(
    "Change a facility; a new AE title is registered with Orthanc and the old one removed",
    body=FacilityUpdate,
    response=FacilityChangedResponse,
)
async def update_facility(request: web.Request) -> web.Response:
    body = await read_model(request, FacilityUpdate)
    audit = audit_context(request)
    audit.detail["requested"] = body.given()
    changed = await facility_admin.change_facility(
        request.app[DATABASE], request.app[ORTHANC], _id(request), body.given()
    )
    audit.detail.update(changes=changed.changes, registered=changed.registered)
    answer = FacilityChangedResponse(
        id=_id(request), changed=sorted(changed.changes), registered=changed.registered
    )
    return web.json_response(answer.model_dump())
