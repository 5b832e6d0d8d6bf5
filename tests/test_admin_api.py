"""Administration API: accounts, facilities and one's own password, against the real service.

Each test states one rule: who may call the admin routes, what a change does to open sessions,
which changes are refused (last administrator, self-lockout, validation), how facilities reach
Orthanc's list of known modalities, and that every change leaves an audit record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.auth import accounts
from service.auth.sessions import CurrentUser
from service.http.keys import ORTHANC
from service.storage import Conflict

from .conftest import PASSWORD, orthanc_if_asked

NON_ADMIN_ROLES = ("radiographer", "clinician", "requester", "specialist", "manager")
NEW_PASSWORD = "a-brand-new-passphrase"


@pytest.fixture
def app_orthanc(request):
    """Only the tests of AE title registration (they name ``orthanc``) start an Orthanc."""
    return orthanc_if_asked(request)


@pytest.fixture
async def consortium(service, people) -> dict[str, Any]:
    """A regional centre with one administrator, a township clinic with a radiographer."""
    ids = await people.seed(
        {
            "centre": ("Regional Imaging Centre", "regional", "REGION_PACS"),
            "clinic": ("Dongxiang Township", "township", "DONGXIANG_DR"),
        },
        {"root": ("admin", "centre"), "wang": ("radiographer", "clinic")},
    )
    return ids | {"admin": await service.login("root")}


async def create_user(service, headers, **fields: Any):
    body = {"username": "li.na", "role": "clinician", "password": PASSWORD} | fields
    return await service.client.post("/api/admin/users", headers=headers, json=body)


async def create_facility(service, headers, **fields: Any):
    body = {"name": "Hexi Township", "kind": "township", "aet": "HEXI_CR"} | fields
    return await service.client.post("/api/admin/facilities", headers=headers, json=body)


async def is_live(service, headers) -> bool:
    return (await service.client.get("/api/me", headers=headers)).status == 200


async def audit_records(service, action: str | None = None) -> list[dict[str, Any]]:
    def read(db):
        rows = db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    records = await service.database.read(read)
    return [r for r in records if action is None or r["action"] == action]


async def orthanc_modalities(service) -> dict[str, Any]:
    return await service.app[ORTHANC].get("/modalities", expand="")


# ---- accounts ---------------------------------------------------------------------------


async def test_created_user_can_log_in(service, consortium):
    """POST /api/admin/users answers 201 with the id; the new account logs in at once."""
    response = await create_user(
        service, consortium["admin"], facility_id=consortium["clinic"], display_name="李娜"
    )
    assert response.status == 201, await response.text()
    user_id = (await response.json())["id"]
    me = await service.client.get("/api/me", headers=await service.login("li.na"))
    body = await me.json()
    assert body["id"] == user_id
    assert (body["role"], body["facility_id"], body["display_name"]) == (
        "clinician",
        consortium["clinic"],
        "李娜",
    )


async def test_user_list_shows_role_facility_and_state_but_never_a_hash(service, consortium):
    """The list names each account's facility and open sessions; no password hash leaves."""
    await service.login("wang")
    response = await service.client.get("/api/admin/users", headers=consortium["admin"])
    assert response.status == 200
    text = await response.text()
    assert "password" not in text and "$argon2" not in text
    wang = next(u for u in (await response.json())["items"] if u["username"] == "wang")
    assert wang["facility_name"] == "Dongxiang Township"
    assert wang["role"] == "radiographer"
    assert wang["disabled"] is False
    assert wang["active_sessions"] == 1
    assert wang["created_at"].endswith("Z")


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_non_admins_get_403_on_every_admin_route(service, consortium, role):
    """Walk the route table: every /api/admin/ route and admin page refuses other roles."""
    await service.add_user(f"{role}_x", role, consortium["clinic"])
    headers = await service.login(f"{role}_x")
    checked = []
    for route in service.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(("/api/admin/", "/admin/")):
            continue
        url = path.replace("{id:\\d+}", "{id}").replace("{id}", str(consortium["wang"]))
        response = await service.client.request(
            route.method, url, headers=headers, json={}, allow_redirects=False
        )
        assert response.status == 403, (route.method, url, response.status)
        checked.append(f"{route.method} {url}")
    assert len(checked) >= 10, checked


