"""Is this report genuine? Checks a stored version by its code, or a PDF / DICOM file in hand.

Both the PAdES signature of the PDF and the detached signature over the canonical form are
checked against the consortium CA (with its CRL) and any imported CA. Teleread's own revocation
list also covers imported certificates, whose external CRLs it cannot fetch offline.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from ..clock import from_iso
from ..signing import TrustStore, Verification, verify_detached, verify_pdf
from ..storage import reports as report_store
from ..storage import signing_identities as identity_store
from .canonical import parse_canonical
from .files import ReportFile, read_report_file


@dataclass(frozen=True)
class ReportCheck:
    """The verdict on one report, in terms a clinic and a court can both read."""

    valid: bool
    reasons: tuple[str, ...]
    signer: str | None
    signed_at: str | None
    revoked: bool
    checks: dict[str, Verification]
    verification_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reasons": list(self.reasons),
            "signer": self.signer,
            "signed_at": self.signed_at,
            "revoked": self.revoked,
            "checks": {
                name: {
                    "valid": v.valid,
                    "intact": v.intact,
                    "trusted": v.trusted,
                    "revoked": v.revoked,
                    "reasons": list(v.reasons),
                    "co_signers": [
                        {
                            "signer": c.signer,
                            "signed_at": c.signed_at.isoformat() if c.signed_at else None,
                            "valid": c.valid,
                            "revoked": c.revoked,
                        }
                        for c in v.co_signers
                    ],
                }
                for name, v in self.checks.items()
            },
        }


def _with_local_revocation(db: sqlite_utils.Database, verification: Verification) -> Verification:
    """The verdict with teleread's own revocation list applied to its signer and co-signers."""
    if verification.co_signers:
        own = _with_local_revocation(db, replace(verification, co_signers=()))
        checked = [(v, _with_local_revocation(db, v)) for v in verification.co_signers]
        newly = [f"co-signature of {a.signer}: {a.reasons[-1]}" for b, a in checked if a is not b]
        co_signers = tuple(after for _, after in checked)
        return replace(
            own,
            valid=own.valid and all(v.valid for v in co_signers),
            revoked=own.revoked or any(v.revoked for v in co_signers),
            reasons=(*own.reasons, *newly),
            co_signers=co_signers,
        )
    if verification.signer_serial is None:
        return verification
    row = identity_store.revocation_of(db, format(verification.signer_serial, "x"))
    if row is None or row["revoked_at"] is None or verification.revoked:
        return verification
    reason = f"certificate revoked on {row['revoked_at'][:10]} ({row['revocation_reason']})"
    return replace(verification, valid=False, revoked=True, reasons=(*verification.reasons, reason))


def combine(db: sqlite_utils.Database, checks: dict[str, Verification]) -> ReportCheck:
    checks = {name: _with_local_revocation(db, v) for name, v in checks.items()}
    reasons: list[str] = []
    for name, verification in checks.items():
        reasons += [f"{name}: {reason}" for reason in verification.reasons]
    first = next(iter(checks.values()))
    return ReportCheck(
        valid=bool(checks) and all(v.valid for v in checks.values()),
        reasons=tuple(reasons),
        signer=first.signer,
        signed_at=first.signed_at.isoformat() if first.signed_at else None,
        revoked=any(v.revoked for v in checks.values()),
        checks=checks,
    )


def check_version(
    db: sqlite_utils.Database, version: dict[str, Any], trust: TrustStore, at: datetime
) -> ReportCheck:
    """Check a stored version: its PDF and its canonical form, as archived."""
    checks = {
        "pdf": verify_pdf(version["pdf"], trust, at=at),
        "canonical": verify_detached(version["canonical"], version["signature"], trust, at=at),
    }
    return combine(db, checks)


