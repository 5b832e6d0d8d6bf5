"""Several frames' modality values of one series in one answer (service/viewing/value_batches.py).

Beside the per-frame ``values`` route (viewer_routes.py), which stays: the viewer page asks for
the frame in view through it, then for the rest of the series in batches. Scoped, cached and
audited exactly as ``values``: the study must be a consultation in the caller's facility scope
and every instance must belong to the series named (else 404, never 403); the answer is
``private, no-store``; only the session's first access to the study is audited
(``study.viewed``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...storage import RecordNotFound
from ...viewing.rendering import FrameRef
from ...viewing.value_batches import (
    MOST_FRAMES,
    PACKINGS,
    BadFrameList,
    FrameRequest,
    FrameValues,
    pack,
    parse_frames,
)
from ...viewing.viewing import InstanceEntry, StudyIndex
from ..access import allow
from ..auditing import not_audited
from ..compression import compressed
from ..errors import ApiError
from ..keys import RENDER_WORKERS, VIEWING, current_user
from ..middleware import PRIVATE_NO_STORE
from .openapi import documented
from .viewer_routes import ONCE, _opened
from .worklist_routes import WORKLIST_ROLES

routes = web.RouteTableDef()

FRAMES_PARAMETER = {
    "name": "frames",
    "in": "query",
    "required": True,
    "schema": {"type": "string"},
    "description": f"instance:frame pairs (SOP Instance UID, frame from 1), comma-separated, 1 to"
    f" {MOST_FRAMES}",
}

PACKING_PARAMETER = {
    "name": "packing",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(PACKINGS)},
    "description": "delta8: int16 frames as byte differences (docs/viewer.md); absent: as they are",
}


async def _entries(
    request: web.Request, index: StudyIndex, frames: list[FrameRequest]
) -> list[InstanceEntry]:
    """Each frame's instance, which must be in the series the path names (else 404); the study's
    layout is read again once if an instance is not in it yet (as the per-frame route does)."""
    viewing, info = request.app[VIEWING], request.match_info
    if any(f.instance not in index.instances for f in frames):
        index = await viewing.index(info["study"], index.orthanc_id, fresh=True)
    entries = []
    for f in frames:
        entry = index.instances.get(f.instance)
        if entry is None or entry.series_uid != info["series"] or f.frame > entry.frames:
            raise RecordNotFound(f"frame {f.frame} of instance {f.instance}")
        entries.append(entry)
    return entries


async def _values(request: web.Request, entry: InstanceEntry, f: FrameRequest) -> FrameValues:
    """One frame's values, or why it has none (colour; pixels no decoder reads)."""
    from viewer import UndecodableFrame

    if entry.colour:
        return FrameValues(f, status=409, error="colour_image")
    ref = FrameRef(entry.uid, entry.orthanc_id, f.frame - 1, entry.frames)
    workers = request.app[RENDER_WORKERS]
    try:
        data, dtype = await workers.values(ref)
    except UndecodableFrame as exc:
        workers.undecodable.report(entry.uid, exc)
        return FrameValues(f, status=422, error="undecodable_image")
    return FrameValues(f, data, dtype, entry.rows, entry.columns, entry.photometric)


@routes.get(r"/api/viewer/studies/{study}/series/{series}/values")
@allow(*WORKLIST_ROLES)
@not_audited(ONCE)
@documented(
    "Several frames' modality values of a series in one body: a JSON index, then each frame's"
    " raw little-endian values (docs/viewer.md); zstd or gzip as Accept-Encoding weighs them",
    response_media_type="application/octet-stream",
    parameters=(FRAMES_PARAMETER, PACKING_PARAMETER),
    errors=(400, 404),
)
async def series_values(request: web.Request) -> web.Response:
    viewing = request.app[VIEWING]
    row, index = await viewing.study(current_user(request), request.match_info["study"])
    viewing.series(index, request.match_info["series"])
    try:
        frames = parse_frames(request.query.get("frames", ""))
    except BadFrameList as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    packing = request.query.get("packing")
    if packing is not None and packing not in PACKINGS:
        raise ApiError(400, "bad_request", f"packing must be one of {', '.join(PACKINGS)}")
    entries = await _entries(request, index, frames)
    await _opened(request, row)
    answers = await asyncio.gather(
        *(_values(request, e, f) for e, f in zip(entries, frames, strict=True))
    )
    packed = await asyncio.to_thread(pack, list(answers), packing)
    body, encoding = await compressed(request, packed)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Cache-Control": PRIVATE_NO_STORE, **encoding},
    )
