"""The clinic portal's list of signed reports, report templates, and the report pages."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ...auth.access import consultation_scope
from ...clock import to_iso, utc_now
from ...storage import reports as report_store
from ..access import allow, at_centre
from ..auditing import audit_context, audited, not_audited
from ..keys import DATABASE, current_user
from ..models import Strict
from ..requests import path_id, read_model
from .openapi import documented, page
from .pages import render
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

# The consortium's templates are kept centrally: a clinic's manager reads them but changes none.
TEMPLATE_EDITORS = ("admin", at_centre("manager"))


class PortalItem(BaseModel):
    report_id: int
    consultation_id: int
    version: int
    signed_at: str
    signer_name: str
    critical: bool
    critical_acknowledged_at: str | None
    acknowledged_version: int | None
    acknowledged_at: str | None
    corrected: bool = Field(description="A later version corrects the first one")
    preliminary: bool = Field(
        default=False,
        description="Released before review (初步报告): the reviewed final version replaces it",
    )
    reviewer_name: str = Field(default="", description="Who reviewed and co-signed it (审核医师)")
    patient_name: str
    patient_id: str
    modality: str
    body_part: str
    priority: str
    status: str
    facility_name: str
    study_instance_uid: str | None
    pdf: str
    viewer: str


class PortalList(BaseModel):
    items: list[PortalItem]


class Macro(Strict):
    label: str = Field(min_length=1, max_length=80)
    field: str = Field(pattern="^(findings|impression|recommendation)$")
    text: str = Field(min_length=1, max_length=4000)


class TemplateBody(Strict):
    name: str = Field(min_length=1, max_length=120)
    modality: str = Field(default="", max_length=16)
    body_part: str = Field(default="", max_length=64)
    findings: str = Field(default="", max_length=20000)
    impression: str = Field(default="", max_length=10000)
    recommendation: str = Field(default="", max_length=10000)
    macros: list[Macro] = []


class Template(TemplateBody):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: int
    updated_at: str


class TemplateList(BaseModel):
    items: list[Template]


def _portal_item(row: dict[str, Any]) -> PortalItem:
    cid, version = row["consultation_id"], row["version"]
    return PortalItem(
        **{
            k: row[k]
            for k in PortalItem.model_fields
            if k in row and k not in ("critical", "preliminary")
        },
        critical=bool(row["version_critical"]),
        preliminary=bool(row.get("preliminary")),
        corrected=version > 1,
        pdf=f"/api/consultations/{cid}/report/versions/{version}/pdf",
        viewer=f"/viewer/{cid}",
    )


@routes.get("/api/portal/reports")
@allow(*WORKLIST_ROLES)
@audited("report.list", "consultation")
@documented(
    "Signed reports the caller's facility may see: unacknowledged critical findings first,"
    " then newest first",
    response=PortalList,
)
async def get_portal_reports(request: web.Request) -> web.Response:
    user = current_user(request)
    rows = await request.app[DATABASE].read(report_store.portal_reports, consultation_scope(user))
    audit_context(request).detail |= {
        "consultations": [r["consultation_id"] for r in rows],
        # Listed patients go into the per-patient index, as a worklist page's do.
        "patients": sorted({r["patient_id"] for r in rows if r["patient_id"]}),
    }
    answer = PortalList(items=[_portal_item(r) for r in rows])
    return web.json_response(answer.model_dump())


@routes.get("/api/report-templates")
@allow("specialist", "manager", "admin")
@not_audited("report templates carry no patient data")
@documented("Report templates, those fitting a modality and body part first", response=TemplateList)
async def get_templates(request: web.Request) -> web.Response:
    modality = request.query.get("modality", "").upper()
    body_part = request.query.get("body_part", "").upper()
    rows = await request.app[DATABASE].read(report_store.list_templates, modality, body_part)
    return web.json_response(TemplateList(items=[Template(**r) for r in rows]).model_dump())


async def _save(request: web.Request, template_id: int | None) -> web.Response:
    body = await read_model(request, TemplateBody)
    values = body.model_dump() | {
        "modality": body.modality.upper(),
        "body_part": body.body_part.upper(),
    }
    saved_id = await request.app[DATABASE].write(
        report_store.save_template, values, current_user(request).id, to_iso(utc_now()), template_id
    )
    audit_context(request).resource_id = str(saved_id)
    row = await request.app[DATABASE].read(report_store.get_template, saved_id)
    return web.json_response(
        Template(**row).model_dump(), status=201 if template_id is None else 200
    )


@routes.post("/api/report-templates")
@allow(*TEMPLATE_EDITORS)
@audited("template.create", "report_template")
@documented(
    "Add a report template (the regional centre's managers, administrators)",
    body=TemplateBody,
    response=Template,
    errors=(400, 409),
    success=(201,),
)
async def post_template(request: web.Request) -> web.Response:
    return await _save(request, None)


@routes.put(r"/api/report-templates/{id:\d+}")
@allow(*TEMPLATE_EDITORS)
@audited("template.update", "report_template")
@documented(
    "Change a report template (the regional centre's managers, administrators)",
    body=TemplateBody,
    response=Template,
    errors=(400, 404, 409),
)
async def put_template(request: web.Request) -> web.Response:
    return await _save(request, path_id(request))


@routes.delete(r"/api/report-templates/{id:\d+}")
@allow(*TEMPLATE_EDITORS)
@audited("template.delete", "report_template")
@documented(
    "Remove a report template (the regional centre's managers, administrators)",
    errors=(404,),
    success=(204,),
)
async def delete_template(request: web.Request) -> web.Response:
    await request.app[DATABASE].write(report_store.delete_template, path_id(request))
    return web.Response(status=204)


@routes.get("/portal")
@allow(*WORKLIST_ROLES)
@page("The report portal page")
async def portal_page(request: web.Request) -> web.Response:
    """The shell only: the list comes from the scoped, audited API."""
    return render(request, "portal.html")


@routes.get(r"/consultations/{id:\d+}/report")
@allow("specialist", "manager")
@page("The report editor page")
async def report_editor_page(request: web.Request) -> web.Response:
    """The report editor beside the viewer; its data comes from the scoped, audited API."""
    return render(request, "report_editor.html", consultation_id=path_id(request))


@routes.get("/report-templates")
@allow(*TEMPLATE_EDITORS)
@page("The report templates page")
async def templates_page(request: web.Request) -> web.Response:
    return render(request, "report_templates.html")