async def test_disabling_a_user_revokes_their_sessions_at_once(service, consortium):
    """PATCH disabled=true: the user's open token answers 401 on its very next request."""
    wang = await service.login("wang")
    other_device = await service.login("wang")
    response = await service.client.patch(
        f"/api/admin/users/{consortium['wang']}",
        headers=consortium["admin"],
        json={"disabled": True},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["sessions_revoked"] == 2
    assert not await is_live(service, wang)
    assert not await is_live(service, other_device)


async def test_disabled_user_cannot_log_in_until_enabled(service, consortium):
    """POST .../disable refuses logins; POST .../enable lets the same password in again."""
    url = f"/api/admin/users/{consortium['wang']}"
    assert (await service.client.post(f"{url}/disable", headers=consortium["admin"])).status == 200
    login = {"username": "wang", "password": PASSWORD}
    assert (await service.client.post("/api/login", json=login)).status == 401
    assert (await service.client.post(f"{url}/enable", headers=consortium["admin"])).status == 200
    assert (await service.client.post("/api/login", json=login)).status == 200


async def test_role_and_facility_changes_apply_to_open_sessions(service, consortium):
    """Sessions resolve the account afresh: a moved user's open session sees the new facility."""
    wang = await service.login("wang")
    response = await service.client.patch(
        f"/api/admin/users/{consortium['wang']}",
        headers=consortium["admin"],
        json={"facility_id": consortium["centre"], "role": "specialist"},
    )
    assert response.status == 200
    assert sorted((await response.json())["changed"]) == ["facility_id", "role"]
    me = await (await service.client.get("/api/me", headers=wang)).json()
    assert (me["role"], me["facility_id"]) == ("specialist", consortium["centre"])


async def test_password_reset_revokes_sessions_and_the_new_password_works(service, consortium):
    """The old token dies, the old password fails, the new one logs in."""
    wang = await service.login("wang")
    response = await service.client.post(
        f"/api/admin/users/{consortium['wang']}/password",
        headers=consortium["admin"],
        json={"password": NEW_PASSWORD},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["sessions_revoked"] == 1
    assert not await is_live(service, wang)
    old = await service.client.post("/api/login", json={"username": "wang", "password": PASSWORD})
    assert old.status == 401
    new = await service.client.post(
        "/api/login", json={"username": "wang", "password": NEW_PASSWORD}
    )
    assert new.status == 200


async def test_password_reset_lifts_a_login_lockout(service, consortium):
    """After five failures the account is locked; an administrator's reset unlocks it."""
    for _ in range(5):
        await service.client.post("/api/login", json={"username": "wang", "password": "nope"})
    await service.client.post(
        f"/api/admin/users/{consortium['wang']}/password",
        headers=consortium["admin"],
        json={"password": NEW_PASSWORD},
    )
    response = await service.client.post(
        "/api/login", json={"username": "wang", "password": NEW_PASSWORD}
    )
    assert response.status == 200


async def test_password_change_keeps_the_current_session_and_revokes_the_others(
    service, consortium
):
    """POST /api/me/password: this session lives on, the user's other sessions end."""
    here = await service.login("wang")
    elsewhere = await service.login("wang")
    response = await service.client.post(
        "/api/me/password",
        headers=here,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["sessions_revoked"] == 1
    assert await is_live(service, here)
    assert not await is_live(service, elsewhere)
    new = await service.client.post(
        "/api/login", json={"username": "wang", "password": NEW_PASSWORD}
    )
    assert new.status == 200


async def test_wrong_current_password_is_403_and_counts_towards_the_lockout(service, consortium):
    """Guessing through a stolen session is as slow as guessing at the login form."""
    wang = await service.login("wang")
    body = {"current_password": "not-my-password", "new_password": NEW_PASSWORD}
    response = await service.client.post("/api/me/password", headers=wang, json=body)
    assert response.status == 403
    assert (await response.json())["error"] == "wrong_password"
    for _ in range(4):
        await service.client.post("/api/me/password", headers=wang, json=body)
    locked = await service.client.post("/api/me/password", headers=wang, json=body)
    assert locked.status == 429
    login = await service.client.post("/api/login", json={"username": "wang", "password": PASSWORD})
    assert login.status == 429


async def test_sole_admin_cannot_disable_themselves(service, consortium):
    """The last enabled administrator stays: 409 last_admin, and the account still works."""
    response = await service.client.patch(
        f"/api/admin/users/{consortium['root']}",
        headers=consortium["admin"],
        json={"disabled": True},
    )
    assert response.status == 409
    assert (await response.json())["error"] == "last_admin"
    assert await is_live(service, consortium["admin"])


@pytest.mark.parametrize("change", [{"disabled": True}, {"role": "manager"}])
async def test_admin_cannot_lock_themselves_out_even_with_another_admin(
    service, consortium, change
):
    """Disabling oneself or dropping one's own admin role is 409 self_lockout."""
    await service.add_user("root2", "admin", consortium["centre"])
    response = await service.client.patch(
        f"/api/admin/users/{consortium['root']}", headers=consortium["admin"], json=change
    )
    assert response.status == 409
    assert (await response.json())["error"] == "self_lockout"


async def test_an_admin_can_disable_another_admin(service, consortium):
    """With two administrators, one may disable the other."""
    root2 = await service.add_user("root2", "admin", consortium["centre"])
    response = await service.client.post(
        f"/api/admin/users/{root2}/disable", headers=consortium["admin"]
    )
    assert response.status == 200


async def test_last_admin_rule_holds_whoever_asks(service, consortium):
    """The rule lives in the domain: demoting the only admin fails even for another caller."""
    caller = CurrentUser(
        id=0,
        username="cli",
        display_name="",
        role="admin",
        facility_id=consortium["centre"],
        facility_name="",
        facility_kind="regional",
        facility_timezone="UTC",
        locale=None,
        session_id=0,
        csrf_token="",
    )
    with pytest.raises(Conflict) as refused:
        await accounts.change_account(
            service.database, caller, consortium["root"], accounts.AccountChange(role="manager")
        )
    assert refused.value.code == "last_admin"


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "wang fang"},
        {"username": "王芳"},
        {"username": ""},
        {"username": "x" * 65},
        {"password": "short"},
        {"role": "superuser"},
        {"facility_id": "the clinic"},
        {"unexpected": 1},
    ],
    ids=lambda f: next(iter(f)),
)
async def test_invalid_user_fields_are_400(service, consortium, fields):
    """Username pattern and length, password length, role and unknown fields are checked."""
    response = await create_user(
        service, consortium["admin"], **({"facility_id": consortium["clinic"]} | fields)
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_unknown_facility_is_404(service, consortium):
    """An account must belong to an existing facility."""
    response = await create_user(service, consortium["admin"], facility_id=9999)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_duplicate_username_is_409(service, consortium):
    """Usernames are unique."""
    response = await create_user(
        service, consortium["admin"], username="wang", facility_id=consortium["clinic"]
    )
    assert response.status == 409
    assert (await response.json())["error"] == "username_taken"


@pytest.mark.parametrize("body", [{}, {"role": None}, {"disabled": "perhaps"}])
async def test_empty_or_null_changes_are_400(service, consortium, body):
    """A PATCH must change something, and cannot null a required field."""
    response = await service.client.patch(
        f"/api/admin/users/{consortium['wang']}", headers=consortium["admin"], json=body
    )
    assert response.status == 400


async def test_changing_an_unknown_user_is_404(service, consortium):
    """Ids that do not exist are 404, for changes and password resets alike."""
    patch = await service.client.patch(
        "/api/admin/users/9999", headers=consortium["admin"], json={"display_name": "x"}
    )
    reset = await service.client.post(
        "/api/admin/users/9999/password", headers=consortium["admin"], json={"password": PASSWORD}
    )
    assert patch.status == reset.status == 404


# ---- facilities -------------------------------------------------------------------------


async def test_facility_creation_registers_the_ae_title_with_orthanc(service, consortium, orthanc):
    """201 {id, registered: true}; Orthanc's known modalities now include the AE title."""
    response = await create_facility(
        service,
        consortium["admin"],
        contact="0930-1234567",
        timezone="Asia/Urumqi",
        dicom_host="10.2.3.4",
        dicom_port=11112,
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["registered"] is True
    modality = (await orthanc_modalities(service))["HEXI_CR"]
    assert (modality["AET"], modality["Host"], modality["Port"]) == ("HEXI_CR", "10.2.3.4", 11112)
    listed = await service.client.get("/api/admin/facilities", headers=consortium["admin"])
    hexi = next(f for f in (await listed.json())["items"] if f["id"] == body["id"])
    assert (hexi["timezone"], hexi["contact"]) == ("Asia/Urumqi", "0930-1234567")


async def test_facility_time_zone_defaults_to_the_service_setting(service, consortium):
    """Without a time zone the facility gets TELEREAD_DEFAULT_TIMEZONE's."""
    response = await create_facility(service, consortium["admin"])
    facility_id = (await response.json())["id"]
    listed = await service.client.get("/api/admin/facilities", headers=consortium["admin"])
    hexi = next(f for f in (await listed.json())["items"] if f["id"] == facility_id)
    assert hexi["timezone"] == "Asia/Shanghai"


async def test_changing_the_ae_title_re_registers_it_and_removes_the_old_one(
    service, consortium, orthanc
):
    """PATCH aet: Orthanc knows the new AE title and no longer the old one."""
    facility_id = (await (await create_facility(service, consortium["admin"])).json())["id"]
    response = await service.client.patch(
        f"/api/admin/facilities/{facility_id}",
        headers=consortium["admin"],
        json={"aet": "HEXI_DR", "contact": "Dr Ma"},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["registered"] is True and body["changed"] == ["aet", "contact"]
    modalities = await orthanc_modalities(service)
    assert "HEXI_DR" in modalities and "HEXI_CR" not in modalities


async def test_changes_that_orthanc_does_not_know_about_leave_it_alone(
    service, consortium, orthanc
):
    """Renaming a facility re-registers nothing (registered: null)."""
    facility_id = (await (await create_facility(service, consortium["admin"])).json())["id"]
    response = await service.client.patch(
        f"/api/admin/facilities/{facility_id}",
        headers=consortium["admin"],
        json={"name": "Hexi Central Health Centre", "kind": "county"},
    )
    assert (await response.json())["registered"] is None


async def test_duplicate_ae_title_is_409(service, consortium):
    """An AE title names one facility: on creation and on change."""
    created = await create_facility(service, consortium["admin"], aet="DONGXIANG_DR")
    assert created.status == 409
    assert (await created.json())["error"] == "aet_taken"
    facility_id = (await (await create_facility(service, consortium["admin"])).json())["id"]
    changed = await service.client.patch(
        f"/api/admin/facilities/{facility_id}",
        headers=consortium["admin"],
        json={"aet": "DONGXIANG_DR"},
    )
    assert changed.status == 409
    assert (await changed.json())["error"] == "aet_taken"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Beijing", "../../etc/passwd", ""])
async def test_unknown_time_zone_is_400(service, consortium, zone):
    """Time zones are IANA names the server knows (zoneinfo), on creation and on change."""
    created = await create_facility(service, consortium["admin"], timezone=zone)
    assert created.status == 400
    changed = await service.client.patch(
        f"/api/admin/facilities/{consortium['clinic']}",
        headers=consortium["admin"],
        json={"timezone": zone},
    )
    assert changed.status == 400


@pytest.mark.parametrize("aet", ["", "A" * 17, "BAD\\AET", "HEXI.CR", "HEXI CR", "HEXI/CR"])
async def test_invalid_ae_title_is_400(service, consortium, aet):
    """1–16 letters, digits, '_' or '-': what DICOM and Orthanc's modality names both accept."""
    response = await create_facility(service, consortium["admin"], aet=aet)
    assert response.status == 400


async def test_facility_is_created_even_when_orthanc_is_down(service, consortium, orthanc):
    """The database is the truth: 201 with registered false when Orthanc is unreachable."""
    await service.orthanc.kill()
    response = await create_facility(service, consortium["admin"])
    assert response.status == 201
    assert (await response.json())["registered"] is False
    listed = await service.client.get("/api/admin/facilities", headers=consortium["admin"])
    assert "HEXI_CR" in {f["aet"] for f in (await listed.json())["items"]}


# ---- audit trail and documentation ------------------------------------------------------


async def test_every_change_leaves_an_audit_record(service, consortium):
    """Each administrative change is recorded with its action, target and a success outcome."""
    admin = consortium["admin"]
    user_id = (await (await create_user(service, admin, facility_id=consortium["clinic"])).json())[
        "id"
    ]
    url = f"/api/admin/users/{user_id}"
    await service.client.patch(url, headers=admin, json={"role": "requester"})
    await service.client.post(f"{url}/disable", headers=admin)
    await service.client.post(f"{url}/enable", headers=admin)
    await service.client.post(f"{url}/password", headers=admin, json={"password": NEW_PASSWORD})
    facility_id = (await (await create_facility(service, admin)).json())["id"]
    await service.client.patch(
        f"/api/admin/facilities/{facility_id}", headers=admin, json={"aet": "HEXI_DR"}
    )
    await service.client.post(
        "/api/me/password",
        headers=admin,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    records = await audit_records(service)
    expected = [
        ("user.create", str(user_id)),
        ("user.update", str(user_id)),
        ("user.disable", str(user_id)),
        ("user.enable", str(user_id)),
        ("user.password_reset", str(user_id)),
        ("facility.create", str(facility_id)),
        ("facility.update", str(facility_id)),
        ("user.password_change", str(consortium["root"])),
    ]
    changes = [(r["action"], r["resource_id"]) for r in records if r["action"] != "auth.login"]
    assert changes == expected
    assert {r["outcome"] for r in records} == {"success"}
    assert all(r["username"] == "root" for r in records if r["action"] != "auth.login")
    update = next(r for r in records if r["action"] == "user.update")
    assert update["detail"]["changes"] == {"role": "requester"}
    moved = next(r for r in records if r["action"] == "facility.update")
    assert moved["detail"]["changes"] == {"aet": "HEXI_DR"}


async def test_refused_changes_are_recorded_too(service, consortium):
    """A refused rule is 'failed', a forbidden caller 'denied'; no password is ever recorded."""
    await service.client.patch(
        f"/api/admin/users/{consortium['root']}",
        headers=consortium["admin"],
        json={"disabled": True},
    )
    wang = await service.login("wang")
    await service.client.post(
        "/api/admin/users",
        headers=wang,
        json={"username": "x", "role": "admin", "facility_id": 1, "password": PASSWORD},
    )
    records = await audit_records(service)
    refused = next(r for r in records if r["action"] == "user.update")
    assert refused["outcome"] == "failed" and refused["detail"]["status"] == 409
    assert refused["detail"]["requested"] == {"disabled": True}
    denied = next(r for r in records if r["action"] == "user.create")
    assert denied["outcome"] == "denied" and denied["username"] == "wang"
    assert PASSWORD not in json.dumps(records)


async def test_openapi_lists_the_admin_routes(service):
    """/api/openapi.json documents every new route with its models."""
    document = await (await service.client.get("/api/openapi.json")).json()
    paths = document["paths"]
    for path, method in [
        ("/api/admin/users", "get"),
        ("/api/admin/users", "post"),
        ("/api/admin/users/{id}", "patch"),
        ("/api/admin/users/{id}/disable", "post"),
        ("/api/admin/users/{id}/enable", "post"),
        ("/api/admin/users/{id}/password", "post"),
        ("/api/admin/facilities", "get"),
        ("/api/admin/facilities", "post"),
        ("/api/admin/facilities/{id}", "patch"),
        ("/api/me/password", "post"),
    ]:
        assert method in paths[path], (path, method)
    assert paths["/api/admin/users"]["post"]["x-roles"] == ["admin"]
    schema = document["components"]["schemas"]["UserCreate"]
    assert schema["properties"]["username"]["pattern"] == "^[A-Za-z0-9._-]+$"


async def test_admin_sets_a_specialists_subspecialties_for_queue_routing(service):
    """Subspecialties (comma-separated queue names) are set by an admin and listed back."""
    centre = await service.add_facility("Centre S", "regional", "CENTRE_S")
    await service.add_user("root_s", "admin", centre)
    reader = await service.add_user("reader_s", "specialist", centre)
    admin = await service.login("root_s")
    response = await service.client.patch(
        f"/api/admin/users/{reader}", headers=admin, json={"subspecialties": "neuro,chest"}
    )
    assert response.status == 200, await response.text()
    listed = await (await service.client.get("/api/admin/users", headers=admin)).json()
    assert {u["username"]: u["subspecialties"] for u in listed["items"]}["reader_s"] == (
        "neuro,chest"
    )
    bad = await service.client.patch(
        f"/api/admin/users/{reader}", headers=admin, json={"subspecialties": "Neuro; chest"}
    )
    assert bad.status == 400


# ---- the DICOM person name a signer's SR carries ----------------------------------------

LI_MING = "Li^Ming=李^明=lǐ^míng"


async def listed_user(service, headers, username: str) -> dict[str, Any]:
    listed = await (await service.client.get("/api/admin/users", headers=headers)).json()
    return next(u for u in listed["items"] if u["username"] == username)


async def test_admin_sets_changes_and_clears_a_dicom_name(service, consortium):
    """Created with a DICOM name, changed by PATCH (audited like any field), cleared with '':
    the list shows the stored name and the one the SR derives while it is empty."""
    admin = consortium["admin"]
    created = await create_user(
        service, admin, facility_id=consortium["clinic"], display_name="李明", dicom_name=LI_MING
    )
    assert created.status == 201, await created.text()
    user_id = (await created.json())["id"]
    user = await listed_user(service, admin, "li.na")
    assert (user["dicom_name"], user["dicom_name_derived"]) == (LI_MING, LI_MING)

    url = f"/api/admin/users/{user_id}"
    changed = await service.client.patch(url, headers=admin, json={"dicom_name": "Li^Ming^^Dr"})
    assert (await changed.json())["changed"] == ["dicom_name"]
    cleared = await service.client.patch(url, headers=admin, json={"dicom_name": ""})
    assert (await cleared.json())["changed"] == ["dicom_name"]
    user = await listed_user(service, admin, "li.na")
    assert (user["dicom_name"], user["dicom_name_derived"]) == ("", LI_MING)

    create, *updates = [
        r["detail"] for r in await audit_records(service) if r["resource_id"] == str(user_id)
    ]
    assert create["dicom_name"] == LI_MING
    assert [u["changes"] for u in updates] == [{"dicom_name": "Li^Ming^^Dr"}, {"dicom_name": ""}]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("A=B=C=D", "at most 3 groups"),
        ("x" * 65, "at most 64 characters"),
        ("A^B^C^D^E^F", "at most 5 components"),
        ("Li\\Ming", "no backslash"),
    ],
    ids=["four-groups", "long-group", "six-components", "backslash"],
)
async def test_a_malformed_dicom_name_is_400_naming_the_field(service, consortium, name, reason):
    """The CLI's check (person_names.checked_person_name), on create and on change alike."""
    admin = consortium["admin"]
    create = await create_user(service, admin, facility_id=consortium["clinic"], dicom_name=name)
    patch = await service.client.patch(
        f"/api/admin/users/{consortium['wang']}", headers=admin, json={"dicom_name": name}
    )
    for response in (create, patch):
        assert response.status == 400
        body = await response.json()
        assert body["error"] == "invalid_request"
        assert [p["field"] for p in body["problems"]] == ["dicom_name"]
        assert reason in body["detail"]
    assert (await listed_user(service, admin, "wang"))["dicom_name"] == ""


async def test_a_manager_of_another_facility_cannot_set_a_dicom_name(service, consortium):
    """Accounts are an administrator's business: a manager (here the centre's, for a clinic's
    radiographer) is refused with 403 and the name stays as it was."""
    await service.add_user("boss", "manager", consortium["centre"])
    response = await service.client.patch(
        f"/api/admin/users/{consortium['wang']}",
        headers=await service.login("boss"),
        json={"dicom_name": LI_MING},
    )
    assert response.status == 403
    assert (await listed_user(service, consortium["admin"], "wang"))["dicom_name"] == ""
