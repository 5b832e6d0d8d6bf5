"""The regional centre's administrators review likely patient matches and link, reject, unlink
and reverse (issue 21), through /api/admin/patients: audited, a reason each time, refusals as
JSON 400/404/409 that change nothing; nobody else reaches the list, the page or the numbers.

The world (one app for the module, no Orthanc: no image is involved): the regional centre with
its administrator and a specialist, a county hospital with a clinician, a township clinic with
a requester and its own administrator. Patients are filed through the request API, as a
clinic would; each test uses its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.cli.main import build_parser
from service.cli.patients import patients_command
from service.settings import Settings
from service.storage import Conflict

from . import backends
from .conftest import Service, suite_settings
from .test_patient_identity_capture import resident_id

SERIAL = itertools.count(1)
BASE = "/api/admin/patients"


@dataclass
class World:
    service: Service
    county: int
    township: int
    headers: dict[str, dict[str, str]]
    data_dir: Path
    settings: Settings

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        def read(db):
            return [dict(r) for r in db.execute(sql, list(params))]

        return await self.service.database.read(read)

    async def file(self, who: str, patient_id: str, name: str, born: str, sex: str, **extra):
        body = {
            "accession_number": f"L-{next(SERIAL)}", "patient_id": patient_id,
            "patient_name": name, "patient_birth_date": born, "patient_sex": sex,
        } | extra  # fmt: skip
        answer = await self.service.client.post(
            "/api/consultations", json=body, headers=self.headers[who]
        )
        assert answer.status == 201, await answer.text()

    async def identity(self, facility_id: int, patient_id: str) -> dict[str, Any]:
        [row] = await self.rows(
            "SELECT * FROM patient_identities WHERE facility_id = ? AND patient_id = ?",
            facility_id,
            patient_id,
        )
        return row

    async def candidate_of(self, patient_id: str) -> dict[str, Any]:
        [row] = await self.rows(
            """
            SELECT k.* FROM patient_link_candidates k
            JOIN patient_identities i ON i.id IN (k.identity_id, k.other_identity_id)
            WHERE i.patient_id = ?
            """,
            patient_id,
        )
        return row

    async def call(self, who: str | None, path: str, **body: Any):
        headers = self.headers[who] if who else {}
        if body:
            return await self.service.client.post(BASE + path, json=body, headers=headers)
        return await self.service.client.get(BASE + path, headers=headers)

    async def pair(self, tag: str, born: str = "", **extra: Any) -> tuple[dict, dict]:
        """A likely match: the same Han name, birth date and sex at the township and county."""
        born = born or f"19{next(SERIAL) % 90 + 10:02d}0{next(SERIAL) % 9 + 1}15"
        await self.file("wu", f"TW-{tag}", "司马^光", born, "M", **extra)
        await self.file("li", f"CY-{tag}", "司马^光", born, "M")
        return (
            await self.identity(self.township, f"TW-{tag}"),
            await self.identity(self.county, f"CY-{tag}"),
        )


@pytest.fixture(scope="module")
async def world(tmp_path_factory, database_backend) -> AsyncIterator[World]:
    settings = suite_settings(tmp_path_factory.mktemp("links"), None)
    client = TestClient(TestServer(create_app(settings, orthanc=False)))
    await client.start_server()
    try:
        service = Service(client, client.app, None)
        centre = await service.add_facility("Regional Centre", "regional", "CENTRE")
        county = await service.add_facility("County Hospital", "county", "COUNTY_CT")
        township = await service.add_facility("Township Clinic", "township", "TOWN_DR")
        users = {
            "root": ("admin", centre), "doc": ("specialist", centre), "li": ("clinician", county),
            "wu": ("requester", township), "tadmin": ("admin", township),
        }  # fmt: skip
        headers = {}
        for username, (role, facility) in users.items():
            await service.add_user(username, role, facility)
            headers[username] = await service.login(username)
        yield World(service, county, township, headers, settings.data_dir, settings)
    finally:
        await client.close()


async def test_the_review_list_shows_both_identities_side_by_side_to_the_centres_admin(world):
    """Facility, local ID, name, birth date, sex and the number in full (and masked) for the
    centre's administrator; the reasons say why the pair was proposed."""
    number = resident_id("19700115", "M")
    await world.file("wu", "TW-SIDE", "诸葛^亮", "19700115", "M", patient_identity_number=number)
    await world.file("li", "CY-SIDE", "Zhuge^Liang", "19700115", "M")
    answer = await world.call("root", "/candidates")
    assert answer.status == 200, await answer.text()
    [item] = [i for i in (await answer.json())["items"] if i["identity"]["patient_id"] == "TW-SIDE"]
    assert item["reasons"] == ["birth_date", "sex", "phonetic_name"] and item["status"] == "pending"
    mine, other = item["identity"], item["other"]
    assert (mine["facility_name"], mine["name"], mine["birth_date"], mine["sex"]) == (
        "Township Clinic", "诸葛^亮", "19700115", "M",
    )  # fmt: skip
    assert (other["facility_name"], other["patient_id"]) == ("County Hospital", "CY-SIDE")
    [identifier] = mine["identifiers"]
    assert (identifier["value"], identifier["source"]) == (number, "web")
    assert identifier["masked"] == number[:4] + "*" * 10 + number[-4:]
    page = await world.service.client.get("/admin/patients", headers=world.headers["root"])
    assert page.status == 200 and 'id="patient-candidates"' in await page.text()


