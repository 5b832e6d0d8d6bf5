"""DICOMweb STOW-RS under the service (PS3.18 10.5): the uploader's facility is recorded here,
because Orthanc's DICOMweb plugin records no user and no address for STOW uploads.

Instances are checked and stored one by one, like web uploads, and the answer is the standard
STOW-RS response dataset in DICOM JSON (``application/dicom+json`` exactly), with retrieve URLs
pointing at the service: 200 when every instance was stored, 202 when some were not (their
Failed SOP Sequence items say why), 409 when none was (PS3.18 Table 10.5.3-1).
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from ...intake.uploads import UploadTooLarge
from ..access import allow
from ..auditing import audited
from ..errors import ApiError
from ..requests import public_base_url
from .dicomweb_query_routes import dicom_json
from .upload_routes import UPLOADING_ROLES, new_uploader, part_chunks, record_upload

routes = web.RouteTableDef()

# (0008,1198) Failed SOP Sequence reasons, PS3.18 Table I.2-1 / PS3.4 status codes.
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000


def _uid(value: str) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


@routes.post("/dicom-web/studies")
@routes.post("/dicom-web/studies/{study}")
@allow(*UPLOADING_ROLES)
@audited("study.stow", "study")
async def stow(request: web.Request) -> web.Response:
    if request.content_type != "multipart/related":
        raise ApiError(
            415,
            "unsupported_media_type",
            'STOW-RS takes multipart/related; type="application/dicom"',
        )
    target_study = request.match_info.get("study")
    uploader = new_uploader(request, "stow", target_study)
    try:
        reader = await request.multipart()
        index = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "bad_request", "nested multipart bodies are not supported")
            index += 1
            await uploader.add_stream(part.filename or f"part-{index}", part_chunks(part))
    except UploadTooLarge as exc:
        raise ApiError(413, "too_large", "the upload is over the request size limit") from exc
    finally:
        uploader.close()
        record_upload(request, uploader)
    base = f"{public_base_url(request)}/dicom-web/studies"
    referenced, failed = [], []
    for verdict in uploader.report.files:
        if verdict.status == "accepted":
            referenced.append(
                {
                    "00081150": _uid(verdict.sop_class_uid or ""),
                    "00081155": _uid(verdict.sop_instance_uid or ""),
                    "00081190": {
                        "vr": "UR",
                        "Value": [
                            f"{base}/{verdict.study_instance_uid}/instances/{verdict.sop_instance_uid}"
                        ],
                    },
                }
            )
        else:
            failed.append(
                {
                    "00081150": _uid(verdict.sop_class_uid or ""),
                    "00081155": _uid(verdict.sop_instance_uid or ""),
                    "00081197": {
                        "vr": "US",
                        "Value": [
                            CANNOT_UNDERSTAND
                            if verdict.sop_instance_uid is None
                            else PROCESSING_FAILURE
                        ],
                    },
                    # (0000,0902) Error Comment: the reason in words, as the upload gives it.
                    "00000902": {"vr": "LO", "Value": [(verdict.reason or "")[:64]]},
                }
            )
    body: dict = {}
    studies = {v.study_instance_uid for v in uploader.report.files if v.status == "accepted"}
    if len(studies) == 1:  # (0008,1190) Retrieve URL of the study the instances were stored in
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/{studies.pop()}"]}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else (202 if referenced else 409)
    return dicom_json(body, status=status)
