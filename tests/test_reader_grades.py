"""Readers' professional grades (issue 19): attending unless told otherwise, set by the admin API
(and its users page) or ``teleread user grade``; the review rule reads them."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from .conftest import PASSWORD
from .test_cli import TELEREAD, env, teleread  # noqa: F401 (the env fixture)


@pytest.fixture
def app_orthanc():
    """No image is stored or shown here: the app runs without Orthanc."""
    return None


@pytest.fixture
async def admin(service, people) -> dict[str, Any]:
    ids = await people.seed(
        {"centre": ("Regional Imaging Centre", "regional", "REGION_PACS")},
        {"root": ("admin", "centre"), "dr.li": ("specialist", "centre")},
    )
    return ids | {"headers": await service.login("root")}


async def grades(service, headers) -> dict[str, str]:
    listed = await service.client.get("/api/admin/users", headers=headers)
    return {u["username"]: u["grade"] for u in (await listed.json())["items"]}


async def test_accounts_are_attendings_until_an_administrator_says_otherwise(service, admin):
    assert (await grades(service, admin["headers"]))["dr.li"] == "attending"


async def test_an_administrator_creates_a_resident_and_promotes_them(service, admin):
    headers = admin["headers"]
    body = {
        "username": "dr.zhou",
        "role": "specialist",
        "facility_id": admin["centre"],
        "password": PASSWORD,
        "grade": "resident",
    }
    created = await service.client.post("/api/admin/users", headers=headers, json=body)
    assert created.status == 201, await created.text()
    user_id = (await created.json())["id"]
    assert (await grades(service, headers))["dr.zhou"] == "resident"
    changed = await service.client.patch(
        f"/api/admin/users/{user_id}", headers=headers, json={"grade": "associate_chief"}
    )
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["changed"] == ["grade"]
    assert (await grades(service, headers))["dr.zhou"] == "associate_chief"


async def test_an_unknown_grade_is_refused(service, admin):
    refused = await service.client.patch(
        f"/api/admin/users/{admin['dr.li']}", headers=admin["headers"], json={"grade": "professor"}
    )
    assert refused.status == 400


def test_teleread_user_grade_sets_it_and_user_add_takes_one(env, tmp_path):  # noqa: F811
    teleread(env, "facility", "add", "--name", "Centre", "--kind", "regional", "--aet", "CENTRE")
    added = teleread(
        env, "user", "add", "dr.zhou", "--role", "specialist", "--facility", "1",
        "--grade", "resident", "--password-stdin", stdin="s3cret-passw0rd\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    database = tmp_path / "var" / "teleread.db"

    def grade() -> str:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT grade FROM users WHERE username = 'dr.zhou'").fetchone()[0]

    assert grade() == "resident"
    assert teleread(env, "user", "grade", "dr.zhou", "chief").returncode == 0
    assert grade() == "chief"
    missing = teleread(env, "user", "grade", "nobody", "chief")
    assert missing.returncode == 1 and "nobody" in missing.stderr
