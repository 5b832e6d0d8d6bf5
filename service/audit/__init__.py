"""The tamper-evident audit trail: who looked at or changed what, when, from where, and how.

Records are appended, never changed (SQLite triggers refuse UPDATE and DELETE), and each carries
the SHA-256 of its canonical form chained to the previous record's hash, so an edit made behind the
service's back (directly in the file) is detected by ``teleread audit verify``.
"""

from .entry import GENESIS_HASH, AuditEntry, chain_hash

__all__ = ["AuditEntry", "GENESIS_HASH", "chain_hash"]
