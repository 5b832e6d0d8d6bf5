"""Key images (图文报告, issue 19): the reader marks the images that show what the report means.

Only whoever may write the report now marks or unmarks (the claim holder, or the author of a
correction: :func:`service.reports.authoring.check_may_write`). Each mark keeps the view as the
reader saw it (window, zoom, pan, rotation, flips, inversion, measurements) and a caption. At
signing every mark is rendered by ``viewer.key_image`` into the version's figures, which the
canonical form's digests cover, the PDF prints (the first :data:`PRINTED`) and the portal shows;
delivery stores a Key Object Selection document naming them with the study (key_object.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydicom
import sqlite_utils

from viewer import Window, decode_frame
from viewer.key_image import KeyImageView, Measurement, figure_png

from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..clock import to_iso
from ..runtime.orthanc.client import OrthancClient
from ..storage import Conflict, Database, RecordNotFound
from ..storage import consultations as consultation_store
from ..storage import key_images as store
from .authoring import WRITING_ROLES, NotAuthor, check_may_write
from .document import ReportFigure
from .pdf import CJK_FONT_FILES

#: At most this many marks per report; the PDF prints the first PRINTED of them.
MAX_MARKED = 8
PRINTED = 4
#: The editor's thumbnails: the same pipeline, smaller.
THUMBNAIL_SIDE = 320


class TooManyKeyImages(Conflict):
    """The report already has :data:`MAX_MARKED` key images."""


@dataclass(frozen=True)
class KeyFigure:
    """A rendered key image with the instance it shows (the KOS references it)."""

    figure: ReportFigure
    series_instance_uid: str
    sop_instance_uid: str
    frame: int
    consultation_id: int = 0
    mark: tuple[int, str, str] = (0, "", "")
    """The mark it was rendered from: id, caption, view (JSON), to check it did not change."""

    def row(self) -> dict[str, Any]:
        return {
            "series_instance_uid": self.series_instance_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "caption": self.figure.caption,
            "label": self.figure.label,
            "sha256": self.figure.sha256,
            "png": self.figure.png,
        }


def _writable(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> dict[str, Any]:
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    check_may_write(db, row, user, now)
    return row


def consultation_to_mark(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser, now: datetime
) -> dict[str, Any]:
    """The consultation if ``user`` may mark its key images now (NotAuthor, 404 if not)."""
    return _writable(db, consultation_id, user, now)


def mark(
    db: sqlite_utils.Database,
    consultation_id: int,
    user: CurrentUser,
    values: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Add a key image (one transaction); the stored mark."""
    _writable(db, consultation_id, user, now)
    if store.count_marks(db, consultation_id) >= MAX_MARKED:
        raise TooManyKeyImages(
            "too_many_key_images", f"a report has at most {MAX_MARKED} key images"
        )
    values = values | {"marked_by": user.id, "marked_at": to_iso(now)}
    mark_id = store.add_mark(db, consultation_id, values)
    return store.get_mark(db, consultation_id, mark_id)


def unmark(
    db: sqlite_utils.Database,
    consultation_id: int,
    mark_id: int,
    user: CurrentUser,
    now: datetime,
) -> None:
    _writable(db, consultation_id, user, now)
    store.remove_mark(db, consultation_id, mark_id)


