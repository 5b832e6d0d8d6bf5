"""The audit trail: what reads and changes leave behind, that nobody can quietly change it, and
how managers and admins search and export it.

Everything runs against the real app, a real throwaway Orthanc and the real SQLite file; the
``teleread audit verify`` checks run the installed console script in a subprocess, as an
operator would.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.audit.verify import CHANGED, INDEX_DIFFERS, RELINKED, verify_database
from service.clock import from_iso
from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.http.keys import SETTINGS

from . import backends
from .conftest import People, Service, orthanc_if_asked

TELEREAD = str(Path(sys.executable).with_name("teleread"))


# --------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture
def app_orthanc(request):
    """Only the upload test (it names ``orthanc``) stores an image, into a real Orthanc."""
    return orthanc_if_asked(request)


@pytest.fixture
async def consortium(service: Service, people: People) -> dict[str, Any]:
    """Clinics A and B, the regional centre, and one user per role that matters here.

    Clinic A's radiographer files a consultation for patient P-001 (张伟).
    """
    ids = await people.seed(
        {
            "a": ("Clinic A", "township", "CLINIC_A"),
            "b": ("Clinic B", "township", "CLINIC_B"),
            "centre": ("Centre", "regional", "CENTRE"),
        },
        {
            "wang": ("radiographer", "a"),
            "liu": ("radiographer", "b"),
            "dr.li": ("specialist", "centre"),
            "boss": ("manager", "centre"),
            "mgr.a": ("manager", "a"),
            "mgr.b": ("manager", "b"),
            "root": ("admin", "centre"),
        },
    )
    response = await service.client.post(
        "/api/consultations",
        headers=await service.login("wang"),
        json={
            "accession_number": "ACC1",
            "patient_id": "P-001",
            "patient_name": "张伟",
            "modality": "CT",
            "priority": "urgent",
        },
    )
    assert response.status == 201, await response.text()
    ids["consultation"] = (await response.json())["id"]
    return ids


async def records(service: Service, **where: Any) -> list[dict[str, Any]]:
    """Audit rows matching column values, oldest first."""
    clause = " AND ".join(f"{column} = ?" for column in where) or "1 = 1"

    def query(db):
        sql = f"SELECT * FROM audit_log WHERE {clause} ORDER BY id"
        return [dict(row) for row in db.execute(sql, list(where.values())).fetchall()]

    return await service.database.read(query)


def database_file(service: Service) -> Path:
    return service.app[SETTINGS].database_path


def teleread_audit(service: Service, *args: str) -> subprocess.CompletedProcess:
    """Run the installed ``teleread audit ...`` against the test app's data directory, once
    the anchor of what was committed so far is written (it follows the commits by a moment)."""
    service.database.anchor.flush()
    env = backends.cli_environment(service.app[SETTINGS])
    return subprocess.run(
        [TELEREAD, "audit", *args], env=env, capture_output=True, text=True, timeout=120
    )


def tamper(service: Service, *statements: str) -> None:
    """What an attacker with access to the file does: drop the triggers, change rows."""
    with sqlite3.connect(database_file(service)) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        conn.execute("DROP TRIGGER IF EXISTS audit_patients_no_delete")
        for statement in statements:
            conn.execute(statement)
    conn.close()


async def search(service: Service, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await service.client.get("/api/audit", headers=headers, params=params)
    assert response.status == 200, await response.text()
    return await response.json()


def dicom_form(datasets: list[Any]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for number, ds in enumerate(datasets):
        body = io.BytesIO(dataset_bytes(ds))
        form.add_field("files", body, filename=f"{number}.dcm", content_type="application/dicom")
    return form


# --------------------------------------------------------------------------- what is recorded


async def test_a_worklist_query_records_who_from_where_and_the_patients_listed(service, consortium):
    """The specialist's query leaves user, role, facility, address, outcome and the patients
    the page showed."""
    await service.worklist(await service.login("dr.li"))

    (record,) = await records(service, action="worklist.query")
    assert record["username"] == "dr.li"
    assert record["user_id"] == consortium["dr.li"]
    assert record["role"] == "specialist"
    assert record["facility_id"] == consortium["centre"]
    assert record["client_ip"] == "127.0.0.1"
    assert record["outcome"] == "success"
    assert '"patients": ["P-001"]' in record["detail"]


async def test_a_consultation_view_records_the_patient_and_the_consultation(service, consortium):
    """Opening one consultation names the consultation and its patient."""
    cid = consortium["consultation"]
    response = await service.client.get(
        f"/api/consultations/{cid}", headers=await service.login("dr.li")
    )
    assert response.status == 200

    (record,) = await records(service, action="consultation.view")
    assert (record["username"], record["role"]) == ("dr.li", "specialist")
    assert record["facility_id"] == consortium["centre"]
    assert (record["resource_type"], record["resource_id"]) == ("consultation", str(cid))
    assert record["patient_id"] == "P-001"
    assert (record["client_ip"], record["outcome"]) == ("127.0.0.1", "success")


async def test_an_upload_records_the_uploader_the_study_and_the_patient(
    service, consortium, orthanc
):
    """A radiographer's upload into the real Orthanc names the study and patient it carried."""
    study = make_study(StudySpec("P-UP", "LI^NA", "CR", "CHEST"))
    response = await service.client.post(
        "/api/studies", headers=await service.login("wang"), data=dicom_form(study)
    )
    assert response.status == 200, await response.text()

    (record,) = await records(service, action="study.upload")
    assert (record["username"], record["role"]) == ("wang", "radiographer")
    assert record["facility_id"] == consortium["a"]
    assert record["study_instance_uid"] == study[0].StudyInstanceUID
    assert record["patient_id"] == "P-UP"
    assert (record["client_ip"], record["outcome"]) == ("127.0.0.1", "success")


