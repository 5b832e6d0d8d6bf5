"""Opening a study in the viewer: who may, what it holds (the manifest), and its priors.

A study is reached through a consultation the caller may see (facility scope in SQL); its layout
(series, instances, sizes, windows, Orthanc ids) is read once from Orthanc's DICOMweb metadata and
kept briefly, so a frame request costs a dictionary look-up, not a database and Orthanc round trip.
The layout is also stored in the database (``study_layouts``) for the other web processes: the
one that serves the next frame reads it there instead of asking Orthanc again. The ingest has it
built as soon as a study is stable (:meth:`Viewing.study_stable`), so even a study's first
opening reads its layout from the database: for a never-opened 150-slice CT, Orthanc's metadata
answer was about 200 ms of the 456 ms to the first image (bench/viewer_speed.py).
Positive scope answers are cached for a few seconds per (scope, study): a revoked consultation
stops being served within that time, and another facility's scope never shares an entry.

Openings (who has opened which study) are recorded in the database, not only here, because
several processes may serve one session's frames: the first to record an opening writes its
``study.viewed`` record in the same transaction, the others write nothing. This process also
remembers the openings it has seen, so a frame of a study already open costs no database call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from viewer.frames import is_colour

from ..audit import AuditEntry
from ..auth.access import consultation_scope
from ..auth.sessions import CurrentUser
from ..caching import LruCache
from ..clock import to_iso, utc_now
from ..runtime.orthanc.client import OrthancClient
from ..runtime.orthanc.stored_files import StoredFiles
from ..storage import Database, RecordNotFound
from ..storage import viewing as store
from .study_metadata import study_metadata

log = logging.getLogger(__name__)

SCOPE_TTL = 10.0
INDEX_TTL = 60.0
REFRESH_AFTER = 5.0
MAX_CACHED = 256
PREPARING_AT_ONCE = 1  # layouts built for stable studies at a time (a reconcile may ask many)
OPENED_TTL = 12 * 3600.0
OPENINGS_KEPT = timedelta(hours=24)
PRUNE_EVERY = 60.0


@dataclass(frozen=True)
class InstanceEntry:
    """One image instance as the viewer needs it (tags from PS3.3 C.7.6.3 Image Pixel)."""

    uid: str
    orthanc_id: str
    series_uid: str
    number: int | None
    frames: int
    rows: int
    columns: int
    pixel_spacing: list[float] | None
    spacing_source: str | None
    photometric: str
    windows: list[dict[str, float]]
    slice_location: float | None
    overlays: bool = False
    # Geometry for orientation markers and for matching slices with a prior (PS3.3 C.7.6.2,
    # C.7.4.1); defaults keep layouts stored before these fields readable.
    orientation: list[float] | None = None
    position: list[float] | None = None
    patient_orientation: list[str] | None = None
    frame_of_reference: str = ""
    # The attachment Orthanc stored the file as (``FileUuid``, ``FileSize`` of its instance
    # listing), for reading it from the managed Orthanc's storage area (stored_files.py); empty
    # in layouts stored before, whose files are read over HTTP.
    file_uuid: str = ""
    file_size: int = 0

    @property
    def colour(self) -> bool:
        return is_colour(self.photometric)


@dataclass(frozen=True)
class SeriesEntry:
    uid: str
    number: int | None
    modality: str
    description: str
    body_part: str
    instances: tuple[InstanceEntry, ...]


@dataclass(frozen=True)
class StudyIndex:
    """A study's image layout, ordered as the viewer shows it."""

    uid: str
    orthanc_id: str
    study: dict[str, Any]
    series: tuple[SeriesEntry, ...]
    instances: dict[str, InstanceEntry] = field(repr=False)
    built_at: float = field(default_factory=time.monotonic)


