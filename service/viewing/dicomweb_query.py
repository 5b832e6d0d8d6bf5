"""QIDO-RS (PS3.18 10.6): searching the caller's studies, series and instances.

Which studies a caller may find is decided in SQL, with the caller's scope, the study-level
matching keys and the paging (service/storage/dicomweb.py): the same rule as the worklist, and
``offset``/``limit`` count only what the caller may see. Series and instances are read from the
metadata of those studies' own Orthanc studies (never looked up by UID alone, see
study_metadata.py) and matched here; a page of them walks the caller's matching studies in order
until it is full, so it too counts only what the caller may see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..runtime.orthanc.client import OrthancClient, OrthancError, OrthancUnavailable
from ..storage import Database
from ..storage import dicomweb as store
from ..storage.scope import Scope
from .dicomweb_attributes import (
    BadAttribute,
    date_range,
    element,
    first_text,
    from_text,
    matches,
    tag_of,
)
from .study_metadata import study_metadata

MAX_RESULTS = 1000
"""The most results one answer holds (PS3.18 8.3.4.4: more need ``offset``; a Warning says so)."""
STUDY_BATCH = 50
PARALLEL = 8
ALL = "all"

# Study-level return attributes (PS3.18 Table 10.6.3-3); patient ones included.
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
RETRIEVE_URL, AVAILABILITY = "00081190", "00080056"
STUDY_TAGS = (
    "00080005", "00080020", "00080030", "00080050", "00080090", "00081030", "00100010",
    "00100020", "00100030", "00100040", STUDY_UID, "00200010",
)  # fmt: skip
SERIES_TAGS = (
    "00080021", "00080031", "00080060", "0008103E", "00180015", SERIES_UID, "00200011",
    "00400244", "00400245", "00400275",
)  # fmt: skip
INSTANCE_TAGS = (
    "00080016", SOP_UID, "00200013", "00280008", "00280010", "00280011", "00280100",
)  # fmt: skip

# Study-level keys matched in SQL, and the StudyMatch field each fills.
SQL_KEYS = {
    STUDY_UID: "study_uids",
    "00100020": "patient_id",
    "00100010": "patient_name",
    "00100030": "patient_birth_date",
    "00100040": "patient_sex",
    "00080020": "study_date",
    "00080050": "accession_number",
    "00081030": "study_description",
    "00080061": "modalities",
}
RANGES = ("00100030", "00080020")


class BadQuery(ValueError):
    """A query the standard does not allow: the 400's reason."""


@dataclass(frozen=True)
class Query:
    """A parsed QIDO-RS query (PS3.18 8.3.4)."""

    keys: dict[str, str] = field(default_factory=dict)
    include: frozenset[str] = frozenset()
    include_all: bool = False
    limit: int = MAX_RESULTS
    offset: int = 0
    fuzzy: bool = False


@dataclass
class Answer:
    """The matches of a query, and what its audit record names."""

    items: list[dict[str, Any]] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    more: bool = False
    ignored: list[str] = field(default_factory=list)


