"""Which engine a storage function's connection speaks, for the few statements said two ways.

A ``sqlite_utils.Database`` has no ``dialect``; the PostgreSQL connection
(:mod:`service.storage.postgres.connection`) says ``"postgresql"``.
"""

from __future__ import annotations

from typing import Any

#: pg_advisory_xact_lock key of the audit chain's appends (storage.audit.append_audit).
AUDIT_CHAIN_LOCK = 7_245_002


def is_postgres(db: Any) -> bool:
    return getattr(db, "dialect", "sqlite") == "postgresql"


def lock_audit_chain(db: Any) -> None:
    """Serialise appends to the audit chain across replicas (PostgreSQL; on SQLite the one
    writer already does), until the transaction ends."""
    if is_postgres(db):
        db.execute("SELECT pg_advisory_xact_lock(?)", [AUDIT_CHAIN_LOCK])