def _value(item: dict[str, Any], tag: str, default: Any = None) -> Any:
    values = item.get(tag, {}).get("Value")
    if not values:
        return default
    first = values[0]
    if isinstance(first, dict):  # PN: {"Alphabetic": ...}
        return first.get("Alphabetic", default)
    return first


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value") or [])


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _spacing(item: dict[str, Any]) -> tuple[list[float] | None, str | None]:
    """(0028,0030) Pixel Spacing, else (0018,1164) Imager Pixel Spacing (at the detector)."""
    for tag, source in (("00280030", "PixelSpacing"), ("00181164", "ImagerPixelSpacing")):
        spacing = [_float(v) for v in _values(item, tag)]
        if len(spacing) == 2 and all(s is not None and s > 0 for s in spacing):
            return [float(s) for s in spacing if s is not None], source
    return None, None


def _windows(item: dict[str, Any]) -> list[dict[str, float]]:
    """(0028,1050) Window Center / (0028,1051) Window Width pairs."""
    centres, widths = _values(item, "00281050"), _values(item, "00281051")
    pairs = []
    for centre, width in zip(centres, widths, strict=False):
        c, w = _float(centre), _float(width)
        if c is not None and w is not None and w > 0:
            pairs.append({"center": c, "width": w})
    return pairs


def _instance(
    item: dict[str, Any], orthanc_id: str, file: tuple[str, int] = ("", 0)
) -> InstanceEntry:
    spacing, source = _spacing(item)
    return InstanceEntry(
        uid=_value(item, "00080018", ""),
        orthanc_id=orthanc_id,
        series_uid=_value(item, "0020000E", ""),
        number=_int(_value(item, "00200013")),
        frames=max(1, _int(_value(item, "00280008")) or 1),
        rows=_int(_value(item, "00280010")) or 0,
        columns=_int(_value(item, "00280011")) or 0,
        pixel_spacing=spacing,
        spacing_source=source,
        photometric=str(_value(item, "00280004", "MONOCHROME2")),
        windows=_windows(item),
        slice_location=_float(_value(item, "00201041")),
        overlays=_has_overlays(item),
        orientation=_numbers(item, "00200037", 6),
        position=_numbers(item, "00200032", 3),
        patient_orientation=[str(v) for v in _values(item, "00200020")][:2] or None,
        frame_of_reference=str(_value(item, "00200052", "")),
        file_uuid=file[0],
        file_size=file[1],
    )


def _numbers(item: dict[str, Any], tag: str, count: int) -> list[float] | None:
    """A multi-valued DS such as (0020,0037) *Image Orientation (Patient)*: exactly ``count``
    numbers, else None (a malformed value gives no markers rather than wrong ones)."""
    numbers = [_float(v) for v in _values(item, tag)]
    if len(numbers) != count or any(n is None for n in numbers):
        return None
    return [float(n) for n in numbers if n is not None]


def _has_overlays(item: dict[str, Any]) -> bool:
    """Whether any (60xx,3000) Overlay Data is present (xx even, 00..1E; PS3.3 C.9.2)."""
    return any(f"60{g:02X}3000" in item for g in range(0, 0x20, 2))


def build_index(
    study_uid: str,
    orthanc_id: str,
    metadata: list[dict[str, Any]],
    ids: dict[str, str],
    files: dict[str, tuple[str, int]] | None = None,
) -> StudyIndex:
    """Order DICOMweb instance metadata into series and instances (images only: Rows present).

    ``ids`` maps SOP Instance UIDs to Orthanc instance ids, ``files`` to the attachment uuid
    and size Orthanc lists for each.
    """
    series: dict[str, list[InstanceEntry]] = {}
    series_tags: dict[str, dict[str, Any]] = {}
    for item in metadata:
        sop = _value(item, "00080018", "")
        if sop not in ids or not _value(item, "00280010"):
            continue  # reports (SR, encapsulated PDF) and unknown objects are not images
        entry = _instance(item, ids[sop], (files or {}).get(sop, ("", 0)))
        series.setdefault(entry.series_uid, []).append(entry)
        series_tags.setdefault(entry.series_uid, item)
    entries = []
    for uid, instances in series.items():
        item = series_tags[uid]
        instances.sort(key=lambda i: (i.number is None, i.number or 0, i.slice_location or 0.0))
        entries.append(
            SeriesEntry(
                uid=uid,
                number=_int(_value(item, "00200011")),
                modality=_value(item, "00080060", ""),
                description=_value(item, "0008103E", ""),
                body_part=_value(item, "00180015", ""),
                instances=tuple(instances),
            )
        )
    entries.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
    first = metadata[0] if metadata else {}
    study = {
        "uid": study_uid,
        "date": _value(first, "00080020", ""),
        "time": _value(first, "00080030", ""),
        "description": _value(first, "00081030", ""),
        "accession_number": _value(first, "00080050", ""),
        "modality": entries[0].modality if entries else _value(first, "00080060", ""),
        "patient": {
            "name": _value(first, "00100010", ""),
            "id": _value(first, "00100020", ""),
            "sex": _value(first, "00100040", ""),
            "birth_date": _value(first, "00100030", ""),
        },
    }
    instances = {i.uid: i for s in entries for i in s.instances}
    return StudyIndex(study_uid, orthanc_id, study, tuple(entries), instances)


