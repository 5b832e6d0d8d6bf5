"""QIDO-RS at the study level as SQL (PS3.18 10.6): which studies a caller may find.

The caller's scope is part of the query (service/storage/scope.py), and so are the matching keys
and the paging: ``limit`` and ``offset`` count only studies the caller may see, so a page is
never short because another facility's studies were dropped from it afterwards. A study is a
consultation's own Orthanc study (``orthanc_study_id``); the attributes come from the ingest's
``studies`` row, or the consultation's own where the study has none yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from .dialects import is_postgres
from .scope import Scope


@dataclass(frozen=True)
class Pattern:
    """One value to match (PS3.4 C.2.2.2): ``*`` and ``?`` are wildcards; ``fuzzy`` matches
    case-insensitively anywhere in the value (PS3.18 8.3.4.1 fuzzymatching, as teleread does it)."""

    text: str
    fuzzy: bool = False
    caseless: bool = False
    """Ignore case (PS3.4 C.2.2.2.1 allows it for PN; ``fuzzy`` implies it)."""


@dataclass(frozen=True)
class DateRange:
    """A DA range (PS3.4 C.2.2.2.5) as YYYYMMDD bounds; ``None`` is open."""

    start: str | None
    end: str | None


@dataclass(frozen=True)
class StudyMatch:
    """Study-level matching keys; an empty field matches everything."""

    study_uids: tuple[str, ...] = ()
    patient_id: Pattern | None = None
    patient_name: Pattern | None = None
    patient_birth_date: DateRange | None = None
    patient_sex: Pattern | None = None
    study_date: DateRange | None = None
    accession_number: Pattern | None = None
    study_description: Pattern | None = None
    modalities: tuple[str, ...] = ()


_STUDIES = """
    SELECT c.orthanc_study_id, c.id AS consultation_id,
           c.study_instance_uid,
           COALESCE(NULLIF(s.patient_id, ''), c.patient_id) AS patient_id,
           COALESCE(NULLIF(s.patient_name, ''), c.patient_name) AS patient_name,
           COALESCE(s.patient_birth_date, '') AS patient_birth_date,
           COALESCE(s.patient_sex, '') AS patient_sex,
           COALESCE(NULLIF(s.accession_number, ''), c.accession_number) AS accession_number,
           COALESCE(s.study_date, '') AS study_date,
           COALESCE(s.study_description, '') AS study_description,
           COALESCE(NULLIF(s.modalities, ''), c.modality) AS modalities,
           COALESCE(s.series_count, 0) AS series_count,
           COALESCE(NULLIF(s.instances_count, 0), c.instances) AS instances_count
    FROM consultations c
    LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id
"""


def _glob(text: str) -> str:
    """A DICOM wildcard value as a GLOB pattern (``[`` is GLOB's only other special)."""
    return text.replace("[", "[[]")


def _like(text: str) -> str:
    """A DICOM wildcard value as a LIKE pattern with ``\\`` escaping (``%`` and ``_`` literal)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _pattern(column: str, pattern: Pattern, postgres: bool) -> tuple[str, list[object]]:
    if pattern.fuzzy:
        return f"lower({column}) LIKE ? ESCAPE '\\'", [f"%{_like(pattern.text.lower())}%"]
    if pattern.caseless:  # a PN: any of its component groups (alphabetic=ideographic=phonetic)
        like = _like(pattern.text.lower())
        variants = [like, f"{like}=%", f"%={like}", f"%={like}=%"]
        either = " OR ".join(f"lower({column}) LIKE ? ESCAPE '\\'" for _ in variants)
        return f"({either})", variants
    if "*" in pattern.text or "?" in pattern.text:
        if postgres:  # no GLOB; its LIKE is case-sensitive, as GLOB is
            return f"{column} LIKE ? ESCAPE '\\'", [_like(pattern.text)]
        return f"{column} GLOB ?", [_glob(pattern.text)]
    return f"{column} = ?", [pattern.text]


def _range(column: str, dates: DateRange) -> tuple[str, list[object]]:
    clauses, params = [f"{column} != ''"], []
    if dates.start:
        clauses.append(f"{column} >= ?")
        params.append(dates.start)
    if dates.end:
        clauses.append(f"{column} <= ?")
        params.append(dates.end)
    return " AND ".join(clauses), params


def _conditions(match: StudyMatch, postgres: bool) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []

    def add(clause: tuple[str, list[object]]) -> None:
        clauses.append(clause[0])
        params.extend(clause[1])

    if match.study_uids:
        add((f"study_instance_uid IN ({', '.join('?' for _ in match.study_uids)})",
             list(match.study_uids)))  # fmt: skip
    for column, pattern in (
        ("patient_id", match.patient_id),
        ("patient_name", match.patient_name),
        ("patient_sex", match.patient_sex),
        ("accession_number", match.accession_number),
        ("study_description", match.study_description),
    ):
        if pattern is not None:
            add(_pattern(column, pattern, postgres))
    for column, dates in (
        ("patient_birth_date", match.patient_birth_date),
        ("study_date", match.study_date),
    ):
        if dates is not None:
            add(_range(column, dates))
    if match.modalities:
        any_of = " OR ".join("instr('\\' || modalities || '\\', ?) > 0" for _ in match.modalities)
        add((f"({any_of})", [f"\\{m}\\" for m in match.modalities]))
    return clauses, params


def matching_studies(
    db: sqlite_utils.Database,
    scope: Scope,
    match: StudyMatch,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The caller's studies that match, newest study date first, one row per Orthanc study,
    ``offset`` and ``limit`` counted after scoping and matching."""
    where, scope_params = scope.where("c")
    clauses, params = _conditions(match, is_postgres(db))
    outer = " AND ".join(clauses) or "1 = 1"
    sql = (
        f"SELECT * FROM ({_STUDIES} WHERE c.id IN (SELECT MIN(c.id) FROM consultations c"
        f" WHERE c.orthanc_study_id IS NOT NULL AND {where} GROUP BY c.orthanc_study_id))"
        f" AS matched WHERE {outer}"
        " ORDER BY study_date DESC, consultation_id DESC LIMIT ? OFFSET ?"
    )
    return [dict(row) for row in db.query(sql, [*scope_params, *params, limit, offset])]
