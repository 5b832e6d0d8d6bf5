"""Certificates and verification: signers' identities, the consortium CA and its CRL, revocation,
and the public verification of a report by its code or by the file in hand."""

from __future__ import annotations

import base64
import binascii
import re

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, Field

from ...auth import identities
from ...auth.access import may_revoke_certificate_of
from ...auth.login_limits import LoginLocked
from ...auth.password_check import WrongPassword, check_password
from ...clock import to_iso, utc_now
from ...reports import verification
from ...storage import RecordNotFound
from ...storage import reports as report_store
from ...storage import signing_identities as identity_store
from ..access import allow, at_centre, public
from ..answers import FileVerification, PublicVerification
from ..auditing import audit_context, audited, not_audited
from ..errors import ApiError, too_many_wrong_passwords
from ..keys import CA, DATABASE, current_user
from ..models import Strict
from ..requests import client_ip, read_model
from .openapi import BINARY, documented, page
from .pages import render

routes = web.RouteTableDef()

MAX_VERIFY_BYTES = 50 * 1024 * 1024
SERIAL = re.compile(r"[0-9a-f]{1,40}")
CODE = re.compile(r"[A-Z0-9-]{5,40}")


class Identity(BaseModel):
    id: int
    source: str
    serial: str
    issuer: str
    subject: str
    not_before: str
    not_after: str
    created_at: str
    revoked_at: str | None
    revocation_reason: str | None


class IdentityList(BaseModel):
    items: list[Identity]


class Pkcs12Body(Strict):
    pkcs12: str = Field(min_length=1, description="The PKCS#12 file, base64")
    pkcs12_password: str = Field(max_length=1024)
    password: str = Field(
        min_length=1,
        max_length=1024,
        description="Your teleread password: the key is locked with it",
    )


class RevokeBody(Strict):
    reason: str = Field(min_length=1, max_length=200)


@routes.get("/api/signing/identities")
@allow("specialist", "manager")
@not_audited("the caller's own certificates; no patient data")
@documented(
    "Your signing certificates (issued on your first signature, or imported)", response=IdentityList
)
async def get_identities(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].read(identity_store.identities_of, current_user(request).id)
    return web.json_response(IdentityList(items=[Identity(**r) for r in rows]).model_dump())


@routes.post("/api/signing/identities/pkcs12")
@allow("specialist", "manager")
@audited("signing.import", "user")
@documented(
    "Import a certificate and key from an external CA (PKCS#12)",
    body=Pkcs12Body,
    response=Identity,
    errors=(400, 403, 429),
    success=(201,),
)
async def post_pkcs12(request: web.Request) -> web.Response:
    body = await read_model(request, Pkcs12Body)
    user = current_user(request)
    try:
        await check_password(
            request.app[DATABASE], user.username, body.password, client_ip(request), utc_now()
        )
    except WrongPassword as exc:
        raise ApiError(403, "wrong_password", "your teleread password is wrong") from exc
    except LoginLocked as exc:
        raise too_many_wrong_passwords(exc.retry_after) from exc
    try:
        data = base64.b64decode(body.pkcs12, validate=True)
        imported = await identities.import_identity(
            request.app[DATABASE], user, data, body.pkcs12_password, body.password, utc_now()
        )
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_pkcs12", str(exc) or "not a PKCS#12 file") from exc
    except WrongPassword as exc:
        raise ApiError(403, "wrong_password", "your teleread password is wrong") from exc
    audit_context(request).resource_id = str(user.id)
    audit_context(request).detail["serial"] = imported["serial"]
    return web.json_response(Identity(**imported).model_dump(), status=201)


@routes.post("/api/certificates/{serial}/revoke")
@allow("admin", at_centre("manager"))
@audited("signing.revoke", "certificate")
@documented(
    "Revoke a signer's certificate: later verifications show it revoked (administrators; the"
    " regional centre's managers for their own centre's signers)",
    body=RevokeBody,
    response=Identity,
    errors=(400, 403, 404),
)
async def post_revoke(request: web.Request) -> web.Response:
    serial = request.match_info["serial"].lower()
    audit_context(request).resource_id = serial
    if not SERIAL.fullmatch(serial):
        raise ApiError(400, "invalid_serial", "a certificate serial is hexadecimal")
    database = request.app[DATABASE]
    signer = await database.read(identity_store.signer_of, serial)
    audit_context(request).detail["signer_id"] = signer["user_id"]
    if not may_revoke_certificate_of(current_user(request), signer["facility_id"]):
        raise ApiError(
            403,
            "not_your_signer",
            "a manager revokes only the certificates of their own centre's signers;"
            " ask an administrator",
        )
    body = await read_model(request, RevokeBody)
    row = await database.write(
        identity_store.revoke, serial=serial, at=to_iso(utc_now()), reason=body.reason
    )
    summary = {k: v for k, v in row.items() if k in Identity.model_fields}
    return web.json_response(Identity(**summary).model_dump())


