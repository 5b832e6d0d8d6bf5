"""Password guessing is limited per address and per account and address, slowed per account,
and can never lock the account's owner out (service/auth/login_limits.py).

The HTTP tests put the app behind a trusted proxy (127.0.0.1) so that ``X-Forwarded-For`` gives
each request the address of a different machine; the delay tests drive the domain function with
an explicit clock and a real SQLite database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from service.app import create_app
from service.auth import login_limits, sessions
from service.auth.passwords import hash_password
from service.http.keys import DATABASE
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import users as user_store

from .backends import database_at
from .conftest import PASSWORD

ATTACKER = {"X-Forwarded-For": "198.51.100.66"}
OWNER = {"X-Forwarded-For": "203.0.113.5"}
_HASH = hash_password(PASSWORD)


def add_user(database: Database, username: str, role: str) -> None:
    def add(db) -> None:
        facility = facility_store.facility_by_aet(db, "CENTRE")
        facility_id = (
            facility["id"]
            if facility
            else facility_store.add_facility(
                db, name="Centre", kind="regional", aet="CENTRE", timezone="UTC"
            )
        )
        user_store.add_user(
            db, username=username, password_hash=_HASH, role=role, facility_id=facility_id
        )

    database.write_sync(add)


@pytest.fixture
async def client(settings, orthanc, aiohttp_client) -> TestClient:
    client = await aiohttp_client(create_app(replace(settings, trusted_proxies="127.0.0.1")))
    add_user(client.app[DATABASE], "stroke.reader", "specialist")
    add_user(client.app[DATABASE], "root", "admin")
    return client


async def attempt(client: TestClient, password: str, headers: dict, username="stroke.reader"):
    return await client.post(
        "/api/login", json={"username": username, "password": password}, headers=headers
    )


async def hammer(client: TestClient, times: int) -> list[int]:
    """Wrong passwords for the stroke reader from the attacker's address; the statuses."""
    return [(await attempt(client, "wrong-guess", ATTACKER)).status for _ in range(times)]


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(client):
    """Thirty wrong passwords from address A: A is refused, and the owner at the workstation
    they use (address B) still logs in with the right password at once."""
    assert (await attempt(client, PASSWORD, OWNER)).status == 200  # B is the owner's address
    statuses = await hammer(client, 30)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    owner = await attempt(client, PASSWORD, OWNER)
    assert owner.status == 200, await owner.text()
    # Still refused: the owner's success forgave only B's failures, not the attacker's.
    assert (await attempt(client, PASSWORD, ATTACKER)).status == 429


