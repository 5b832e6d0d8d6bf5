"""WADO-RS under ``/dicom-web`` (PS3.18 10.4): a study, series or instance as DICOM files,
frames (``/frames/1,3,5``) and bulk data, each as ``multipart/related``.

The study is found through a consultation in the caller's scope (404 otherwise, at every
level). Retrieving DICOM objects writes one ``study.retrieved`` audit record naming the patient;
frames and bulk data serve viewing and are audited like the viewer's frames: once per session
and study, as ``study.viewed`` (docs/security.md). Instances are streamed from Orthanc one after
the other, never held whole; the Accept header picks the transfer syntax (docs/dicomweb.md).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ...audit import AuditEntry
from ...storage import RecordNotFound
from ...viewing import dicomweb_retrieve as wado
from ...viewing.dicomweb_media import (
    OCTETS,
    choose_frame_syntax,
    choose_instance_syntax,
    parse_accept,
)
from ...viewing.viewing import InstanceEntry
from ..access import allow
from ..auditing import (
    AuditContext,
    audit_context,
    audit_entry,
    audited,
    not_audited,
    record_before_streaming,
)
from ..errors import ApiError
from ..keys import ORTHANC, VIEWING, current_user
from ..middleware import PRIVATE_NO_STORE
from .openapi import documented
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

STUDY = "/dicom-web/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
ONCE = "authorised on every call; audited once per session and study as study.viewed"
MAX_FRAMES = 4096


class RelatedParts:
    """A ``multipart/related`` answer written part by part as data arrives (RFC 2387)."""

    def __init__(self, part_type: str) -> None:
        self.boundary = secrets.token_hex(16)
        self.response = web.StreamResponse(
            headers={
                "Content-Type": f'multipart/related; type="{part_type}"; boundary={self.boundary}',
                "Cache-Control": PRIVATE_NO_STORE,
            }
        )

    async def part(
        self, request: web.Request, content_type: str, body: bytes | AsyncIterator[bytes]
    ) -> None:
        if request.method == "HEAD":  # aiohttp would send a HEAD's body: the headers only
            return
        if not self.response.prepared:
            await self.response.prepare(request)
        head = f"--{self.boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        await self.response.write(head.encode())
        if isinstance(body, bytes):
            await self.response.write(body)
        else:
            async for chunk in body:
                await self.response.write(chunk)
        await self.response.write(b"\r\n")

    async def finish(self, request: web.Request) -> web.StreamResponse:
        if not self.response.prepared:
            await self.response.prepare(request)
        if request.method != "HEAD":
            await self.response.write(f"--{self.boundary}--\r\n".encode())
        await self.response.write_eof()
        return self.response


def _not_acceptable(what: str) -> ApiError:
    return ApiError(406, "not_acceptable", f"no media type in Accept that teleread serves {what}")


async def _retrieve(request: web.Request) -> web.StreamResponse:
    """The instances the path names, as application/dicom parts in the negotiated syntax."""
    choice = choose_instance_syntax(parse_accept(request.headers.get("Accept", "")))
    if choice is None:
        raise _not_acceptable('as multipart/related; type="application/dicom"')
    info = request.match_info
    row = await request.app[VIEWING].consultation_for(current_user(request), info["study"])
    orthanc = request.app[ORTHANC]
    found = await wado.stored_instances(
        orthanc, row["orthanc_study_id"], info.get("series"), info.get("instance")
    )
    context = audit_context(request)
    context.touches(row["patient_id"], row["study_instance_uid"], row["id"])
    context.detail |= {"via": request.path, "instances": len(found), "syntax": choice.syntax}
    answer = RelatedParts("application/dicom")
    if request.method == "HEAD":  # the headers only: no study read from Orthanc for nothing
        return await answer.finish(request)
    await record_before_streaming(request)
    for instance in found:
        syntax, body = await wado.instance_file(orthanc, instance.orthanc_id, choice.syntax)
        await answer.part(request, f"application/dicom; transfer-syntax={syntax}", body)
    return await answer.finish(request)


@routes.get(STUDY)
@allow(*WORKLIST_ROLES)
@audited("study.retrieved", "consultation")
@documented("WADO-RS: the study's DICOM instances (PS3.18 10.4; docs/dicomweb.md)", errors=(406,))
async def retrieve_study(request: web.Request) -> web.StreamResponse:
    return await _retrieve(request)


@routes.get(SERIES)
@allow(*WORKLIST_ROLES)
@audited("study.retrieved", "consultation")
@documented("WADO-RS: the series' DICOM instances (PS3.18 10.4)", errors=(406,))
async def retrieve_series(request: web.Request) -> web.StreamResponse:
    return await _retrieve(request)


@routes.get(INSTANCE)
@allow(*WORKLIST_ROLES)
@audited("study.retrieved", "consultation")
@documented("WADO-RS: one DICOM instance (PS3.18 10.4)", errors=(406,))
async def retrieve_instance(request: web.Request) -> web.StreamResponse:
    return await _retrieve(request)


# --- frames and bulk data (viewing) --------------------------------------------------------


async def _opened(request: web.Request, row: dict[str, Any]) -> None:
    """Audit the session's first access to this study as ``study.viewed`` (as the viewer's
    frames are: viewer_routes), and only that."""

    def entry() -> AuditEntry:
        context = AuditContext(resource_type="consultation", detail={"via": request.path})
        context.touches(row["patient_id"], row["study_instance_uid"], row["id"])
        return audit_entry(request, "study.viewed", context, 200)

    await request.app[VIEWING].first_access(current_user(request), row["study_instance_uid"], entry)


async def _image(request: web.Request) -> tuple[dict[str, Any], InstanceEntry]:
    info = request.match_info
    row, entry = await request.app[VIEWING].instance(
        current_user(request), info["study"], info["series"], info["instance"]
    )
    await _opened(request, row)
    return row, entry


def _frame_numbers(text: str, frames: int) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; 400 for anything else, 404 for a frame the image lacks."""
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise ApiError(
            400, "bad_request", "frames are numbers from 1, separated by commas"
        ) from exc
    if not numbers or len(numbers) > MAX_FRAMES or min(numbers) < 1:
        raise ApiError(400, "bad_request", "frames are numbers from 1, separated by commas")
    if max(numbers) > frames:
        raise RecordNotFound(f"frame {max(numbers)}")
    return numbers