@pytest.mark.parametrize("who", ["tadmin", "doc", "li", "wu"])
async def test_nobody_but_the_centres_admin_reaches_the_list_the_page_or_a_decision(world, who):
    """A clinic's administrator and every other role: 403 on the list, the history, the page
    and a link, and the link is not made (no session: tests/test_authorisation_matrix.py)."""
    one, two = await world.pair(f"DENY-{who}")
    expected = 403
    for path in ("/candidates", "/changes"):
        assert (await world.call(who, path)).status == expected
    page = await world.service.client.get("/admin/patients", headers=world.headers[who])
    assert page.status == 403
    candidate = await world.candidate_of(f"TW-DENY-{who}")
    answer = await world.call(who, f"/candidates/{candidate['id']}/link", reason="same man")
    assert answer.status == expected
    assert (await world.identity(world.county, f"CY-DENY-{who}"))["person_id"] == two["person_id"]
    assert (await world.candidate_of(f"TW-DENY-{who}"))["status"] == "pending"


async def test_linking_a_candidate_joins_the_persons_once_and_is_audited(world):
    """200 with the link change; the two identities are one person; the match is linked by the
    administrator with the reason; linking again is 409; the audit record names the identities
    and never a number."""
    one, two = await world.pair(
        "LINK", "19800101", patient_identity_number=resident_id("19800101", "M")
    )
    candidate = await world.candidate_of("TW-LINK")
    answer = await world.call("root", f"/candidates/{candidate['id']}/link", reason="same card")
    assert answer.status == 200, await answer.text()
    decided = await answer.json()
    assert decided["change_id"] and set(decided["identity_ids"]) == {one["id"], two["id"]}
    after = await world.identity(world.county, "CY-LINK")
    assert after["person_id"] == (await world.identity(world.township, "TW-LINK"))["person_id"]
    row = await world.candidate_of("TW-LINK")
    assert (row["status"], row["reason"], row["change_id"]) == (
        "linked", "same card", decided["change_id"],
    )  # fmt: skip
    again = await world.call("root", f"/candidates/{candidate['id']}/link", reason="again")
    assert again.status == 409 and (await again.json())["error"] == "candidate_decided"
    [audit] = await world.rows(
        "SELECT * FROM audit_log WHERE action = 'patient.linked' AND resource_id = ?"
        " AND outcome = 'success'",
        str(candidate["id"]),
    )
    numbers = await world.rows("SELECT value FROM patient_identifiers")
    assert all(n["value"] not in audit["detail"] for n in numbers)
    indexed = await world.rows("SELECT * FROM audit_patients WHERE audit_id = ?", audit["id"])
    assert sorted(r["patient_id"] for r in indexed) == ["CY-LINK", "TW-LINK"]


async def test_a_decision_needs_a_reason_and_an_existing_match(world):
    """A blank reason is 400, an unknown match 404, both as JSON; nothing changes."""
    await world.pair("REASON")
    candidate = await world.candidate_of("TW-REASON")
    blank = await world.call("root", f"/candidates/{candidate['id']}/link", reason="  ")
    assert blank.status == 400 and (await blank.json())["error"] == "invalid_request"
    missing = await world.call("root", "/candidates/999999/reject", reason="no")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    assert (await world.candidate_of("TW-REASON"))["status"] == "pending"


async def test_a_rejected_match_is_not_proposed_again(world):
    """Rejected with a reason; the same patients filed again leave it rejected, unlinked."""
    one, two = await world.pair("REJECT")
    candidate = await world.candidate_of("TW-REJECT")
    answer = await world.call("root", f"/candidates/{candidate['id']}/reject", reason="twins")
    assert answer.status == 200 and (await answer.json())["change_id"] is None
    await world.file("li", "CY-REJECT", "司马^光", two["birth_date"], "M")
    row = await world.candidate_of("TW-REJECT")
    assert (row["status"], row["reason"]) == ("rejected", "twins")
    assert (await world.identity(world.county, "CY-REJECT"))["person_id"] == two["person_id"]


