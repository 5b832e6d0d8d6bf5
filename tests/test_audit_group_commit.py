"""Audit records of concurrent requests share transactions (group commit) without losing one,
reordering the chain, or answering a request whose record was not committed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from service.audit.export import ANCHOR_HEADER
from service.audit.verify import verify_database
from service.http.keys import SETTINGS
from service.storage.audit_anchor import Anchor


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


async def centre(service) -> dict[str, str]:
    facility = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("dr.li", "specialist", facility)
    await service.add_user("doomed", "specialist", facility)
    await service.add_user("root", "admin", facility)
    return await service.login("dr.li")


async def worklist_records(service) -> list[dict]:
    return await service.database.read(
        lambda db: [
            dict(r)
            for r in db.execute(
                "SELECT id, username, outcome FROM audit_log WHERE action = 'worklist.query'"
                " ORDER BY id"
            )
        ]
    )


async def test_fifty_concurrent_requests_leave_fifty_records_in_fewer_commits(service):
    """Each of 50 concurrent audited requests has its record; they were committed together
    in fewer transactions than requests; the chain verifies."""
    headers = await centre(service)
    commits_before = service.database.audit_commits

    answers = await asyncio.gather(
        *(service.client.get("/api/worklist", headers=headers) for _ in range(50))
    )

    assert [a.status for a in answers] == [200] * 50
    assert len(await worklist_records(service)) == 50
    assert service.database.audit_commits - commits_before < 50
    result = await service.database.read(verify_database)
    assert result.ok, result


@pytest.mark.sqlite_file
async def test_a_request_whose_record_fails_to_commit_fails_and_the_others_do_not(service):
    """The database refuses the records of one user (a trigger standing in for a failed
    write): that user's concurrent requests fail with 500 instead of answering unaudited;
    the others, batched with them, still answer with their records committed."""
    headers = await centre(service)
    doomed = await service.login("doomed")
    with sqlite3.connect(service.app[SETTINGS].database_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_doomed BEFORE INSERT ON audit_log"
            " WHEN NEW.username = 'doomed' AND NEW.action = 'worklist.query'"
            " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    conn.close()

    calls = [headers if n % 2 else doomed for n in range(20)]
    answers = await asyncio.gather(*(service.client.get("/api/worklist", headers=h) for h in calls))

    statuses = [a.status for a in answers]
    assert statuses == [200 if n % 2 else 500 for n in range(20)]
    recorded = await worklist_records(service)
    assert [r["username"] for r in recorded] == ["dr.li"] * 10
    assert (await service.database.read(verify_database)).ok


async def test_http_exports_carry_the_anchor(service):
    """CSV and ATNA in a header (the ATNA body is only messages, one per line); the anchor
    names a record the trail holds with that hash."""
    await centre(service)
    root = await service.login("root")

    csv_answer = await service.client.get("/api/audit.csv", headers=root)
    await csv_answer.read()
    atna_answer = await service.client.get("/api/audit/atna", headers=root)
    body = await atna_answer.text()

    csv_anchor = Anchor.from_json(csv_answer.headers[ANCHOR_HEADER])
    atna_anchor = Anchor.from_json(atna_answer.headers[ANCHOR_HEADER])
    assert all(line.startswith("<AuditMessage>") for line in body.splitlines())
    assert csv_anchor.id >= 2 and atna_anchor.id >= csv_anchor.id  # at least the two logins
    result = await service.database.read(verify_database, [csv_anchor, atna_anchor])
    assert result.ok, result
