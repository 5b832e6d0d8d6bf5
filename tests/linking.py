"""Linking local identities of one person in tests, the way a checked national identifier does
at a border (service/storage/patients.py ``record_local_identity``), without depending on any
particular border's capture."""

from __future__ import annotations

from service.identity_numbers import HEALTH_CARD, checked
from service.storage.patients import LocalPatient, record_local_identity

from .conftest import Service


async def link_identities(service: Service, card: str, *patients: LocalPatient) -> int:
    """Record each local patient with the same health card number (checked), which links them
    into one person; the person's id."""
    identifier = checked(HEALTH_CARD, card)
    assert identifier is not None, card

    def write(db) -> int:
        recorded = [record_local_identity(db, p, [identifier], "test") for p in patients]
        assert len({r.person_id for r in recorded}) == 1, recorded
        return recorded[-1].person_id

    return await service.database.write(write)