async def test_link_unlink_and_reverse_two_identities(world):
    """Two identities linked directly; one unlinked (409 a second time); the unlink reversed
    links them again (409 a second time); the history lists all three with who and why."""
    one, two = await world.pair("MANUAL")
    linked = await world.call(
        "root", "/links", identity_id=one["id"], other_identity_id=two["id"], reason="HIS merge"
    )
    assert linked.status == 200, await linked.text()
    assert (await world.candidate_of("TW-MANUAL"))["status"] == "linked"
    twice = await world.call(
        "root", "/links", identity_id=one["id"], other_identity_id=two["id"], reason="again"
    )
    assert twice.status == 409 and (await twice.json())["error"] == "already_linked"
    unlinked = await world.call("root", f"/identities/{two['id']}/unlink", reason="wrong man")
    assert unlinked.status == 200, await unlinked.text()
    persons = {(await world.identity(f, p))["person_id"] for f, p in (
        (world.township, "TW-MANUAL"), (world.county, "CY-MANUAL"),
    )}  # fmt: skip
    assert len(persons) == 2
    again = await world.call("root", f"/identities/{two['id']}/unlink", reason="again")
    assert again.status == 409 and (await again.json())["error"] == "not_linked"
    change = (await unlinked.json())["change_id"]
    reversed_ = await world.call("root", f"/changes/{change}/reverse", reason="it was him")
    assert reversed_.status == 200, await reversed_.text()
    one_after = await world.identity(world.township, "TW-MANUAL")
    assert one_after["person_id"] == (await world.identity(world.county, "CY-MANUAL"))["person_id"]
    twice = await world.call("root", f"/changes/{change}/reverse", reason="again")
    assert twice.status == 409 and (await twice.json())["error"] == "already_reversed"
    history = (await (await world.call("root", "/changes")).json())["items"]
    mine = [h for h in history if h["identity"] and h["identity"]["id"] in (one["id"], two["id"])]
    assert [(h["action"], h["method"], h["actor_name"], h["reason"]) for h in mine[:3]] == [
        ("link", "reversal", "root", "it was him"),
        ("unlink", "administrator", "root", "wrong man"),
        ("link", "administrator", "root", "HIS merge"),
    ]


async def test_a_match_linked_by_a_shared_number_leaves_the_review_list(world):
    """A pending match (no number yet) whose two patients are later filed with one number are
    linked automatically by it and the match resolved as linked."""
    number = resident_id("19750505", "M")
    await world.pair("AUTO", "19750505")
    assert (await world.candidate_of("TW-AUTO"))["status"] == "pending"
    for who, patient_id in (("wu", "TW-AUTO"), ("li", "CY-AUTO")):
        await world.file(
            who, patient_id, "司马^光", "19750505", "M", patient_identity_number=number
        )
    assert (await world.candidate_of("TW-AUTO"))["status"] == "linked"


async def test_the_cli_lists_numbers_masked_and_links_with_an_audit_record(world):
    """``teleread patients candidates`` prints JSON lines with the numbers masked; ``teleread
    patients link ID --reason`` links the match and appends its audit record (via cli)."""
    number = resident_id("19660606", "M")
    await world.pair("CLI", "19660606", patient_identity_number=number)
    candidate = await world.candidate_of("TW-CLI")
    env = backends.cli_environment(world.settings)
    teleread = str(Path(sys.executable).with_name("teleread"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [teleread, "patients", *args], env=env, capture_output=True, text=True, timeout=120
        )

    listed = await asyncio.to_thread(run, "candidates")
    assert listed.returncode == 0, listed.stderr
    assert number not in listed.stdout and number[:4] + "*" * 10 + number[-4:] in listed.stdout
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert candidate["id"] in [r["id"] for r in rows]
    # The decisions in this process (the parser and the command's function; a subprocess per
    # call would add a second of start-up each), on a database connection of their own.
    settings = world.settings

    def command(*args: str) -> int:
        return patients_command(settings, build_parser().parse_args(["patients", *args]))

    link = ("link", str(candidate["id"]), "--reason")
    assert await asyncio.to_thread(command, *link, "one man") == 0
    assert (await world.candidate_of("TW-CLI"))["status"] == "linked"
    [audit] = await world.rows(
        "SELECT * FROM audit_log WHERE action = 'patient.linked' AND resource_id = ?",
        str(candidate["id"]),
    )
    assert '"via": "cli"' in audit["detail"] and audit["user_id"] is None
    with pytest.raises(Conflict, match="already linked"):
        await asyncio.to_thread(command, *link, "again")


async def test_one_facility_registering_a_patient_twice_is_a_likely_match(world):
    """The township files the same woman under two local IDs: proposed, not linked."""
    await world.file("wu", "TW-TWICE-1", "慕容^雪", "19900909", "F")
    await world.file("wu", "TW-TWICE-2", "Murong Xue", "19900909", "F")
    one = await world.identity(world.township, "TW-TWICE-1")
    two = await world.identity(world.township, "TW-TWICE-2")
    assert one["person_id"] != two["person_id"]
    row = await world.candidate_of("TW-TWICE-2")
    assert (row["identity_id"], row["other_identity_id"], row["status"]) == (
        one["id"], two["id"], "pending",
    )  # fmt: skip
