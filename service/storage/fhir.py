"""The rows the FHIR API (service/fhir/) turns into resources, each read in the caller's scope.

Every query takes the caller's :class:`Scope` and applies it in SQL, as the worklist does: a
patient, order, study or report of a facility outside it is simply not found (a 404 on read, an
empty search), never filtered out afterwards. A patient is not a table of its own here: it is the
(facility, patient ID) pair consultations carry, described by its latest consultation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from .scope import Scope

_DEMOGRAPHICS = (
    "c.id, c.facility_id, c.patient_id, c.patient_name, f.aet AS facility_aet,"
    " f.name AS facility_name,"
    " COALESCE(NULLIF(c.patient_birth_date, ''), (SELECT s.patient_birth_date FROM studies s"
    " WHERE s.orthanc_id = c.orthanc_study_id), '') AS patient_birth_date,"
    " COALESCE(NULLIF(c.patient_sex, ''), (SELECT s.patient_sex FROM studies s"
    " WHERE s.orthanc_id = c.orthanc_study_id), '') AS patient_sex"
)


@dataclass(frozen=True)
class Match:
    """What a search names; an empty field matches anything."""

    facility_id: int | None = None
    facility_aet: str | None = None
    patient_id: str | None = None
    consultation_id: int | None = None
    order_number: str | None = None
    """A placer order number or an accession number."""
    statuses: tuple[str, ...] = ()
    with_images: bool = False

    def where(self, scope: Scope) -> tuple[str, list[object]]:
        clauses, params = [], []
        scope_sql, scope_params = scope.where()
        clauses.append(scope_sql)
        params.extend(scope_params)
        for column, value in (
            ("c.facility_id", self.facility_id),
            ("f.aet", self.facility_aet),
            ("c.patient_id", self.patient_id),
            ("c.id", self.consultation_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.order_number is not None:
            clauses.append("(c.placer_order_number = ? OR c.accession_number = ?)")
            params.extend([self.order_number, self.order_number])
        if self.statuses:
            clauses.append(f"c.status IN ({', '.join('?' for _ in self.statuses)})")
            params.extend(self.statuses)
        if self.with_images:
            clauses.append("c.orthanc_study_id IS NOT NULL")
        return " AND ".join(clauses), params


def patients(
    db: sqlite_utils.Database, scope: Scope, match: Match, limit: int
) -> list[dict[str, Any]]:
    """One row per (facility, patient ID) in scope: the demographics of its latest consultation."""
    where, params = match.where(scope)
    rows = db.execute(
        f"SELECT {_DEMOGRAPHICS} FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        " WHERE c.id IN (SELECT MAX(c.id) FROM consultations c"
        f" JOIN facilities f ON f.id = c.facility_id WHERE {where} AND c.patient_id != ''"
        " GROUP BY c.facility_id, c.patient_id)"
        " ORDER BY c.facility_id, c.patient_id LIMIT ?",
        [*params, limit],
    )
    return [dict(row) for row in rows]


def orders(
    db: sqlite_utils.Database, scope: Scope, match: Match, limit: int
) -> list[dict[str, Any]]:
    """Consultations in scope (newest first), with the requesting facility and requester."""
    where, params = match.where(scope)
    rows = db.execute(
        f"SELECT c.*, f.aet AS facility_aet, f.name AS facility_name,"
        " COALESCE(NULLIF(u.display_name, ''), u.username) AS requester_name,"
        " s.study_date, s.study_description, s.modalities AS study_modalities,"
        " s.series_count, s.instances_count AS study_instances"
        " FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        " LEFT JOIN users u ON u.id = c.requested_by"
        " LEFT JOIN studies s ON s.orthanc_id = c.orthanc_study_id"
        f" WHERE {where} ORDER BY c.id DESC LIMIT ?",
        [*params, limit],
    )
    return [dict(row) for row in rows]


def signed_reports(
    db: sqlite_utils.Database, scope: Scope, match: Match, limit: int
) -> list[dict[str, Any]]:
    """Each consultation in scope with a signed report, with its latest signed version."""
    where, params = match.where(scope)
    rows = db.execute(
        "SELECT c.id AS consultation_id, c.patient_id, c.facility_id, c.study_instance_uid,"
        " c.modality, r.signed_versions, v.version, v.findings, v.impression,"
        " v.recommendation, v.signer_name, v.signed_at, v.verification_code,"
        " v.verification_url, length(v.pdf) AS pdf_size"
        " FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        " JOIN reports r ON r.consultation_id = c.id"
        " JOIN report_versions v ON v.report_id = r.id AND v.version = r.signed_versions"
        f" WHERE {where} AND r.signed_versions > 0 ORDER BY c.id DESC LIMIT ?",
        [*params, limit],
    )
    return [dict(row) for row in rows]