async def _frames(request: web.Request, entry: InstanceEntry, numbers: list[int]) -> Any:
    orthanc = request.app[ORTHANC]
    stored = await wado.stored_syntax(orthanc, entry.orthanc_id)
    choice = choose_frame_syntax(parse_accept(request.headers.get("Accept", "")), stored)
    if choice is None:
        raise _not_acceptable(f"frames stored in {stored} as")
    bodies = await wado.frames(orthanc, entry.orthanc_id, numbers, choice)
    answer = RelatedParts(choice.part_type)
    for body in bodies:
        await answer.part(request, f"{choice.part_type}; transfer-syntax={choice.syntax}", body)
    return await answer.finish(request)


@routes.get(INSTANCE + "/frames/{frames}")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented("WADO-RS: frames of an image, e.g. /frames/1,3,5 (PS3.18 10.4)", errors=(406,))
async def retrieve_frames(request: web.Request) -> web.StreamResponse:
    _, entry = await _image(request)
    numbers = _frame_numbers(request.match_info["frames"], entry.frames)
    return await _frames(request, entry, numbers)


@routes.get(INSTANCE + "/bulk/{path:.+}")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented("WADO-RS: bulk data a metadata BulkDataURI names (PS3.18 10.4)", errors=(406,))
async def retrieve_bulkdata(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    path = info["path"].upper()
    if path == wado.PIXEL_DATA:
        _, entry = await _image(request)
        return await _frames(request, entry, list(range(1, entry.frames + 1)))
    row = await request.app[VIEWING].consultation_for(current_user(request), info["study"])
    found = await wado.stored_instances(
        request.app[ORTHANC], row["orthanc_study_id"], info["series"], info["instance"]
    )
    await _opened(request, row)
    value = await wado.bulk_value(request.app[ORTHANC], found[0].orthanc_id, path)
    answer = RelatedParts(OCTETS)
    await answer.part(request, OCTETS, value)
    return await answer.finish(request)