async def test_concurrent_guesses_cannot_slip_under_the_limit_together(client):
    """Twenty wrong passwords sent at once from one address: checking the limit and counting
    the attempt are one write, so no more than five passwords are ever checked."""
    responses = await asyncio.gather(
        *(attempt(client, f"wrong-guess-{n}", ATTACKER) for n in range(20))
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [401] * 5 + [429] * 15


async def test_a_clinic_logging_in_at_once_behind_one_address_is_not_refused(client):
    """Thirty readers behind one address log in at the same moment (shift change): attempts
    still being checked do not count against the address, so none is refused."""
    names = [f"reader{n:02d}" for n in range(30)]
    for name in names:
        add_user(client.app[DATABASE], name, "specialist")
    responses = await asyncio.gather(
        *(attempt(client, PASSWORD, OWNER, username=name) for name in names)
    )
    assert [response.status for response in responses] == [200] * 30


async def test_every_429_says_when_to_try_again(client):
    """Retry-After (seconds) on the per-account-and-address and the per-address refusals, the
    same figure in the body; the limit that holds is named."""
    await hammer(client, 5)
    refused = await attempt(client, PASSWORD, ATTACKER)
    assert refused.status == 429
    body = await refused.json()
    assert body["error"] == "too_many_attempts" and body["limit"] == "account_address"
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert int(refused.headers["Retry-After"]) == body["retry_after"]

    spray = {"X-Forwarded-For": "192.0.2.77"}
    for n in range(login_limits.MAX_FAILURES_PER_ADDRESS):
        assert (await attempt(client, "x", spray, username=f"guess{n}")).status == 401
    refused = await attempt(client, PASSWORD, spray, username="root")
    assert refused.status == 429
    assert (await refused.json())["limit"] == "address"
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60


async def test_the_admin_view_names_the_hammered_account_and_its_attacker(client):
    """GET /api/admin/login-failures: the account, its failures, the address they come from
    and that it is limited; an administrator's own view, refused to everyone else."""
    await hammer(client, 7)
    await attempt(client, "x", ATTACKER, username="no.such.user")
    admin = await attempt(client, PASSWORD, OWNER, username="root")
    headers = {"Authorization": f"Bearer {(await admin.json())['token']}"}
    response = await client.get("/api/admin/login-failures", headers=headers)
    assert response.status == 200, await response.text()
    view = await response.json()
    [reader] = [a for a in view["accounts"] if a["username"] == "stroke.reader"]
    assert reader["exists"] is True and reader["failures"] == 5  # 2 refused before checking
    assert reader["addresses"] == [
        {
            "client_ip": "198.51.100.66",
            "failures": 5,
            "last_failure_at": reader["last_failure_at"],
            "limited": True,
        }
    ]
    assert reader["delayed_until"] is None  # 5 failures: the account's delay has not begun
    [guessed] = [a for a in view["accounts"] if a["username"] == "no.such.user"]
    assert guessed["exists"] is False
    [address] = [a for a in view["addresses"] if a["client_ip"] == "198.51.100.66"]
    assert (address["failures"], address["accounts"], address["limited"]) == (6, 2, False)

    reader_login = await attempt(client, PASSWORD, OWNER)
    token = (await reader_login.json())["token"]
    refused = await client.get(
        "/api/admin/login-failures", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status == 403


# --- the account's growing delay, with an explicit clock -------------------------------------


@pytest.fixture
def database(tmp_path: Path):
    database = database_at(tmp_path / "teleread.db")
    add_user(database, "stroke.reader", "specialist")
    yield database
    database.close()


async def login_at(database: Database, password: str, address: str, now: datetime):
    return await sessions.login(
        database, "stroke.reader", password, address, now=now, lifetime=timedelta(hours=1)
    )


async def test_the_account_delay_doubles_with_each_failure_and_stops_at_a_minute(database):
    """Guesses from ever new addresses (a botnet): the first five are free, then each further
    one must wait 1, 2, 4 ... s after the last (at most 60 s), never a lock of minutes."""
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    waits = []
    for n in range(14):
        with pytest.raises(sessions.LoginFailed):
            await login_at(database, "wrong-guess", f"10.0.0.{n}", now)
        try:  # the owner, from a new address each time
            await login_at(database, PASSWORD, f"10.0.1.{n}", now)
            waits.append(0)
        except sessions.LoginLocked as exc:
            assert exc.reason == "account_delay"
            waits.append(exc.retry_after)
            now += timedelta(seconds=exc.retry_after)
    assert waits == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


async def test_the_owner_on_a_new_address_waits_seconds_then_gets_in(database):
    """During an attack the owner on an address the account never used waits at most a minute
    and then logs in with the right password; at a known address not at all."""
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    await login_at(database, PASSWORD, "203.0.113.5", now - timedelta(days=1))  # known: B
    for n in range(12):
        with pytest.raises(sessions.LoginFailed):
            await login_at(database, "wrong-guess", f"10.0.0.{n}", now)
        now += timedelta(seconds=login_limits.account_delay(n + 1))
    now -= timedelta(seconds=1)
    with pytest.raises(sessions.LoginLocked) as refused:
        await login_at(database, PASSWORD, "192.0.2.200", now)
    assert 1 <= refused.value.retry_after <= login_limits.MAX_DELAY
    assert await login_at(database, PASSWORD, "203.0.113.5", now)  # the known address: at once
    later = now + timedelta(seconds=refused.value.retry_after)
    assert await login_at(database, PASSWORD, "192.0.2.200", later)


# --- hashing off the event loop ---------------------------------------------------------------


async def test_a_slow_hash_stalls_no_other_request_and_is_replaced_at_login(
    client, production_hashes
):
    """argon2 runs on its own threads: while a login verifies a hash made with old, costly
    parameters (about a second), the event loop goes on serving (no stall of even half that);
    the login then stores a hash with today's parameters (the production ones: the rest of the
    suite hashes cheaply, tests/conftest.py), and the password still works."""
    database = client.app[DATABASE]
    old = PasswordHasher(time_cost=8, memory_cost=64 * 1024, parallelism=1).hash(PASSWORD)
    await database.write(
        lambda db: db.execute(
            "UPDATE users SET password_hash = ? WHERE username = 'stroke.reader'", [old]
        )
    )
    gaps = []

    async def tick() -> None:
        """Measure the event loop's stalls: the gaps between 10 ms sleeps."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            gaps.append(time.perf_counter() - before)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    login = await attempt(client, PASSWORD, OWNER)
    took = time.perf_counter() - started
    ticker.cancel()
    assert login.status == 200
    async with client.get("/healthz") as response:
        assert response.status == 200
    assert len(gaps) >= 5 and max(gaps) < took / 2, (max(gaps), took)
    stored = await database.read(user_store.user_by_username, "stroke.reader")
    assert stored["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await attempt(client, PASSWORD, OWNER)).status == 200


async def test_the_admin_page_shows_the_hammered_account_in_the_readers_language(client):
    """The users page has a failed-logins section, server-rendered and translated."""
    await hammer(client, 6)
    admin = await attempt(client, PASSWORD, OWNER, username="root")
    headers = {
        "Authorization": f"Bearer {(await admin.json())['token']}",
        "Accept-Language": "zh-CN",
    }
    response = await client.get("/admin/users", headers=headers)
    assert response.status == 200
    page = await response.text()
    assert "最近 15 分钟内的登录失败" in page
    section = page[page.index('id="login-failures"') :]
    assert "stroke.reader" in section and "198.51.100.66: 5" in section
    assert "已拒绝此地址登录该账户" in section


async def test_failures_older_than_a_day_are_forgotten_as_new_attempts_come(database):
    """An attack with ever new names leaves no lasting table: each attempt clears old rows."""
    then = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for n in range(30):
        with pytest.raises(sessions.LoginFailed):
            await sessions.login(
                database, f"name{n}", "x", f"10.1.0.{n}", now=then, lifetime=timedelta(hours=1)
            )
    later = then + timedelta(days=1, minutes=1)
    for _ in range(3):
        with pytest.raises(sessions.LoginFailed):
            await login_at(database, "wrong-guess", "10.2.0.1", later)
    rows = await database.read(
        lambda db: db.execute("SELECT username FROM login_failures ORDER BY id").fetchall()
    )
    assert [row[0] for row in rows] == ["stroke.reader"] * 3


# --- the password re-entered to sign or to import a key: the same check, the same limits ------


async def reader_session(client: TestClient, address: dict) -> dict:
    """The stroke reader's bearer session, used from ``address``."""
    login = await attempt(client, PASSWORD, OWNER)
    assert login.status == 200
    return {"Authorization": f"Bearer {(await login.json())['token']}"} | address


async def sign_with(client: TestClient, headers: dict, password: str):
    return await client.post(
        "/api/consultations/1/report/sign", json={"password": password}, headers=headers
    )


async def test_wrong_passwords_at_signing_are_limited_like_logins(client):
    """A stolen session guessing the password through the signing form: five wrong (403), then
    refused (429, Retry-After) before any password is checked; the key import and the login
    form from that address are refused too, since all count against one limit."""
    headers = await reader_session(client, ATTACKER)
    statuses = [(await sign_with(client, headers, "wrong-guess")).status for _ in range(6)]
    assert statuses == [403] * 5 + [429]
    refused = await sign_with(client, headers, PASSWORD)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    key_import = await client.post(
        "/api/signing/identities/pkcs12",
        json={"pkcs12": "AAAA", "pkcs12_password": "", "password": PASSWORD},
        headers=headers,
    )
    assert key_import.status == 429
    assert (await attempt(client, PASSWORD, ATTACKER)).status == 429
    assert (await attempt(client, PASSWORD, OWNER)).status == 200  # the owner is not locked out


async def test_wrong_passwords_at_key_import_count_like_logins(client):
    """The PKCS#12 import's password check: five wrong, then the limit holds for signing."""
    headers = await reader_session(client, ATTACKER)
    body = {"pkcs12": "AAAA", "pkcs12_password": "", "password": "wrong-guess"}
    statuses = [
        (await client.post("/api/signing/identities/pkcs12", json=body, headers=headers)).status
        for _ in range(5)
    ]
    assert statuses == [403] * 5
    assert (await sign_with(client, headers, "wrong-guess")).status == 429


async def test_a_slow_password_check_at_signing_stalls_no_other_request(client):
    """While the signing form's password check runs argon2 on a costly hash (about a second),
    another request is answered before it ends: the check is off the event loop."""
    headers = await reader_session(client, OWNER)
    database = client.app[DATABASE]
    slow = PasswordHasher(time_cost=8, memory_cost=64 * 1024, parallelism=1).hash(PASSWORD)
    await database.write(
        lambda db: db.execute(
            "UPDATE users SET password_hash = ? WHERE username = 'stroke.reader'", [slow]
        )
    )
    signing = asyncio.create_task(sign_with(client, headers, "wrong-guess"))
    await asyncio.sleep(0.05)  # the check has begun
    async with client.get("/healthz") as health:
        assert health.status == 200
    assert not signing.done()
    assert (await signing).status == 403