def marks_for_reader(
    db: sqlite_utils.Database, consultation_id: int, user: CurrentUser
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The consultation and its draft's key images: readers only, within their scope."""
    if user.role not in WRITING_ROLES:
        raise NotAuthor("not_author", "key images of a draft are for its readers")
    row = consultation_store.get_consultation(db, consultation_scope(user), consultation_id)
    return row, store.marks_of(db, consultation_id)


def one_mark_for_reader(
    db: sqlite_utils.Database, consultation_id: int, mark_id: int, user: CurrentUser
) -> tuple[dict[str, Any], dict[str, Any]]:
    row, _ = marks_for_reader(db, consultation_id, user)
    return row, store.get_mark(db, consultation_id, mark_id)


# --- the view as stored -> what viewer.key_image draws -----------------------------------------


def view_of(stored: dict[str, Any]) -> KeyImageView:
    """The stored JSON view (validated at the HTTP edge) as a :class:`KeyImageView`."""
    window = stored.get("window")
    measurements = tuple(
        Measurement(
            m["type"], tuple((float(p["x"]), float(p["y"])) for p in m["points"]), m.get("text", "")
        )
        for m in stored.get("measurements", [])
    )
    return KeyImageView(
        viewport=(float(stored["viewport"][0]), float(stored["viewport"][1])),
        window=Window(float(window["center"]), float(window["width"])) if window else None,
        invert=bool(stored.get("invert")),
        rotation=int(stored.get("rotation", 0)) % 4,
        flip_h=bool(stored.get("flip_h")),
        flip_v=bool(stored.get("flip_v")),
        scale=float(stored["scale"]) if stored.get("scale") is not None else None,
        pan=(float(stored.get("pan_x", 0)), float(stored.get("pan_y", 0))),
        measurements=measurements,
        overlays=bool(stored.get("overlays")),
    )


def _font_file():
    return next((path for path in CJK_FONT_FILES if path.exists()), None)


def render_mark(data: bytes, mark: dict[str, Any], long_side: int) -> bytes:
    """The PNG of one mark from its instance's Part-10 bytes (CPU work: call on a thread)."""
    frame = decode_frame(data, int(mark["frame"]) - 1)
    return figure_png(frame, view_of(mark["view"]), _font_file(), long_side)


def _label(data: bytes, mark: dict[str, Any]) -> str:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    label = f"Se {ds.get('SeriesNumber', '') or ''} Im {ds.get('InstanceNumber', '') or ''}"
    return label + (f" Fr {mark['frame']}" if int(mark["frame"]) > 1 else "")


async def instance_file(orthanc: OrthancClient, orthanc_study_id: str, sop_uid: str) -> bytes:
    """The Part-10 file of an instance of this study (RecordNotFound if the study lacks it)."""
    found = await orthanc.request(
        "POST", "/tools/lookup", data=sop_uid, headers={"Content-Type": "text/plain"}
    )
    for item in found or []:
        if item.get("Type") != "Instance":
            continue
        parents = await orthanc.get(f"/instances/{item['ID']}/study")
        if parents.get("ID") == orthanc_study_id:
            return await orthanc.get(f"/instances/{item['ID']}/file")
    raise RecordNotFound(f"instance {sop_uid} of the study")


async def render_one(
    orthanc: OrthancClient, consultation: dict[str, Any], mark: dict[str, Any], long_side: int
) -> bytes:
    data = await instance_file(
        orthanc, consultation["orthanc_study_id"] or "", mark["sop_instance_uid"]
    )
    return await asyncio.to_thread(render_mark, data, mark, long_side)


async def figures_to_sign(
    database: Database,
    orthanc: OrthancClient | None,
    consultation_id: int,
    user: CurrentUser,
    now: datetime,
) -> tuple[KeyFigure, ...]:
    """Every key image of the draft rendered for the version about to be signed (none without
    an archive to read the images from). Only for whoever may sign it: checked first."""
    if orthanc is None:
        return ()
    consultation = await database.read(consultation_to_mark, consultation_id, user, now)
    marks = await database.read(store.marks_of, consultation_id)
    figures = []
    for mark in marks:
        data = await instance_file(
            orthanc, consultation["orthanc_study_id"] or "", mark["sop_instance_uid"]
        )
        png = await asyncio.to_thread(render_mark, data, mark, 1024)
        label = await asyncio.to_thread(_label, data, mark)
        figure = ReportFigure(png, mark["caption"], label, hashlib.sha256(png).hexdigest())
        figures.append(
            KeyFigure(
                figure,
                mark["series_instance_uid"],
                mark["sop_instance_uid"],
                mark["frame"],
                consultation_id,
                _mark_key(mark),
            )
        )
    return tuple(figures)


def stored_figures(db: sqlite_utils.Database, version_id: int) -> tuple[ReportFigure, ...]:
    """A signed version's figures as its documents print them."""
    return as_report_figures(store.figures_of(db, version_id))


def as_report_figures(rows: list[dict[str, Any]]) -> tuple[ReportFigure, ...]:
    return tuple(ReportFigure(bytes(f["png"]), f["caption"], f["label"], f["sha256"]) for f in rows)


def save_review_figures(
    db: sqlite_utils.Database, review_id: int, figures: tuple[KeyFigure, ...]
) -> None:
    """Keep the figures of a text signed for review with the review (same checks as
    :func:`save_signed_figures`); the issued version copies them (``store.save_figures``)."""
    _check_unchanged(db, figures)
    store.save_review_figures(db, review_id, [f.row() for f in figures])


def _check_unchanged(db: sqlite_utils.Database, figures: tuple[KeyFigure, ...]) -> None:
    if figures:
        current = [_mark_key(m) for m in store.marks_of(db, figures[0].consultation_id)]
        if current != [f.mark for f in figures]:
            raise Conflict(
                "draft_changed", "the key images changed while signing: review and sign again"
            )


def _mark_key(mark: dict[str, Any]) -> tuple[int, str, str]:
    return mark["id"], mark["caption"], json.dumps(mark["view"], sort_keys=True)


def save_signed_figures(
    db: sqlite_utils.Database, version_id: int, figures: tuple[KeyFigure, ...]
) -> None:
    """Keep the figures with the version (in the signing transaction), provided the marks they
    were rendered from are still exactly the draft's (``draft_changed`` otherwise, which rolls
    the signature back like a text changed meanwhile)."""
    _check_unchanged(db, figures)
    store.save_figures(db, version_id, [f.row() for f in figures])
