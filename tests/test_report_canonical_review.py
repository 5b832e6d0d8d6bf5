"""The canonical (signed) form with two-level sign-off (issue 19): the reviewer's fields and the
preliminary flag appear only when present, so a single-signed report's bytes stay exactly what
they were before those fields existed (its stored detached signatures keep verifying)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta, timezone

from service.reports.canonical import canonical_bytes, parse_canonical
from tests.test_report_documents import SIGNED_AT, sample

REVIEWED_AT = SIGNED_AT + timedelta(hours=1)


def test_a_single_signed_report_keeps_its_bytes():
    """Digests of the canonical form as teleread wrote it before issue 19."""
    expected = {
        "beb28daa3b4fe0aa1966fa1897bfce663bc69282b45e977e3567a98f483d54b7": sample(),
        "9659dd3dddc51c21606a521c943d22dd307f3997bb97a93fe89d9d01f4dae476": sample(
            language="en", supersedes_version=1, version=2, critical=True, quality=None
        ),
    }
    for digest, doc in expected.items():
        assert hashlib.sha256(canonical_bytes(doc)).hexdigest() == digest


def test_the_reviewer_is_signed_when_present():
    shanghai = timezone(timedelta(hours=8))
    doc = sample(
        reviewer_name="王强",
        reviewer_certificate_serial="77aa",
        reviewed_at=REVIEWED_AT.astimezone(shanghai),
    )
    fields = parse_canonical(canonical_bytes(doc))
    assert fields["reviewer"] == "王强" and fields["reviewer_certificate_serial"] == "77aa"
    assert fields["reviewed_at"] == "2026-11-23T23:54:51Z"  # in UTC, like signed_at
    assert "preliminary" not in fields
    before = json.loads(canonical_bytes(sample()))
    assert {k: v for k, v in fields.items() if not k.startswith("review")} == before


def test_preliminary_is_signed_only_when_true():
    fields = parse_canonical(canonical_bytes(sample(preliminary=True)))
    assert fields["preliminary"] is True and "reviewer" not in fields
    assert "preliminary" not in parse_canonical(canonical_bytes(sample(preliminary=False)))


def test_reviewed_at_may_be_missing_while_the_reviewer_is_named():
    fields = parse_canonical(canonical_bytes(sample(reviewer_name="王强")))
    assert "reviewed_at" not in fields and fields["reviewer_certificate_serial"] == ""
