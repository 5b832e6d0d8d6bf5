"""Reports over HTTP: the draft, signing, corrections, the signed PDF, acknowledgements."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from ...auth.access import consultation_scope
from ...auth.password_check import WrongPassword
from ...auth.sessions import LoginLocked
from ...clock import utc_now
from ...reports import acknowledgement, authoring
from ...reports.public_address import loopback_allowed
from ...reports.review_submission import sign_for_issue_or_review
from ...reports.review_view import review_view
from ...reports.signing import SignedReport
from ...storage import report_priors
from ...storage import reports as report_store
from ..access import allow
from ..answers import PrintRecorded
from ..auditing import audit_context, audited
from ..errors import ApiError, too_many_wrong_passwords
from ..keys import CA, DATABASE, EFFECTS, ORTHANC, SETTINGS, current_user
from ..models import RecordId, Strict
from ..requests import client_ip, path_id, public_base_url, read_model
from ..review_policy import review_policy
from .openapi import NO_BODY, documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

WRITERS = ("specialist", "manager")
CLINIC = ("clinician", "radiographer", "requester")


CLEARED = "null clears it (saved as empty)"


class DraftBody(Strict):
    """Only the fields sent are saved. ``null`` clears a field: the texts become empty, the
    flags false, the quality rating and the template unset (an autosave of a cleared form)."""

    findings: str | None = Field(default=None, max_length=20000, description=CLEARED)
    impression: str | None = Field(default=None, max_length=10000, description=CLEARED)
    recommendation: str | None = Field(default=None, max_length=10000, description=CLEARED)
    critical: bool | None = Field(default=None, description="null clears it (false)")
    refer: bool | None = Field(
        default=None, description="Recommend referring the patient up; null clears it (false)"
    )
    quality: str | None = Field(
        default=None, pattern="^(good|acceptable|poor)$", description="null: not rated"
    )
    quality_reason: str | None = Field(default=None, max_length=500, description=CLEARED)
    technical_flagged: bool | None = Field(
        default=None,
        description="The study's technical parameters were inadequate (exposure, positioning,"
        " slice thickness...): counted in the facility's QC scores (docs/quality.md); null clears"
        " it (false)",
    )
    template_id: RecordId | None = Field(default=None, description="null: no template")

    @field_validator("findings", "impression", "recommendation", "quality_reason")
    @classmethod
    def null_text_is_empty(cls, value: str | None) -> str:
        """The report's texts are never NULL in the database: a cleared one is empty."""
        return value or ""


class SignBody(Strict):
    password: str = Field(
        min_length=1, max_length=1024, description="Re-entered: signing is deliberate"
    )
    preliminary: bool = Field(
        default=False,
        description="For a report that needs review (docs/worklists.md [review]): also release"
        " it to the clinic at once as a preliminary report (stat and urgent only)",
    )


class VersionSummary(BaseModel):
    version: int
    supersedes_version: int | None
    findings: str
    impression: str
    recommendation: str
    critical: bool
    refer: bool
    quality: str | None
    quality_reason: str
    signer_name: str
    certificate_serial: str
    signed_at: str
    verification_code: str
    pdf: str
    preliminary: bool = Field(default=False, description="Released before review (初步报告)")
    superseded: bool = Field(default=False, description="A later version replaces it")
    reviewer_name: str = Field(default="", description="Who reviewed and co-signed it (审核医师)")
    reviewed_at: str | None = None
    text_by: str = Field(
        default="writer", description="writer, or reviewer when the reviewer edited the text"
    )
    recognised: bool = Field(
        default=False,
        description="Its facility and exam item were on the mutual-recognition list when it was"
        " signed: the PDF says so (docs/quality.md)",
    )


