"""Which consultations a caller may see, as SQL: scoping is in the query, never a filter after."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """A caller's reach over consultations.

    ``facility_ids`` None means every facility (the regional centre's readers); ``requested_by``
    restricts to consultations a requester filed. Both set means both must hold.
    """

    facility_ids: tuple[int, ...] | None
    requested_by: int | None = None
    nothing: bool = False

    def where(self, alias: str = "c") -> tuple[str, list[object]]:
        """A SQL condition and its parameters restricting ``consultations`` rows to the scope."""
        if self.nothing:
            return "0 = 1", []
        clauses: list[str] = []
        params: list[object] = []
        if self.facility_ids is not None:
            marks = ", ".join("?" for _ in self.facility_ids) or "NULL"
            clauses.append(f"{alias}.facility_id IN ({marks})")
            params.extend(self.facility_ids)
        if self.requested_by is not None:
            clauses.append(f"{alias}.requested_by = ?")
            params.append(self.requested_by)
        return (" AND ".join(clauses) or "1 = 1"), params

    def allows(self, facility_id: int, requested_by: int | None) -> bool:
        """The rule of :meth:`where` for one consultation already in hand (live updates)."""
        if self.nothing:
            return False
        if self.facility_ids is not None and facility_id not in self.facility_ids:
            return False
        return self.requested_by is None or self.requested_by == requested_by


NO_ACCESS = Scope(facility_ids=(), nothing=True)
EVERYTHING = Scope(facility_ids=None)