def index_to_json(index: StudyIndex) -> dict[str, Any]:
    """A study layout as JSON, to share it with the other web processes (study_layouts)."""
    return {
        "uid": index.uid,
        "orthanc_id": index.orthanc_id,
        "study": index.study,
        "series": [asdict(series) for series in index.series],
    }


def index_from_json(data: dict[str, Any], built_at: float) -> StudyIndex:
    """The layout :func:`index_to_json` wrote; ``built_at`` on this process's monotonic clock."""
    series = tuple(
        SeriesEntry(
            **{
                **s,
                "instances": tuple(InstanceEntry(**i) for i in s["instances"]),
            }
        )
        for s in data["series"]
    )
    instances = {i.uid: i for s in series for i in s.instances}
    return StudyIndex(data["uid"], data["orthanc_id"], data["study"], series, instances, built_at)


class Viewing:
    """Resolves studies for users, builds manifests, records who has opened what."""

    def __init__(
        self, database: Database, orthanc: OrthancClient, files: StoredFiles | None = None
    ) -> None:
        self.database, self.orthanc = database, orthanc
        self._files = files
        self._access: LruCache[Any, Any] = LruCache(4096, ttl=SCOPE_TTL)
        self._indexes: LruCache[Any, Any] = LruCache(MAX_CACHED, ttl=INDEX_TTL)
        self._opened: LruCache[Any, Any] = LruCache(100_000, ttl=OPENED_TTL)
        self._pruned_at: float | None = None
        self._building: dict[tuple[str, str], asyncio.Future[StudyIndex]] = {}
        self._sharing: set[asyncio.Future[None]] = set()
        self._preparing = asyncio.Semaphore(PREPARING_AT_ONCE)
        self._prepares: set[asyncio.Future[None]] = set()

    async def consultation_for(self, user: CurrentUser, study_uid: str) -> dict[str, Any]:
        """The in-scope consultation of a study; RecordNotFound (404) otherwise."""
        scope = consultation_scope(user)
        key = (scope, study_uid)
        row = self._access.get(key)
        if row is None:
            row = await self.database.read(store.viewable_study, study_uid, scope)
            self._access.put(key, row)
        return row

    async def index(self, study_uid: str, orthanc_id: str, fresh: bool = False) -> StudyIndex:
        """The study's layout from Orthanc, cached for a minute (``fresh``: re-read it if it
        is more than a few seconds old, for an instance that arrived since)."""
        index = self._indexes.get(study_uid)
        stale = fresh and index is not None and time.monotonic() - index.built_at > REFRESH_AFTER
        if index is not None and index.orthanc_id == orthanc_id and not stale:
            return index
        key = (study_uid, orthanc_id)
        building = self._building.get(key)
        if building is None:  # one read of Orthanc however many requests wait for it
            building = asyncio.ensure_future(self._read_index(study_uid, orthanc_id, fresh))
            self._building[key] = building
            building.add_done_callback(lambda _: self._building.pop(key, None))
        return await asyncio.shield(building)

    async def _read_index(self, study_uid: str, orthanc_id: str, fresh: bool) -> StudyIndex:
        """The layout another process or the ingest stored if it is still good, else read from
        Orthanc (which opens every file of the study to answer) and stored for the others.

        A stored layout is good for a minute, or as long as it is kept when the ingest built it
        at the study's StableStudy (it is rebuilt at the next one); ``fresh`` (an instance the
        layout lacks was asked for) trusts neither beyond a few seconds."""
        stored = await self.database.read(store.study_layout, study_uid)
        if stored is not None and stored["orthanc_study_id"] == orthanc_id:
            age = max(0.0, time.time() - stored["built_at"])
            recent = age < INDEX_TTL or bool(stored["stable"])
            if recent and not (fresh and age > REFRESH_AFTER):
                index = index_from_json(json.loads(stored["layout"]), time.monotonic() - age)
                self._indexes.put(study_uid, index)
                self._note_files(index)
                return index
        index = await self._index_from_orthanc(study_uid, orthanc_id)
        self._share(index)
        return index

    async def _index_from_orthanc(self, study_uid: str, orthanc_id: str) -> StudyIndex:
        listing = await self.orthanc.get(f"/studies/{orthanc_id}/instances")
        ids = {i["MainDicomTags"].get("SOPInstanceUID", ""): i["ID"] for i in listing}
        files = {
            i["MainDicomTags"].get("SOPInstanceUID", ""): (
                str(i.get("FileUuid") or ""),
                int(i.get("FileSize") or 0),
            )
            for i in listing
        }
        metadata = await study_metadata(self.orthanc, orthanc_id, study_uid)
        index = build_index(study_uid, orthanc_id, metadata, ids, files)
        self._indexes.put(study_uid, index)
        self._note_files(index)
        return index

    def _note_files(self, index: StudyIndex) -> None:
        """Tell the file reader where Orthanc stored each instance of the layout."""
        if self._files is not None:
            for entry in index.instances.values():
                if entry.file_uuid:
                    self._files.note(entry.orthanc_id, entry.file_uuid, entry.file_size)

    def study_stable(self, study_uid: str, orthanc_id: str) -> None:
        """The ingest made (or refreshed) a consultation of this study: build its layout now,
        in the background, and store it as stable, so that its first opening finds it."""
        task = asyncio.ensure_future(self._prepare(study_uid, orthanc_id))
        self._prepares.add(task)
        task.add_done_callback(self._prepared)

    async def _prepare(self, study_uid: str, orthanc_id: str) -> None:
        async with self._preparing:
            index = await self._index_from_orthanc(study_uid, orthanc_id)
            await self._store(index, stable=True)

    def _share(self, index: StudyIndex) -> None:
        """Store the layout for the other web processes, in the background: it is a cache, so
        a busy or failing write must neither delay nor fail the request that built it."""
        task = asyncio.ensure_future(self._store(index))
        self._sharing.add(task)
        task.add_done_callback(self._shared)

    async def _store(self, index: StudyIndex, stable: bool = False) -> None:
        layout = json.dumps(index_to_json(index), separators=(",", ":"))
        await self.database.write(
            store.save_study_layout, index.uid, index.orthanc_id, time.time(), layout, stable
        )

    async def close(self) -> None:
        """Let layouts being stored finish (the database closes after this); layouts still
        to be built for stable studies are not (their first opening builds them)."""
        for task in self._prepares:
            task.cancel()
        await asyncio.gather(*self._prepares, return_exceptions=True)
        await asyncio.gather(*self._sharing, return_exceptions=True)

    def _prepared(self, task: asyncio.Future[None]) -> None:
        self._prepares.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not build the layout of a stable study: %s", task.exception())

    def _shared(self, task: asyncio.Future[None]) -> None:
        self._sharing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not store a study layout: %s", task.exception())

    async def study(self, user: CurrentUser, study_uid: str) -> tuple[dict[str, Any], StudyIndex]:
        row = await self.consultation_for(user, study_uid)
        return row, await self.index(study_uid, row["orthanc_study_id"])

    async def instance(
        self, user: CurrentUser, study_uid: str, series_uid: str, instance_uid: str
    ) -> tuple[dict[str, Any], InstanceEntry]:
        """An image of an in-scope study; 404 when the series or instance is not in it."""
        row, index = await self.study(user, study_uid)
        entry = index.instances.get(instance_uid)
        if entry is None:
            index = await self.index(study_uid, row["orthanc_study_id"], fresh=True)
            entry = index.instances.get(instance_uid)
        if entry is None or entry.series_uid != series_uid:
            raise RecordNotFound(f"instance {instance_uid}")
        return row, entry

    def series(self, index: StudyIndex, series_uid: str) -> SeriesEntry:
        for entry in index.series:
            if entry.uid == series_uid:
                return entry
        raise RecordNotFound(f"series {series_uid}")

    async def first_access(
        self, user: CurrentUser, study_uid: str, audit: Callable[[], AuditEntry]
    ) -> bool:
        """True once per (session or token, study) across every process: the access that is
        audited, with ``audit()``'s record written in the transaction that decided it.

        A study this process already knows is open costs a dictionary look-up (a reader
        scrolling a stack); otherwise one write records the opening, whoever wins the race.
        """
        opening = self._opening(user, study_uid)
        if self._opened.get(opening):
            return False
        first = await self.database.write(
            store.open_study, opening, to_iso(utc_now()), audit(), prune_before=self._prune()
        )
        self._opened.put(opening, True)
        return first

    async def _mark_opened(self, user: CurrentUser, study_uid: str) -> None:
        """Record an opening audited elsewhere (the manifest's route audits every call), so no
        process audits the frames that follow."""
        opening = self._opening(user, study_uid)
        if self._opened.get(opening):
            return
        await self.database.write(
            store.open_study, opening, to_iso(utc_now()), prune_before=self._prune()
        )
        self._opened.put(opening, True)

    @staticmethod
    def _opening(user: CurrentUser, study_uid: str) -> store.Opening:
        return store.Opening(user.id, user.session_id or 0, user.api_token_id or 0, study_uid)

    def _prune(self) -> str | None:
        """Openings recorded before this may be forgotten (at most once a minute per process,
        in a write that happens anyway): a session still reading a day later is audited once
        more, and the table holds about a day of openings."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return None
        self._pruned_at = now
        return to_iso(utc_now() - OPENINGS_KEPT)

    async def manifest(
        self, user: CurrentUser, consultation_id: int
    ) -> tuple[dict[str, Any], StudyIndex]:
        """The viewer's manifest (docs/viewer.md) and the index it came from."""
        scope = consultation_scope(user)
        row = await self.database.read(store.viewable_consultation, consultation_id, scope)
        uid = row["study_instance_uid"]
        self._access.put((scope, uid), row)
        index = await self.index(uid, row["orthanc_study_id"])
        prior_rows = await self.database.read(store.priors, row["patient_id"], row["id"], scope)
        await self._mark_opened(user, uid)
        return manifest_json(row, index, prior_rows), index