class ReportAnswer(BaseModel):
    consultation_id: int
    state: str | None = Field(description="draft, signed, or null before the first save")
    draft: dict[str, Any] | None = Field(description="The working copy (readers only)")
    versions: list[VersionSummary]
    acknowledged_version: int | None
    acknowledged_at: str | None
    critical_acknowledged_at: str | None
    deliveries: list[dict[str, Any]] = []
    review: dict[str, Any] | None = Field(
        default=None,
        description="Two-level sign-off, readers only: ``awaiting`` (the text signed for review"
        " and its writer), ``returned`` (the reviewer's comment to the writer) and ``history``"
        " (every text signed for review, who wrote it and what the reviewer decided)",
    )


class Signed(BaseModel):
    consultation_id: int
    report_id: int
    version: int
    verification_code: str
    signed_at: str
    pdf: str
    awaiting_review: bool = Field(
        default=False, description="Signed for review: nothing is issued until it is reviewed"
    )
    preliminary: bool = Field(
        default=False, description="``version`` was released to the clinic as preliminary"
    )


def _id(request: web.Request) -> int:
    return path_id(request)


def _pdf_url(consultation_id: int, version: int) -> str:
    return f"/api/consultations/{consultation_id}/report/versions/{version}/pdf"


def _answer(
    view: authoring.ReportView,
    deliveries: list[dict[str, Any]],
    review: dict[str, Any] | None = None,
) -> ReportAnswer:
    report = view.report
    latest = max((v["version"] for v in view.versions), default=0)
    versions = [
        VersionSummary(
            **{k: v[k] for k in VersionSummary.model_fields if k in v and k != "pdf"}
            | {"critical": bool(v["critical"]), "refer": bool(v["refer"])}
            | {"preliminary": bool(v.get("preliminary")), "superseded": v["version"] < latest},
            pdf=_pdf_url(view.consultation["id"], v["version"]),
        )
        for v in view.versions
    ]
    draft = None
    if report is not None and view.draft_visible:
        draft = {k: report[k] for k in (*report_store.DRAFT_FIELDS, "author_id", "author_name")}
        draft |= {"saved_at": report["draft_saved_at"]}
    return ReportAnswer(
        consultation_id=view.consultation["id"],
        state=report["state"] if report else None,
        draft=draft,
        versions=versions,
        acknowledged_version=report["acknowledged_version"] if report else None,
        acknowledged_at=report["acknowledged_at"] if report else None,
        critical_acknowledged_at=report["critical_acknowledged_at"] if report else None,
        deliveries=deliveries if view.draft_visible else [],
        review=review if view.draft_visible else None,
    )


def _audit(request: web.Request, row: dict[str, Any]) -> None:
    audit_context(request).touches(row["patient_id"], row["study_instance_uid"], row["id"])


async def _report_answer(request: web.Request) -> web.Response:
    database = request.app[DATABASE]
    view = await database.read(authoring.read_report, _id(request), current_user(request))
    deliveries, review = [], None
    if view.report is not None and view.draft_visible:
        deliveries = await database.read(report_store.deliveries_of, view.report["id"])
        review = await database.read(review_view, view.report["id"])
    _audit(request, view.consultation)
    return web.json_response(_answer(view, deliveries, review).model_dump())


@routes.get(r"/api/consultations/{id:\d+}/report")
@allow(*WORKLIST_ROLES)
@audited("report.view", "consultation")
@documented(
    "The consultation's report: signed versions, and the draft for readers",
    response=ReportAnswer,
    errors=(404,),
)
async def get_report(request: web.Request) -> web.Response:
    return await _report_answer(request)


