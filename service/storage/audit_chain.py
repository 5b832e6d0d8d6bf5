"""One audit record and its place in the hash chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64

OUTCOMES = ("success", "denied", "failed")


@dataclass(frozen=True)
class AuditEntry:
    """What happened. ``action`` is a dotted verb such as ``consultation.view``."""

    at: str
    action: str
    outcome: str
    user_id: int | None = None
    username: str = ""
    role: str = ""
    facility_id: int | None = None
    resource_type: str = ""
    resource_id: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    client_ip: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> bytes:
        """Stable bytes to hash: sorted keys, no whitespace, UTF-8."""
        return json.dumps(
            asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditEntry:
        detail = row["detail"]
        return cls(
            at=row["at"],
            action=row["action"],
            outcome=row["outcome"],
            user_id=row["user_id"],
            username=row["username"],
            role=row["role"],
            facility_id=row["facility_id"],
            resource_type=row["resource_type"],
            resource_id=row["resource_id"],
            patient_id=row["patient_id"],
            study_instance_uid=row["study_instance_uid"],
            client_ip=row["client_ip"],
            detail=json.loads(detail) if isinstance(detail, str) else dict(detail),
        )


def chain_hash(prev_hash: str, entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and this record's canonical form."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + entry.canonical()).hexdigest()