async def test_a_failed_login_is_recorded_as_denied_with_the_name_tried(service, consortium):
    """Nobody is logged in yet, so the attempted username goes into the detail."""
    service.client.session.cookie_jar.clear()  # a fresh browser: no session cookie
    response = await service.client.post(
        "/api/login", json={"username": "wang", "password": "wrong-password"}
    )
    assert response.status == 401

    failed = await records(service, action="auth.login", outcome="denied")
    assert len(failed) == 1
    record = failed[0]
    assert record["user_id"] is None and record["username"] == ""
    assert '"username": "wang"' in record["detail"] and '"status": 401' in record["detail"]
    assert record["client_ip"] == "127.0.0.1"


async def test_a_refused_look_at_another_clinics_consultation_is_recorded_as_denied(
    service, consortium
):
    """Clinic B's radiographer asking for clinic A's consultation gets 404, and the attempt
    stays on record with who tried."""
    cid = consortium["consultation"]
    response = await service.client.get(
        f"/api/consultations/{cid}", headers=await service.login("liu")
    )
    assert response.status == 404

    (record,) = await records(service, action="consultation.view")
    assert (record["username"], record["facility_id"]) == ("liu", consortium["b"])
    assert record["resource_id"] == str(cid)
    assert record["outcome"] == "denied"
    assert record["patient_id"] == ""  # nothing of the patient was revealed, nor recorded


# --------------------------------------------------------------------------- append-only, chain