def _number(name: str, text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise BadQuery(f"{name} must be a whole number") from exc
    if value < least:
        raise BadQuery(f"{name} must be at least {least}")
    return value


def parse_query(pairs: Iterable[tuple[str, str]]) -> Query:
    """A query string's pairs as a Query; BadQuery names the first wrong one."""
    keys: dict[str, str] = {}
    include: set[str] = set()
    include_all, limit, offset, fuzzy = False, MAX_RESULTS, 0, False
    for name, value in pairs:
        if name == "limit":
            limit = min(_number("limit", value, 1), MAX_RESULTS)
        elif name == "offset":
            offset = _number("offset", value, 0)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadQuery("fuzzymatching must be true or false")
            fuzzy = value == "true"
        elif name == "includefield":
            for part in (p.strip() for p in value.split(",")):
                if part == ALL:
                    include_all = True
                elif part:
                    include.add(_tag(part.split(".")[0]))
        else:
            if "." in name:
                raise BadQuery(f"{name}: matching on sequence attributes is not supported")
            tag = _tag(name)  # a repeated key is a list (UIDs, modalities)
            keys[tag] = f"{keys[tag]},{value}" if tag in keys else value
    return Query(keys, frozenset(include), include_all, limit, offset, fuzzy)


def _tag(name: str) -> str:
    try:
        return tag_of(name)
    except BadAttribute as exc:
        raise BadQuery(str(exc)) from exc


def _study_match(query: Query) -> store.StudyMatch:
    fields: dict[str, Any] = {}
    for tag, value in query.keys.items():
        name = SQL_KEYS.get(tag)
        if name is None or value in ("", "*"):
            continue
        if tag == STUDY_UID:
            fields[name] = tuple(u for u in value.replace("\\", ",").split(",") if u)
        elif tag == "00080061":
            fields[name] = tuple(m for m in value.replace("\\", ",").split(",") if m)
        elif tag in RANGES:
            bounds = date_range(value) or (value, value)
            fields[name] = store.DateRange(*bounds)
        else:
            name_key = tag == "00100010"
            fields[name] = store.Pattern(value, query.fuzzy and name_key, caseless=name_key)
    return store.StudyMatch(**fields)


# --- studies --------------------------------------------------------------------------------


async def search_studies(
    database: Database, orthanc: OrthancClient, scope: Scope, query: Query, base: str
) -> Answer:
    """The caller's studies matching ``query``, as DICOM JSON (PS3.18 Table 10.6.3-3)."""
    answer = Answer(ignored=[t for t in query.keys if t not in SQL_KEYS])
    rows = await database.read(
        store.matching_studies, scope, _study_match(query), query.limit + 1, query.offset
    )
    answer.more = len(rows) > query.limit
    rows = rows[: query.limit]
    limit = asyncio.Semaphore(PARALLEL)

    async def one(row: dict[str, Any]) -> dict[str, Any]:
        async with limit:
            return await _study_attributes(orthanc, row, query, base)

    answer.items = list(await asyncio.gather(*map(one, rows)))
    for row in rows:
        answer.studies.add(row["study_instance_uid"])
        if row["patient_id"]:
            answer.patients.add(row["patient_id"])
    return answer


async def _orthanc_json(orthanc: OrthancClient, path: str) -> Any:
    """An Orthanc resource, or None when it is gone (deleted or quarantined meanwhile)."""
    try:
        return await orthanc.get(path)
    except OrthancUnavailable:
        raise
    except OrthancError:
        return None


async def _study_attributes(
    orthanc: OrthancClient, row: dict[str, Any], query: Query, base: str
) -> dict[str, Any]:
    """One study's attributes: the ingest's row, Orthanc's main tags, and for an includefield
    they lack, the first instance's own."""
    found = await _orthanc_json(orthanc, f"/studies/{row['orthanc_study_id']}") or {}
    main = {**found.get("PatientMainDicomTags", {}), **found.get("MainDicomTags", {})}
    item: dict[str, Any] = {}
    if query.include_all:
        for keyword, text in main.items():
            try:
                item[tag_of(keyword)] = from_text(tag_of(keyword), str(text))
            except BadAttribute:
                continue
    item.update(
        {
            "00080005": element("00080005", "ISO_IR 192"),
            "00080020": element("00080020", row["study_date"]),
            "00080030": element("00080030", main.get("StudyTime", "")),
            "00080050": element("00080050", row["accession_number"]),
            AVAILABILITY: element(AVAILABILITY, "ONLINE"),
            "00080061": from_text("00080061", row["modalities"]),
            "00080090": element("00080090", main.get("ReferringPhysicianName", "")),
            "00081030": element("00081030", row["study_description"]),
            RETRIEVE_URL: element(RETRIEVE_URL, f"{base}/studies/{row['study_instance_uid']}"),
            "00100010": element("00100010", row["patient_name"]),
            "00100020": element("00100020", row["patient_id"]),
            "00100030": element("00100030", row["patient_birth_date"]),
            "00100040": element("00100040", row["patient_sex"]),
            STUDY_UID: element(STUDY_UID, row["study_instance_uid"]),
            "00200010": element("00200010", main.get("StudyID", "")),
            "00201206": element("00201206", len(found.get("Series", [])) or row["series_count"]),
            "00201208": element("00201208", row["instances_count"]),
        }
    )
    missing = [t for t in query.include if t not in item]
    if missing and found.get("Series"):
        first = await _first_instance(orthanc, found["Series"][0])
        item.update({t: first[t] for t in missing if t in first})
    return dict(sorted(item.items()))


async def _first_instance(orthanc: OrthancClient, series_id: str) -> dict[str, Any]:
    """The DICOM JSON of a series' first instance (Orthanc's simplified tags, typed here)."""
    series = await _orthanc_json(orthanc, f"/series/{series_id}") or {}
    for instance_id in series.get("Instances", [])[:1]:
        tags = await _orthanc_json(orthanc, f"/instances/{instance_id}/tags?short") or {}
        return {
            tag.replace(",", "").upper(): from_text(tag.replace(",", "").upper(), value)
            for tag, value in tags.items()
            if isinstance(value, str)
        }
    return {}


# --- series and instances ------------------------------------------------------------------


async def _studies(
    database: Database, scope: Scope, query: Query, study: dict[str, Any] | None
) -> AsyncIterator[dict[str, Any]]:
    """The studies to look into: the one named, else the caller's matching ones, in order."""
    if study is not None:
        yield study
        return
    match, offset = _study_match(query), 0
    while True:
        rows = await database.read(store.matching_studies, scope, match, STUDY_BATCH, offset)
        for row in rows:
            yield row
        if len(rows) < STUDY_BATCH:
            return
        offset += STUDY_BATCH


def _python_keys(query: Query, study: dict[str, Any] | None) -> dict[str, str]:
    """The keys matched here: all of them within one study, else those SQL did not match."""
    if study is not None:
        return dict(query.keys)
    return {t: v for t, v in query.keys.items() if t not in SQL_KEYS}


def _copy(source: dict[str, Any], tags: Iterable[str], into: dict[str, Any]) -> None:
    for tag in tags:
        value = source.get(tag)
        if value is not None and "BulkDataURI" not in value and "InlineBinary" not in value:
            into[tag] = value


def _record(
    source: dict[str, Any], default_tags: Iterable[str], query: Query, extra: dict[str, Any]
) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if query.include_all:
        _copy(source, [t for t in source if t != "7FE00010"], item)
    _copy(source, (*STUDY_TAGS, *default_tags, *query.keys, *query.include), item)
    item.update(extra)
    return dict(sorted(item.items()))


def _by_number(item: dict[str, Any], tag: str) -> tuple[bool, float]:
    text = first_text(item, tag)
    try:
        return False, float(text)
    except ValueError:
        return True, 0.0


async def search_series(
    database: Database,
    orthanc: OrthancClient,
    scope: Scope,
    query: Query,
    base: str,
    study: dict[str, Any] | None = None,
) -> Answer:
    """The series of the caller's matching studies (or of ``study``) that match."""

    def records(row: dict[str, Any], metadata: list[dict[str, Any]]) -> list[dict[str, Any]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for item in metadata:
            grouped.setdefault(first_text(item, SERIES_UID), []).append(item)
        found = []
        for uid, items in grouped.items():
            first = min(items, key=lambda i: _by_number(i, "00200013"))
            url = f"{base}/studies/{row['study_instance_uid']}/series/{uid}"
            extra = {
                AVAILABILITY: element(AVAILABILITY, "ONLINE"),
                RETRIEVE_URL: element(RETRIEVE_URL, url),
                "00201209": element("00201209", len(items)),
            }
            found.append((first, _record(first, SERIES_TAGS, query, extra)))
        found.sort(key=lambda pair: _by_number(pair[1], "00200011"))
        return [record for source, record in found if _matches(source, query, study)]

    return await _walk(database, orthanc, scope, query, study, records)


async def search_instances(
    database: Database,
    orthanc: OrthancClient,
    scope: Scope,
    query: Query,
    base: str,
    study: dict[str, Any] | None = None,
    series_uid: str | None = None,
) -> Answer:
    """The instances of the caller's matching studies (or of one study or series) that match."""

    def records(row: dict[str, Any], metadata: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted = [i for i in metadata if not series_uid or first_text(i, SERIES_UID) == series_uid]
        wanted.sort(key=lambda i: (first_text(i, SERIES_UID), _by_number(i, "00200013")))
        found = []
        for item in wanted:
            if not _matches(item, query, study):
                continue
            series = first_text(item, SERIES_UID)
            url = (
                f"{base}/studies/{row['study_instance_uid']}/series/{series}"
                f"/instances/{first_text(item, SOP_UID)}"
            )
            extra = {
                AVAILABILITY: element(AVAILABILITY, "ONLINE"),
                RETRIEVE_URL: element(RETRIEVE_URL, url),
            }
            tags = (*INSTANCE_TAGS, "00080060", SERIES_UID, "00200011")
            found.append(_record(item, tags, query, extra))
        return found

    return await _walk(database, orthanc, scope, query, study, records)


def _matches(item: dict[str, Any], query: Query, study: dict[str, Any] | None) -> bool:
    return all(
        matches(item, tag, value, query.fuzzy and tag == "00100010")
        for tag, value in _python_keys(query, study).items()
    )


async def _walk(
    database: Database,
    orthanc: OrthancClient,
    scope: Scope,
    query: Query,
    study: dict[str, Any] | None,
    records: Any,
) -> Answer:
    """Collect one page of records, study by study, skipping ``offset`` matches first."""
    answer = Answer()
    skip = query.offset
    async for row in _studies(database, scope, query, study):
        metadata = await study_metadata(orthanc, row["orthanc_study_id"], row["study_instance_uid"])
        found = records(row, metadata)
        if skip >= len(found):
            skip -= len(found)
            continue
        found, skip = found[skip:], 0
        taken = found[: query.limit - len(answer.items)]
        answer.items.extend(taken)
        if taken:
            answer.studies.add(row["study_instance_uid"])
            if row["patient_id"]:
                answer.patients.add(row["patient_id"])
        if len(answer.items) >= query.limit:
            answer.more = len(found) > len(taken)
            break
    return answer
