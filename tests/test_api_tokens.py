"""Personal API tokens: bearer access for scripts, named, expiring and revocable."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture
async def specialist(service):
    centre = await service.add_facility("Centre", "regional", "CENTRE")
    await service.add_user("dr.li", "specialist", centre)
    return await service.login("dr.li")


async def create(service, headers, name="gateway", days=30):
    response = await service.client.post(
        "/api/tokens", json={"name": name, "days": days}, headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_api_token_authenticates_as_its_user(service, specialist):
    """The token works as a bearer token and acts as the user who made it."""
    token = await create(service, specialist)
    assert token["token"].startswith("trt_")
    response = await service.client.get(
        "/api/worklist", headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert response.status == 200


async def test_listing_never_shows_the_secret(service, specialist):
    """Only the name, dates and state are listed; last use is recorded."""
    token = await create(service, specialist)
    await service.client.get("/api/me", headers={"Authorization": f"Bearer {token['token']}"})
    listed = (await (await service.client.get("/api/tokens", headers=specialist)).json())["items"]
    assert [t["name"] for t in listed] == ["gateway"]
    assert "token" not in listed[0] and "token_hash" not in listed[0]
    assert listed[0]["last_used_at"] is not None


async def test_revoked_token_is_refused_at_once(service, specialist):
    """Revocation is server-side and immediate."""
    token = await create(service, specialist)
    headers = {"Authorization": f"Bearer {token['token']}"}
    revoked = await service.client.delete(f"/api/tokens/{token['id']}", headers=specialist)
    assert revoked.status == 200
    response = await service.client.get("/api/me", headers=headers)
    assert response.status == 401


async def test_tokens_of_disabled_users_stop_working(service, specialist):
    """Disabling the account disables its tokens."""
    token = await create(service, specialist)
    await service.database.write(
        lambda db: db.execute("UPDATE users SET disabled = 1 WHERE username = 'dr.li'")
    )
    response = await service.client.get(
        "/api/me", headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert response.status == 401


async def test_someone_elses_token_cannot_be_revoked(service, specialist):
    """Another user's token id is 'not found' to you, and stays valid."""
    token = await create(service, specialist)
    centre = await service.add_facility("Clinic", "township", "CLINIC")
    await service.add_user("wang", "radiographer", centre)
    wang = await service.login("wang")
    response = await service.client.delete(f"/api/tokens/{token['id']}", headers=wang)
    assert response.status == 404
    still = await service.client.get(
        "/api/me", headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert still.status == 200


async def test_api_tokens_are_not_accepted_as_cookies(service, specialist):
    """A leaked API token in a cookie opens nothing: cookies carry login sessions only."""
    token = await create(service, specialist)
    service.client.session.cookie_jar.clear()
    response = await service.client.get("/api/me", cookies={"teleread_session": token["token"]})
    assert response.status == 401


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "x", "days": 0}, {"name": "x", "days": 1000}]
)
async def test_bad_token_requests_are_400(service, specialist, body):
    """Names are required; lifetimes run 1 to 365 days."""
    response = await service.client.post("/api/tokens", json=body, headers=specialist)
    assert response.status == 400


async def test_an_admins_password_reset_revokes_the_users_tokens(service, specialist):
    """A reset by an administrator answers a compromise: the account's tokens stop too."""
    token = await create(service, specialist)
    centre = await service.database.read(
        lambda db: db.execute("SELECT facility_id FROM users WHERE username='dr.li'").fetchone()[0]
    )
    await service.add_user("root", "admin", centre)
    admin = await service.login("root")
    user_id = await service.database.read(
        lambda db: db.execute("SELECT id FROM users WHERE username='dr.li'").fetchone()[0]
    )
    reset = await service.client.post(
        f"/api/admin/users/{user_id}/password",
        headers=admin,
        json={"password": "brand-new-password"},
    )
    assert reset.status == 200, await reset.text()
    response = await service.client.get(
        "/api/me", headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert response.status == 401


async def test_last_use_is_written_at_most_once_a_minute(service, specialist):
    """A busy script makes no database write per call: the last use is recorded again only
    when the recorded one is a minute old."""
    from datetime import timedelta

    from service.auth import sessions
    from service.clock import to_iso, utc_now

    token = await create(service, specialist)
    headers = {"Authorization": f"Bearer {token['token']}"}

    async def last_used() -> str | None:
        def query(db):
            sql = "SELECT last_used_at FROM api_tokens WHERE id = ?"
            return db.execute(sql, [token["id"]]).fetchone()[0]

        return await service.database.read(query)

    assert (await service.client.get("/api/me", headers=headers)).status == 200
    first = await last_used()
    assert first is not None
    version = service.database.version()
    for _ in range(5):
        assert (await service.client.get("/api/me", headers=headers)).status == 200
    assert await last_used() == first
    assert service.database.version() == version  # nothing committed by those calls
    # A minute on, the next call records it; the ones right after it do not write again.
    later = utc_now() + sessions.TOKEN_TOUCH_INTERVAL + timedelta(seconds=1)
    users = [
        await sessions.resolve(service.database, token["token"], later, bearer=True)
        for _ in range(3)
    ]
    assert all(u is not None and u.username == "dr.li" for u in users)
    assert await last_used() == to_iso(later)