def check_file(
    db: sqlite_utils.Database, data: bytes, trust: TrustStore, at: datetime
) -> ReportCheck:
    """Check a PDF, a DICOM Encapsulated PDF or a DICOM SR written by teleread."""
    found = read_report_file(data)
    checks: dict[str, Verification] = {}
    if found.pdf is not None:
        checks["pdf"] = verify_pdf(found.pdf, trust, at=at)
    if found.canonical is not None and found.signature is not None:
        checks["canonical"] = verify_detached(found.canonical, found.signature, trust, at=at)
    if not checks:
        raise ValueError("the file carries no teleread signature")
    result = combine(db, checks)
    return replace(
        result,
        signed_at=result.signed_at or _stated_signing_time(found),
        verification_code=found.verification_code,
    )


def _stated_signing_time(found: ReportFile) -> str | None:
    """When the signer says they signed, from the canonical form their signature covers.

    The detached CMS signature of an SR carries no signing-time attribute (pyHanko's general
    data signer adds none), so its verdict knows no time; the canonical form names it, and
    unlike the SR's own Verification DateTime (0040,A030) it is under the signature.
    """
    if found.canonical is None:
        return None
    try:
        stamp = parse_canonical(found.canonical).get("signed_at")
        return from_iso(stamp).isoformat() if isinstance(stamp, str) else None
    except ValueError:
        return None


def signed_at_local(db: sqlite_utils.Database, check: ReportCheck) -> str | None:
    """The signing time as the report's paper and the public page print it: in the zone of the
    facility the report was for when this service knows the report, in UTC otherwise."""
    if check.signed_at is None:
        return None
    version = None
    if check.verification_code:
        version = report_store.version_by_code(db, check.verification_code)
    return local_time(check.signed_at, version["facility_timezone"] if version else None)


def initials(name: str) -> str:
    """Enough of a patient's name to match the paper, not enough to identify: "W. X." / "王**"."""
    name = name.split("=")[0]
    parts = [p for p in name.replace("^", " ").split() if p]
    if not parts:
        return ""
    if any(unicodedata.east_asian_width(ch) in "WF" for ch in parts[0]):
        joined = "".join(parts)
        return joined[0] + "*" * (len(joined) - 1)
    return " ".join(f"{p[0].upper()}." for p in parts)


def local_time(stamp: str, zone_name: str | None) -> str:
    """The signing time as the paper shows it: in the facility's zone, the zone named (the
    public page has no user, so the browser's own zone would be a guess, and unlabelled)."""
    zone = ZoneInfo(zone_name or "UTC")
    local = from_iso(stamp).astimezone(zone)
    offset = f"{local:%z}"
    return f"{local:%Y-%m-%d %H:%M} ({zone.key}, UTC{offset[:3]}:{offset[3:]})"


def dicom_date(value: str) -> str:
    """DICOM DA "20261202" as "2026-12-02" (anything else as it came)."""
    d = value.strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def public_summary(version: dict[str, Any], check: ReportCheck) -> dict[str, Any]:
    """What the unauthenticated page may say: the verdict and what matches the paper."""
    return {
        "valid": check.valid,
        "reasons": list(check.reasons),
        "revoked": check.revoked,
        "signer": version["signer_name"],
        "signed_at": version["signed_at"],
        "signed_at_local": local_time(version["signed_at"], version.get("facility_timezone")),
        # two-level sign-off (issue 19): the reviewing physician who co-signed, if any
        "reviewer": version.get("reviewer_name") or "",
        "reviewed_at": version.get("reviewed_at"),
        "reviewed_at_local": local_time(version["reviewed_at"], version.get("facility_timezone"))
        if version.get("reviewed_at")
        else None,
        "preliminary": bool(version.get("preliminary")),
        "facility": version["facility_name"],
        "patient_initials": initials(version.get("patient_name") or ""),
        "study_date": dicom_date(version.get("study_date") or ""),
        "version": version["version"],
        "latest_version": version["signed_versions"],
        "superseded": version["version"] < version["signed_versions"],
    }


def revoked_serials(db: sqlite_utils.Database) -> list[str]:
    return [serial for serial, _ in identity_store.revoked_consortium_serials(db)]