@pytest.mark.sqlite_file
async def test_records_cannot_be_updated_or_deleted_through_sqlite(service, consortium):
    """The triggers refuse UPDATE and DELETE on the trail and its patient index, even to a
    plain sqlite3 connection."""
    with sqlite3.connect(database_file(service)) as conn:
        for statement in (
            "UPDATE audit_log SET username = 'nobody'",
            "DELETE FROM audit_log",
            "UPDATE audit_patients SET patient_id = 'X'",
            "DELETE FROM audit_patients",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    conn.close()


async def test_verify_reports_an_intact_trail_and_exits_0(service, consortium):
    """`teleread audit verify` counts every record of an untouched trail."""
    await service.worklist(await service.login("dr.li"))
    count = len(await records(service))

    result = teleread_audit(service, "verify")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"audit trail intact: {count} records"


@pytest.mark.sqlite_file
async def test_verify_names_the_record_edited_directly_in_the_file(service, consortium):
    """An attacker drops the trigger and renames the user of one record: verify exits 1 and
    names exactly that record."""
    specialist = await service.login("dr.li")
    await service.worklist(specialist)
    await service.worklist(specialist)
    target = (await records(service, action="worklist.query"))[0]["id"]
    assert target < len(await records(service))  # a record in the middle, not the last

    tamper(service, f"UPDATE audit_log SET username = 'someone.else' WHERE id = {target}")
    result = teleread_audit(service, "verify")

    assert result.returncode == 1
    assert result.stdout.strip() == f"audit trail BROKEN at record {target}: {CHANGED}"
    assert "triggers" in result.stderr  # and the missing triggers are pointed out


@pytest.mark.sqlite_file
async def test_verify_detects_a_record_deleted_from_the_middle(service, consortium):
    """Ids are consecutive: the record after a deleted one is reported with the gap."""
    await service.worklist(await service.login("dr.li"))
    await service.worklist(await service.login("dr.li"))
    target = (await records(service, action="worklist.query"))[0]["id"]

    tamper(
        service,
        f"DELETE FROM audit_patients WHERE audit_id = {target}",
        f"DELETE FROM audit_log WHERE id = {target}",
    )
    result = teleread_audit(service, "verify")

    assert result.returncode == 1
    following = target + 1
    assert result.stdout.strip() == (
        f"audit trail BROKEN at record {following}: record missing before id {following}"
    )


@pytest.mark.sqlite_file
async def test_a_record_edited_and_rehashed_breaks_the_link_to_the_next(service, consortium):
    """Recomputing the edited record's own hash does not help: the next record still points
    at the old one."""
    from service.storage.audit_chain import AuditEntry, chain_hash

    specialist = await service.login("dr.li")
    await service.worklist(specialist)
    await service.worklist(specialist)
    row = (await records(service, action="worklist.query"))[0]
    forged = AuditEntry.from_row(row | {"username": "someone.else"})
    new_hash = chain_hash(row["prev_hash"], forged)
    tamper(
        service,
        f"UPDATE audit_log SET username = 'someone.else', hash = '{new_hash}'"
        f" WHERE id = {row['id']}",
    )

    result = await service.database.read(verify_database)

    assert (result.ok, result.first_broken_id, result.reason) == (False, row["id"] + 1, RELINKED)


@pytest.mark.sqlite_file
async def test_removing_a_patient_from_the_index_is_detected(service, consortium):
    """The patient index is checked too: hiding a record from the search by patient breaks
    verification at that record."""
    await service.worklist(await service.login("dr.li"))
    target = (await records(service, action="worklist.query"))[0]["id"]
    tamper(service, f"DELETE FROM audit_patients WHERE audit_id = {target}")

    result = await service.database.read(verify_database)

    assert (result.ok, result.first_broken_id, result.reason) == (False, target, INDEX_DIFFERS)


# --------------------------------------------------------------------------- search


async def test_search_by_patient_finds_the_query_that_listed_them_and_the_view(service, consortium):
    """ "Who looked at my data": the worklist query that listed P-001 and the consultation
    view both come back, newest first, with the fields of the contract."""
    specialist = await service.login("dr.li")
    await service.worklist(specialist)
    await service.client.get(f"/api/consultations/{consortium['consultation']}", headers=specialist)
    await service.worklist(await service.login("liu"))  # clinic B's list is empty: not P-001's

    body = await search(service, await service.login("boss"), patient_id="P-001")

    assert [(i["action"], i["username"]) for i in body["items"]] == [
        ("consultation.view", "dr.li"),
        ("worklist.query", "dr.li"),
        ("consultation.request", "wang"),
    ]
    item = body["items"][0]
    assert set(item) == {
        "id",
        "at",
        "username",
        "role",
        "facility_id",
        "action",
        "resource_type",
        "resource_id",
        "patient_id",
        "study_instance_uid",
        "client_ip",
        "outcome",
        "detail",
    }
    assert body["next"] is None


async def test_search_is_itself_audited_with_its_filters(service, consortium):
    """A manager's search leaves an audit.search record naming the filters used."""
    await search(service, await service.login("boss"), patient_id="P-001", action="worklist.query")

    (record,) = await records(service, action="audit.search")
    assert (record["username"], record["role"], record["outcome"]) == ("boss", "manager", "success")
    assert record["patient_id"] == "P-001"
    assert '"filters": {"action": "worklist.query", "patient_id": "P-001"}' in record["detail"]


@pytest.mark.parametrize("username", ["wang", "dr.li"])
@pytest.mark.parametrize("path", ["/api/audit", "/api/audit.csv", "/api/audit/atna"])
async def test_radiographers_and_specialists_may_not_read_the_trail(
    service, consortium, username, path
):
    """Only managers and admins search or export; others get 403 (and the refusal is kept)."""
    response = await service.client.get(path, headers=await service.login(username))

    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    refused = await records(service, username=username, outcome="denied")
    assert [r["action"] for r in refused] in (["audit.search"], ["audit.export"])


async def test_a_township_manager_sees_only_their_own_facilitys_records(service, consortium):
    """Clinic A's manager sees what clinic A's staff did, not the centre's specialist."""
    await service.worklist(await service.login("dr.li"))
    await service.worklist(await service.login("wang"))

    body = await search(service, await service.login("mgr.a"), action="worklist.query")
    assert [i["username"] for i in body["items"]] == ["wang"]
    other = await search(service, await service.login("mgr.a"), facility=str(consortium["centre"]))
    assert other["items"] == []


@pytest.mark.parametrize("path", ["/api/audit", "/api/audit.csv", "/api/audit/atna"])
async def test_another_clinics_manager_learns_nothing_of_clinic_as_patient(
    service, consortium, path
):
    """Clinic B's manager searching for clinic A's patient gets an answer with none of the
    patient's records, in every format (the scope is applied in the query)."""
    await service.worklist(await service.login("dr.li"))
    await service.worklist(await service.login("liu"))

    response = await service.client.get(
        path, headers=await service.login("mgr.b"), params={"patient_id": "P-001"}
    )

    assert response.status == 200
    text = (await response.read()).decode("utf-8-sig")
    assert "P-001" not in text and "张伟" not in text and "ACC1" not in text
    if path == "/api/audit":
        assert (await response.json())["items"] == []


async def test_regional_managers_and_admins_see_every_facility(service, consortium):
    """The centre's manager and the admin read the whole consortium's trail."""
    await service.worklist(await service.login("dr.li"))
    await service.worklist(await service.login("wang"))

    for manager in ("boss", "root"):
        body = await search(service, await service.login(manager), action="worklist.query")
        assert sorted(i["username"] for i in body["items"]) == ["dr.li", "wang"]


async def test_search_pages_newest_first_by_cursor(service, consortium):
    """Keyset paging by id: every record once, in descending id order, next=null at the end."""
    specialist = await service.login("dr.li")
    for _ in range(5):
        await service.worklist(specialist)
    headers = await service.login("boss")
    seen, cursor = [], None
    while True:
        params = {"action": "worklist.query", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = await search(service, headers, **params)
        seen += [item["id"] for item in body["items"]]
        if (cursor := body["next"]) is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


async def test_search_filters_by_user_facility_outcome_and_time(service, consortium):
    """Filters combine; from is inclusive and to exclusive."""
    await service.worklist(await service.login("liu"))
    service.client.session.cookie_jar.clear()
    await service.client.post("/api/login", json={"username": "liu", "password": "nope"})
    headers = await service.login("root")
    everything = (await search(service, headers, limit="1000"))["items"]
    middle = everything[len(everything) // 2]

    by_user = await search(service, headers, user="wang")
    assert by_user["items"] and {i["username"] for i in by_user["items"]} == {"wang"}
    by_facility = await search(service, headers, facility=str(consortium["b"]))
    assert {i["username"] for i in by_facility["items"]} == {"liu"}
    denied = await search(service, headers, outcome="denied", action="auth.login")
    assert [i["detail"]["username"] for i in denied["items"]] == ["liu"]
    since = await search(service, headers, limit="1000", **{"from": middle["at"]})
    assert since["items"][-1]["id"] == middle["id"]
    until = await search(service, headers, limit="1000", to=middle["at"])
    assert until["items"][0]["id"] == middle["id"] - 1


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"from": "yesterday"}, "invalid_request"),
        ({"from": "2026-01-01T00:00:00"}, "invalid_request"),  # no zone: ambiguous in China
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "invalid_request"),
        ({"outcome": "maybe"}, "invalid_request"),
        ({"limit": "0"}, "invalid_request"),
        ({"cursor": "abc"}, "invalid_cursor"),
        ({"sort": "id"}, "invalid_request"),
    ],
)
async def test_bad_search_input_is_a_400_json_error(service, consortium, params, error):
    """Bad times, unknown values and parameters are refused with a stable error code."""
    response = await service.client.get(
        "/api/audit", headers=await service.login("boss"), params=params
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == error and body["detail"]


async def test_times_with_a_china_offset_mean_the_same_instant(service, consortium):
    """08:00 in Beijing is midnight UTC: both spellings find the same records."""
    headers = await service.login("boss")
    logins = await records(service, action="auth.login")
    instant = logins[-1]["at"]  # e.g. 2026-11-23T19:04:18.612844Z
    utc = await search(service, headers, action="auth.login", to=instant)
    in_beijing = (from_iso(instant) + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S.%f+08:00")
    beijing = await search(service, headers, action="auth.login", to=in_beijing)
    assert [i["id"] for i in utc["items"]] == [i["id"] for i in beijing["items"]]
    assert [i["id"] for i in utc["items"]] == [r["id"] for r in reversed(logins[:-1])]


# --------------------------------------------------------------------------- exports


async def test_csv_export_is_utf8_with_bom_a_header_and_the_matching_rows(service, consortium):
    """Excel-ready: BOM, header, oldest first, the chain's hashes included, Chinese intact."""
    await service.worklist(await service.login("dr.li"))
    response = await service.client.get(
        "/api/audit.csv", headers=await service.login("boss"), params={"patient_id": "P-001"}
    )

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    stored = {r["id"]: r for r in await records(service)}
    assert [r["action"] for r in rows] == ["consultation.request", "worklist.query"]
    for row in rows:
        assert row["hash"] == stored[int(row["id"])]["hash"]
        assert row["prev_hash"] == stored[int(row["id"])]["prev_hash"]
    # The export's own record is written once the last byte is sent.
    (export,) = await service.wait_for(lambda: records(service, action="audit.export"))
    assert '"exported": 2' in export["detail"] and '"format": "csv"' in export["detail"]


async def test_csv_cells_that_excel_would_run_as_formulas_are_defused(service, consortium):
    """A failed login's username is the attacker's text: it must not become a formula."""
    await service.client.post(
        "/api/login", json={"username": '=HYPERLINK("http://evil","x")', "password": "p"}
    )
    response = await service.client.get(
        "/api/audit.csv", headers=await service.login("boss"), params={"outcome": "denied"}
    )
    text = (await response.read()).decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["detail"].startswith('{"status": 401, "username": "=HYPERLINK')
    assert all(not value.startswith("=") for value in row.values())


async def test_cli_export_writes_the_file_and_is_recorded(service, consortium, tmp_path):
    """`teleread audit export --format csv --from ... --output FILE`, and the export itself
    joins the trail (as the operating-system user who ran it)."""
    output = tmp_path / "audit.csv"
    result = teleread_audit(
        service,
        "export",
        "--format",
        "csv",
        "--from",
        "2000-01-01T00:00:00Z",
        "--output",
        str(output),
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(output.read_bytes().decode("utf-8-sig"))))
    assert len(rows) == len(await records(service)) - 1  # all but the export's own record
    (export,) = await records(service, action="audit.export")
    assert export["username"].startswith("os:")
    assert teleread_audit(service, "verify").returncode == 0


async def test_cli_export_refuses_a_time_without_a_zone(service, consortium):
    """Like the API, the command wants Z or an offset."""
    result = teleread_audit(service, "export", "--format", "atna", "--from", "2026-01-01")
    assert result.returncode == 2
    assert "time zone" in result.stderr


async def test_text_that_is_not_valid_unicode_is_still_recorded(service, consortium):
    """An unpaired surrogate (legal in JSON, not in UTF-8) cannot make a record unwritable
    and so slip past the trail; the chain stays verifiable."""
    from service.storage.audit import append_audit
    from service.storage.audit_chain import AuditEntry

    entry = AuditEntry(
        at="2026-11-23T00:00:00.000000Z",
        action="auth.login",
        outcome="denied",
        client_ip="10.0.0.9",
        detail={"username": "\ud800evil"},
    )
    await service.database.write(append_audit, entry)

    (record,) = await records(service, client_ip="10.0.0.9")
    assert "evil" in record["detail"]
    assert (await service.database.read(verify_database)).ok


def test_the_patient_index_migration_fills_in_records_written_before_it(tmp_path):
    """Records appended before ``audit_patients`` existed are indexed when it is created, so the
    search by patient and verification cover the whole history."""
    import json

    from service.storage.audit_chain import GENESIS_HASH, AuditEntry, chain_hash
    from service.storage.database import connect
    from service.storage.schema import migrations

    db = connect(tmp_path / "old.db")
    migrations.apply(db, stop_before="m004_audit_patient_index")
    prev = GENESIS_HASH
    for entry in (
        AuditEntry(
            at="2026-01-01T00:00:00.000000Z",
            action="worklist.query",
            outcome="success",
            detail={"patients": ["P1", "P2"]},
        ),
        AuditEntry(
            at="2026-01-01T00:00:01.000000Z",
            action="consultation.view",
            outcome="success",
            patient_id="P2",
        ),
    ):
        prev_hash, prev = prev, chain_hash(prev, entry)
        db.execute(
            "INSERT INTO audit_log (at, action, outcome, patient_id, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                entry.at,
                entry.action,
                entry.outcome,
                entry.patient_id,
                json.dumps(entry.detail, sort_keys=True, ensure_ascii=False),
                prev_hash,
                prev,
            ],
        )

    migrations.apply(db)

    indexed = db.execute("SELECT audit_id, patient_id FROM audit_patients ORDER BY rowid")
    assert [tuple(r) for r in indexed] == [(1, "P1"), (1, "P2"), (2, "P2")]
    assert verify_database(db).ok
    db.conn.close()


async def test_login_is_recorded_as_the_user_logging_in_not_a_stale_cookie(service):
    """A login acts as the account it opens; a failed one as nobody, whatever cookie is sent."""
    centre = await service.add_facility("Centre X", "regional", "CENTRE_X")
    await service.add_user("first", "specialist", centre)
    await service.add_user("second", "manager", centre)
    await service.login("first")  # leaves first's session cookie in the client
    await service.login("second")
    await service.client.post("/api/login", json={"username": "second", "password": "wrong!!"})
    rows = await service.database.read(
        lambda db: [
            dict(r)
            for r in db.execute(
                "SELECT username, role, outcome FROM audit_log WHERE action = 'auth.login'"
                " ORDER BY id"
            )
        ]
    )
    assert rows[-2:] == [
        {"username": "second", "role": "manager", "outcome": "success"},
        {"username": "", "role": "", "outcome": "denied"},
    ]