@routes.put(r"/api/consultations/{id:\d+}/report/draft")
@allow(*WRITERS)
@audited("report.draft", "consultation")
@documented(
    "Autosave the draft (the claim holder, or the author of a correction)",
    body=DraftBody,
    response=ReportAnswer,
    errors=(400, 404, 409),
)
async def put_draft(request: web.Request) -> web.Response:
    body = await read_model(request, DraftBody)
    fields = body.model_dump(exclude_unset=True)
    try:
        await request.app[DATABASE].write(
            authoring.save_draft, _id(request), current_user(request), fields, utc_now()
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_report", str(exc)) from exc
    return await _report_answer(request)


@routes.post(r"/api/consultations/{id:\d+}/report/correction")
@allow(*WRITERS)
@audited("report.correction", "consultation")
@documented(
    "Open a signed report for correction: the next signature adds a new version (readers of the"
    " facility that signed it)",
    body=NO_BODY,
    response=ReportAnswer,
    errors=(403, 404, 409),
)
async def post_correction(request: web.Request) -> web.Response:
    try:
        await request.app[DATABASE].write(
            authoring.start_correction, _id(request), current_user(request), utc_now()
        )
    except authoring.NotSignersFacility as exc:
        raise ApiError(403, "not_signers_facility", str(exc)) from exc
    return await _report_answer(request)


@routes.post(r"/api/consultations/{id:\d+}/report/sign")
@allow(*WRITERS)
@audited("report.sign", "consultation")
@documented(
    "Sign the draft with the signer's certificate (password re-entered)",
    body=SignBody,
    response=Signed,
    errors=(400, 403, 404, 409, 429),
    success=(201,),
)
async def post_sign(request: web.Request) -> web.Response:
    body = await read_model(request, SignBody)
    try:
        signed = await sign_for_issue_or_review(
            request.app[DATABASE],
            request.app[CA],
            current_user(request),
            _id(request),
            body.password,
            now=utc_now(),
            public_url=public_base_url(request),
            client_ip=client_ip(request),
            tsa_url=request.app[SETTINGS].tsa_url,
            loopback_allowed=loopback_allowed(request.app[SETTINGS]),
            orthanc=request.app[ORTHANC],
            review=review_policy(request.app),
            preliminary=body.preliminary,
        )
    except WrongPassword as exc:
        raise ApiError(
            403, "wrong_password", "the password is wrong: the report is not signed"
        ) from exc
    except LoginLocked as exc:
        raise too_many_wrong_passwords(exc.retry_after) from exc
    _audit(request, signed.consultation)
    audit_context(request).detail |= {"version": signed.version, "code": signed.verification_code}
    if signed.awaiting_review:
        audit_context(request).detail |= {
            "awaiting_review": True,
            "preliminary": signed.preliminary,
        }
    await request.app[EFFECTS].apply(signed.effects)
    return web.json_response(signed_answer(signed).model_dump(), status=201)


def signed_answer(signed: SignedReport) -> Signed:
    """The answer to a signature (the writer's, or the reviewer's co-signature)."""
    issued = not signed.awaiting_review or signed.preliminary
    return Signed(
        consultation_id=signed.consultation["id"],
        report_id=signed.report_id,
        version=signed.version,
        verification_code=signed.verification_code,
        signed_at=signed.signed_at,
        pdf=_pdf_url(signed.consultation["id"], signed.version) if issued else "",
        awaiting_review=signed.awaiting_review,
        preliminary=signed.preliminary,
    )


@routes.get(r"/api/consultations/{id:\d+}/report/versions/{version:\d+}/pdf")
@allow(*WORKLIST_ROLES)
@audited("report.open", "consultation")
@documented(
    "The signed PDF of one version (PAdES: any PDF reader shows the signature)",
    response_media_type="application/pdf",
    errors=(404,),
)
async def get_pdf(request: web.Request) -> web.Response:
    version = path_id(request, "version")
    copy = await request.app[DATABASE].write(
        acknowledgement.open_version, _id(request), version, current_user(request), utc_now()
    )
    _audit(request, copy.consultation)
    audit_context(request).detail["version"] = version
    disposition = "attachment" if "download" in request.query else "inline"
    name = f"report-{copy.consultation['id']}-v{version}.pdf"
    return web.Response(
        body=copy.pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


@routes.post(r"/api/consultations/{id:\d+}/report/versions/{version:\d+}/print")
@allow(*WORKLIST_ROLES)
@audited("report.print", "consultation")
@documented(
    "Record that a version is being printed (the portal calls this before printing)",
    body=NO_BODY,
    response=PrintRecorded,
    errors=(404,),
)
async def post_print(request: web.Request) -> web.Response:
    version = path_id(request, "version")
    copy = await request.app[DATABASE].read(
        acknowledgement.version_to_print, _id(request), version, current_user(request)
    )
    _audit(request, copy)
    audit_context(request).detail["version"] = version
    return web.json_response(
        {"consultation_id": copy["id"], "version": version, "pdf": _pdf_url(copy["id"], version)}
    )


@routes.post(r"/api/consultations/{id:\d+}/report/acknowledgement")
@allow(*CLINIC)
@audited("report.acknowledge", "consultation")
@documented(
    "The originating clinic acknowledges the latest signed version",
    body=NO_BODY,
    response=ReportAnswer,
    errors=(404, 409),
)
async def post_acknowledgement(request: web.Request) -> web.Response:
    await request.app[EFFECTS].write(
        request.app[DATABASE],
        acknowledgement.acknowledge,
        _id(request),
        current_user(request),
        utc_now(),
    )
    return await _report_answer(request)


@routes.post(r"/api/consultations/{id:\d+}/report/critical-acknowledgement")
@allow("clinician", "requester")
@audited("report.critical_acknowledge", "consultation")
@documented(
    "A clinician of the originating clinic acknowledges the critical finding",
    body=NO_BODY,
    response=ReportAnswer,
    errors=(404, 409),
)
async def post_critical_acknowledgement(request: web.Request) -> web.Response:
    await request.app[EFFECTS].write(
        request.app[DATABASE],
        acknowledgement.acknowledge_critical,
        _id(request),
        current_user(request),
        utc_now(),
    )
    return await _report_answer(request)


class PriorReport(BaseModel):
    consultation_id: int
    modality: str
    body_part: str
    study_date: str = Field(description="DICOM date YYYYMMDD, or empty")
    study_description: str
    version: int
    signed_at: str
    signer_name: str
    impression: str
    critical: bool
    pdf: str
    findings: str = ""
    facility_id: int = 0
    facility_name: str = Field("", description="The facility whose consultation it was")
    recognition: str = Field(
        "",
        description="That facility's place on the recognition list for the exam item (modality"
        " and body part): listed, suspended, or empty when never listed",
    )
    performed_at: str = Field(
        "", description="When its images arrived (or it was requested), ISO 8601 UTC"
    )


class PriorReports(BaseModel):
    consultation_id: int
    items: list[PriorReport]


_PRIOR_TEXT = (
    "modality", "body_part", "study_date", "study_description", "signed_at", "signer_name",
    "impression", "findings", "facility_name", "recognition", "performed_at",
)  # fmt: skip


@routes.get(r"/api/consultations/{id:\d+}/report/priors")
@allow(*WORKLIST_ROLES)
@audited("report.priors", "consultation")
@documented(
    "Signed reports of the same person's other consultations the caller may see, at any linked"
    " facility (the master patient index's linked local identities; under one facility's same"
    " Patient ID confirmed by birth date or name, so two patients sharing an ID are never"
    " paired), with each one's facility and recognition status",
    response=PriorReports,
    errors=(404,),
)
async def get_priors(request: web.Request) -> web.Response:
    scope = consultation_scope(current_user(request))
    current, rows = await request.app[DATABASE].read(
        report_priors.signed_priors, _id(request), scope
    )
    _audit(request, current)
    audit_context(request).detail |= {
        "patients": sorted(
            {current["patient_id"], *(row["patient_id"] for row in rows)} - {"", None}
        ),
        "prior_consultations": [row["consultation_id"] for row in rows],
    }
    items = [
        PriorReport(
            **{k: row[k] or "" for k in _PRIOR_TEXT},
            consultation_id=row["consultation_id"],
            version=row["version"],
            facility_id=row["facility_id"],
            critical=bool(row["critical"]),
            pdf=_pdf_url(row["consultation_id"], row["version"]),
        )
        for row in rows
    ]
    answer = PriorReports(consultation_id=current["id"], items=items)
    return web.json_response(answer.model_dump())
