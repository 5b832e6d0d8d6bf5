"""The tamper-evident audit trail: who looked at or changed what, when, from where, and how.

Records are appended, never changed (SQLite triggers refuse UPDATE and DELETE), and each carries
the SHA-256 of its canonical form chained to the previous record's hash, so an edit made behind the
service's back (directly in the file) is detected by ``teleread audit verify``.
"""

# The record and its hash chain are how the trail is stored (service/storage/audit_chain.py).
from ..storage.audit_chain import GENESIS_HASH, AuditEntry, chain_hash

__all__ = ["AuditEntry", "GENESIS_HASH", "chain_hash"]