def manifest_json(
    row: dict[str, Any], index: StudyIndex, prior_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    base = f"/dicom-web/studies/{index.uid}/series"
    series = []
    for s in index.series:
        instances = []
        for i in s.instances:
            path = f"{s.uid}/instances/{i.uid}/frames/1"
            instances.append(
                {
                    "uid": i.uid,
                    "number": i.number,
                    "frames": i.frames,
                    "rows": i.rows,
                    "columns": i.columns,
                    "pixel_spacing": i.pixel_spacing,
                    "spacing_source": i.spacing_source,
                    "photometric": i.photometric,
                    "windows": i.windows,
                    "slice_location": i.slice_location,
                    "overlays": i.overlays,
                    "orientation": i.orientation,
                    "position": i.position,
                    "patient_orientation": i.patient_orientation,
                    "frame_of_reference": i.frame_of_reference,
                    "rendered": f"{base}/{path}/rendered",
                    "values": f"/api/viewer/studies/{index.uid}/series/{path}/values",
                    "overlay": f"/api/viewer/studies/{index.uid}/series/{path}/overlay",
                }
            )
        series.append(
            {
                "uid": s.uid,
                "number": s.number,
                "modality": s.modality,
                "description": s.description,
                "body_part": s.body_part,
                "thumbnail": f"{base}/{s.uid}/thumbnail",
                "instances": instances,
            }
        )
    study = {**index.study, "facility_name": row["facility_name"]}
    return {
        "consultation_id": row["id"],
        "study": study,
        "series": series,
        "priors": prior_rows,
    }
