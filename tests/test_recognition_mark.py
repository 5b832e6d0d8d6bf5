"""The mutual-recognition mark on a signed report (issue 20 item 3): printed in the report's
language when its facility and exam item were on the list at signing, under the signature
(canonical form), and absent otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from service.reports.canonical import canonical_fields
from service.reports.pdf import render_report_pdf
from service.reports.recognition_mark import recognised_at
from tests.test_report_documents import sample
from tests.test_report_print import pages

from .backends import connection_at


def test_the_pdf_prints_the_mark_in_chinese_and_in_english():
    chinese = "".join(pages(render_report_pdf(sample(recognised=True))))
    assert "本检查结果在医联体内互认（CT胸部）" in chinese
    english = "".join(pages(render_report_pdf(sample(recognised=True, language="en"))))
    assert "RecognisedwithintheconsortiumforCTCHEST" in english
    unmarked = "".join(pages(render_report_pdf(sample())))
    assert "互认" not in unmarked


def test_the_signature_covers_the_mark_only_when_there_is_one():
    assert canonical_fields(sample(recognised=True))["recognised"] is True
    assert "recognised" not in canonical_fields(sample())


@pytest.fixture
def db(tmp_path: Path, migrated_database: Path) -> Iterator[sqlite_utils.Database]:
    database = connection_at(tmp_path / "t.db", migrated_database)
    database.execute(
        "INSERT INTO facilities (id, name, kind, aet, timezone, created_at)"
        " VALUES (1, 'Township A', 'township', 'AE1', 'Asia/Shanghai', '2026-01-01T00:00:00Z')"
    )
    for change, at in (
        ("added", "2026-04-02T00:00:00.000000Z"),
        ("suspended", "2026-07-01T00:00:00.000000Z"),
    ):
        database.execute(
            "INSERT INTO recognition_changes (facility_id, modality, body_part, change, at,"
            " by_user, reasons, totals, rules, months)"
            " VALUES (1, 'CT', 'HEAD', ?, ?, NULL, '[]', '{}', '{}', '[]')",
            [change, at],
        )
    yield database
    database.close()


@pytest.mark.parametrize(
    ("facility", "modality", "body_part", "signed_at", "expected"),
    [
        (1, "CT", "HEAD", "2026-03-30T08:00:00.000000Z", False),  # before it was listed
        (1, "CT", "HEAD", "2026-05-10T08:00:00.000000Z", True),
        (1, " ct ", "head", "2026-05-10T08:00:00.000000Z", True),  # as routing normalises
        (1, "CT", "CHEST", "2026-05-10T08:00:00.000000Z", False),  # another exam item
        (2, "CT", "HEAD", "2026-05-10T08:00:00.000000Z", False),  # another facility
        (1, "CT", "HEAD", "2026-08-01T08:00:00.000000Z", False),  # suspended since
        (1, "CT", "", "2026-05-10T08:00:00.000000Z", False),  # no body part: no exam item
    ],
)
def test_the_mark_follows_the_list_at_signing_time(
    db, facility, modality, body_part, signed_at, expected
):
    assert recognised_at(db, facility, modality, body_part, signed_at) is expected