@routes.get("/api/ca/certificate")
@public
@not_audited("the consortium CA's public certificate")
@documented(
    "The consortium CA certificate (PEM): install it to trust teleread signatures",
    response_media_type="application/x-pem-file",
)
async def get_ca_certificate(request: web.Request) -> web.Response:
    pem = request.app[CA].certificate.public_bytes(serialization.Encoding.PEM)
    return web.Response(body=pem, content_type="application/x-pem-file")


@routes.get("/api/ca/crl")
@public
@not_audited("the consortium CA's public revocation list")
@documented(
    "The consortium CA's certificate revocation list (DER)",
    response_media_type="application/pkix-crl",
)
async def get_crl(request: web.Request) -> web.Response:
    database = request.app[DATABASE]
    trust = await database.read(identities.trust_store, request.app[CA], utc_now())
    der = trust.crls[0].public_bytes(serialization.Encoding.DER)
    return web.Response(body=der, content_type="application/pkix-crl")


async def _check_code(request: web.Request) -> dict:
    code = request.match_info["code"].upper()
    database = request.app[DATABASE]
    version = None
    if CODE.fullmatch(code):
        version = await database.read(report_store.version_by_code, code)
    if version is None:
        raise RecordNotFound(f"report with code {code}")
    now = utc_now()

    def check(db):
        trust = identities.trust_store(db, request.app[CA], now)
        return verification.check_version(db, version, trust, now)

    result = await database.read(check)  # CPU-bound checks run on a reader thread
    return verification.public_summary(version, result)


@routes.get("/api/verify/{code}")
@public
@audited("report.verify", "report")
@documented(
    "Verify a report by the code printed on it (public: initials only, no patient data)",
    response=PublicVerification,
    errors=(404,),
)
async def get_verify(request: web.Request) -> web.Response:
    audit_context(request).resource_id = request.match_info["code"]
    return web.json_response(await _check_code(request))


@routes.post("/api/verify")
@public
@audited("report.verify_file", "report")
@documented(
    "Verify a report file (PDF, DICOM Encapsulated PDF or SR) sent as the request body",
    body=BINARY,
    body_media_type=("application/pdf", "application/dicom", "application/octet-stream"),
    response=FileVerification,
    errors=(400, 413),
)
async def post_verify_file(request: web.Request) -> web.Response:
    if request.content_length and request.content_length > MAX_VERIFY_BYTES:
        raise ApiError(413, "too_large", "files up to 50 MB can be verified")
    data = await request.content.read(MAX_VERIFY_BYTES + 1)
    if len(data) > MAX_VERIFY_BYTES:
        raise ApiError(413, "too_large", "files up to 50 MB can be verified")
    database = request.app[DATABASE]
    now = utc_now()

    def check(db):
        trust = identities.trust_store(db, request.app[CA], now)
        return verification.check_file(db, data, trust, now)

    try:
        result = await database.read(check)
    except ValueError as exc:
        raise ApiError(400, "not_a_report", str(exc)) from exc
    return web.json_response(result.as_json())


@routes.get("/verify/{code}")
@public
@audited("report.verify", "report")
@page("The page a report's QR code opens: the verdict on that report", errors=(404,))
async def verify_page(request: web.Request) -> web.Response:
    """The page the QR code opens: the verdict and what matches the paper, nothing more."""
    audit_context(request).resource_id = request.match_info["code"]
    try:
        summary = await _check_code(request)
    except RecordNotFound:
        return render(
            request, "verify.html", status=404, summary=None, code=request.match_info["code"]
        )
    return render(request, "verify.html", summary=summary, code=request.match_info["code"])
