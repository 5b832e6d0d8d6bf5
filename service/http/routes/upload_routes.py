"""Study upload (multipart files or zip) and DICOMweb STOW-RS, both attributed to the uploader."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from ...intake.uploads import StudyUploader, UploadLimits, UploadTooLarge
from ...storage import consultations as consultation_store
from ..access import allow
from ..auditing import audit_context, audited
from ..errors import ApiError
from ..keys import DATABASE, ORTHANC, SETTINGS, current_user
from ..models import UploadedStudy, UploadResponse
from ..requests import client_ip
from .openapi import BINARY, documented

routes = web.RouteTableDef()

UPLOAD_FORM = {
    "type": "object",
    "required": ["files"],
    "properties": {"files": {"type": "array", "items": BINARY}},
}
"""DICOM files or zip archives, each a part named ``files``."""

UPLOADING_ROLES = ("radiographer", "requester")


def upload_limits(request: web.Request) -> UploadLimits:
    settings = request.app[SETTINGS]
    return UploadLimits(
        settings.upload_max_file_mb << 20,
        settings.upload_max_request_mb << 20,
        settings.upload_max_expanded_mb << 20,
        settings.upload_max_expanded_file_mb << 20,
    )


async def part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A part's bytes in chunks, decoded from any Content-Transfer-Encoding."""
    while chunk := await part.read_chunk(1 << 20):
        yield part.decode(chunk)


def new_uploader(
    request: web.Request, via: str, expected_study: str | None = None
) -> StudyUploader:
    return StudyUploader(
        request.app[ORTHANC],
        request.app[DATABASE],
        current_user(request),
        client_ip(request),
        upload_limits(request),
        via=via,
        expected_study=expected_study,
    )


@routes.post("/api/studies")
@allow(*UPLOADING_ROLES)
@audited("study.upload", "study")
@documented(
    "Upload DICOM files or zip archives (multipart/form-data, field 'files')",
    body=UPLOAD_FORM,
    response=UploadResponse,
    body_media_type="multipart/form-data",
    errors=(413, 415),
)
async def upload_studies(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the files as multipart/form-data (field name 'files')",
        )
    uploader = new_uploader(request, "upload")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "bad_request", "nested multipart bodies are not supported")
            if part.filename is None:
                await part.release()
                continue
            await uploader.add_stream(part.filename, part_chunks(part))
    except UploadTooLarge as exc:
        raise ApiError(413, "too_large", "the upload is over the request size limit") from exc
    except (ValueError, BadHttpMessage) as exc:
        # aiohttp's multipart reader: no boundary, a malformed part header, or one that is not
        # ASCII (BadHttpMessage, found by fuzzing once the document declared this body)
        raise ApiError(400, "bad_multipart", f"the multipart body cannot be read: {exc}") from exc
    finally:
        uploader.close()
        record_upload(request, uploader)
    return await upload_answer(request, uploader)


def record_upload(request: web.Request, uploader: StudyUploader) -> None:
    """What the audit record of an upload says: studies, patients, files accepted and refused."""
    report = uploader.report
    audit = audit_context(request)
    audit.study_instance_uid = ",".join(report.studies)
    audit.patient_id = ",".join(sorted(report.patients))
    audit.detail |= {"accepted": report.accepted, "rejected": len(report.files) - report.accepted}


async def study_details(request: web.Request, uploader: StudyUploader) -> list[UploadedStudy]:
    """Per accepted study, what the uploader needs to recognise it and the link to follow."""
    received = uploader.report.studies_received()
    consultations = await request.app[DATABASE].read(
        consultation_store.consultations_of_studies,
        current_user(request).facility_id,
        [study.study_instance_uid for study in received],
    )
    details = []
    for study in received:
        consultation_id = consultations.get(study.study_instance_uid)
        details.append(
            UploadedStudy(
                **vars(study)
                | {
                    "consultation_id": consultation_id,
                    "consultation": f"/consultations/{consultation_id}"
                    if consultation_id
                    else None,
                }
            )
        )
    return details


async def upload_answer(request: web.Request, uploader: StudyUploader) -> web.Response:
    report = uploader.report
    answer = UploadResponse(
        files=[vars(f) for f in report.files],
        accepted=report.accepted,
        rejected=len(report.files) - report.accepted,
        studies=report.studies,
        study_details=await study_details(request, uploader),
    )
    if not report.files:
        raise ApiError(400, "no_files", "the request carried no files (field name 'files')")
    if report.accepted == 0:
        raise ApiError(
            400, "no_dicom_accepted", "none of the files could be stored", **answer.model_dump()
        )
    return web.json_response(answer.model_dump())
