"""The short-lived session cache: it saves a database read per GET, and no commit that could
change who is logged in is ever answered from it, whichever process made the commit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from service.auth.session_cache import SessionCache
from service.auth.sessions import CurrentUser
from service.storage import Database
from service.storage import facilities as facility_store
from service.storage import users as user_store


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@dataclass
class FakeDatabase:
    committed: int = 0

    def version(self) -> int:
        return self.committed


def user() -> CurrentUser:
    return CurrentUser(
        id=7,
        username="wang",
        display_name="Wang",
        role="radiographer",
        facility_id=2,
        facility_name="Dongxiang",
        facility_kind="township",
        facility_timezone="Asia/Shanghai",
        locale=None,
        session_id=11,
        csrf_token="c",
    )


def test_an_entry_lives_until_the_next_commit_or_its_deadline():
    database = FakeDatabase()
    cache = SessionCache(database, ttl=0.2)  # type: ignore[arg-type]
    cache.put("token-a", user(), database.version())
    assert cache.get("token-a") == user()
    assert cache.get("token-b") is None
    database.committed += 1  # anything committed: a logout, a revocation, a role change
    assert cache.get("token-a") is None
    cache.put("token-a", user(), database.version())
    time.sleep(0.25)
    assert cache.get("token-a") is None


def test_an_entry_never_outlives_its_session():
    """A session ending within the cache's TTL is not answered from the cache after it ends."""
    from dataclasses import replace as with_fields
    from datetime import timedelta

    from service.clock import to_iso, utc_now

    database = FakeDatabase()
    cache = SessionCache(database, ttl=2.0)  # type: ignore[arg-type]
    ending = with_fields(user(), expires_at=to_iso(utc_now() + timedelta(seconds=0.2)))
    cache.put("token-a", ending, database.version())
    assert cache.get("token-a") == ending
    time.sleep(0.3)
    assert cache.get("token-a") is None
    ended = with_fields(user(), expires_at=to_iso(utc_now() - timedelta(seconds=1)))
    cache.put("token-b", ended, database.version())
    assert cache.get("token-b") is None


def test_a_commit_during_the_read_makes_the_entry_stale_at_once():
    """The version is taken before the read: a revocation racing it is not papered over."""
    database = FakeDatabase()
    cache = SessionCache(database)  # type: ignore[arg-type]
    before = database.version()
    database.committed += 1  # committed while the session was being read
    cache.put("token-a", user(), before)
    assert cache.get("token-a") is None


@pytest.mark.sqlite_file
def test_the_database_version_moves_with_every_commit_of_any_connection(tmp_path):
    """Its own writer's commits, another Database object's (another process) alike; reads and
    a transaction that changed nothing leave it alone."""
    here, there = Database(tmp_path / "t.db"), Database(tmp_path / "t.db")
    try:
        start = here.version()
        assert here.version() == start
        here.read_sync(lambda db: db.execute("SELECT COUNT(*) FROM sessions").fetchone())
        assert here.version() == start
        here.write_sync(user_store.clear_login_failures, "nobody")  # deletes no row
        assert here.version() == start
        here.write_sync(
            facility_store.add_facility, name="A", kind="township", aet="A", timezone="UTC"
        )
        after_own = here.version()
        assert after_own != start
        there.write_sync(
            facility_store.add_facility, name="B", kind="township", aet="B", timezone="UTC"
        )
        assert here.version() != after_own
    finally:
        here.close()
        there.close()


def test_the_cache_is_bounded():
    database = FakeDatabase()
    cache = SessionCache(database, size=3)  # type: ignore[arg-type]
    for n in range(5):
        cache.put(f"token-{n}", user(), 0)
    assert cache.get("token-0") is None and cache.get("token-4") is not None


@pytest.fixture
async def people(service):
    clinic = await service.add_facility("Dongxiang Township", "township", "DONGXIANG_DR")
    centre = await service.add_facility("Regional Imaging Centre", "regional", "REGION_PACS")
    await service.add_user("root", "admin", centre)
    wang = await service.add_user("wang", "radiographer", clinic)
    return {"wang": wang, "admin": await service.login("root")}


async def me(service, headers) -> int:
    return (await service.client.get("/api/me", headers=headers)).status


async def test_a_cached_session_is_refused_right_after_the_user_is_disabled(service, people):
    wang = await service.login("wang")
    assert await me(service, wang) == 200
    assert await me(service, wang) == 200  # now answered from the cache
    response = await service.client.patch(
        f"/api/admin/users/{people['wang']}", headers=people["admin"], json={"disabled": True}
    )
    assert response.status == 200
    assert await me(service, wang) == 401


async def test_a_cached_session_is_refused_right_after_logout(service, people):
    wang = await service.login("wang")
    assert await me(service, wang) == 200
    assert (await service.client.post("/api/logout", headers=wang)).status in (200, 204)
    assert await me(service, wang) == 401


async def test_a_get_is_answered_without_reading_the_session_again(service, people):
    """The point of the cache: a second GET within the TTL reads no session row."""
    wang = await service.login("wang")
    assert await me(service, wang) == 200
    reads: list[str] = []
    original = service.database.read

    async def counting(fn, *args, **kwargs):
        reads.append(getattr(fn, "__name__", repr(fn)))
        return await original(fn, *args, **kwargs)

    service.database.read = counting  # type: ignore[method-assign]
    try:
        assert await me(service, wang) == 200
    finally:
        service.database.read = original  # type: ignore[method-assign]
    assert "session_user" not in reads


@pytest.mark.sqlite_file
async def test_a_cached_session_revoked_by_another_process_is_refused_on_the_next_get(
    service, people
):
    """Another process serving the same file (its own Database, its own writer) logs the
    session out: this process's cache does not serve it again."""
    wang = await service.login("wang")
    assert await me(service, wang) == 200
    assert await me(service, wang) == 200  # now answered from the cache
    other = Database(service.database.path)
    try:
        revoked = await other.write(user_store.revoke_user_sessions, people["wang"])
    finally:
        other.close()
    assert revoked == 1
    assert await me(service, wang) == 401


@pytest.mark.sqlite_file
async def test_a_cached_session_revoked_by_the_sqlite3_shell_is_refused_on_the_next_get(
    service, people
):
    """The same with a real separate process: the sqlite3 shell revokes the session row."""
    wang = await service.login("wang")
    assert await me(service, wang) == 200
    assert await me(service, wang) == 200  # now answered from the cache
    shell = await asyncio.create_subprocess_exec(
        "sqlite3",
        "-cmd",
        ".timeout 10000",
        str(service.database.path),
        "UPDATE sessions SET revoked_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
        f" WHERE user_id = {people['wang']} AND revoked_at IS NULL;",
    )
    assert await shell.wait() == 0
    assert await me(service, wang) == 401


async def test_audit_records_do_not_move_the_version_so_audited_gets_keep_the_cache(
    service, people
):
    """Every audited GET commits its record; those group commits change nothing a session
    resolves from, so the version stays and the next GET is answered from the cache."""
    wang = await service.login("wang")
    assert (await service.client.get("/api/worklist", headers=wang)).status == 200
    version = service.database.version()

    def audit_count(db) -> int:
        return db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]

    before = await service.database.read(audit_count)
    for _ in range(3):
        assert (await service.client.get("/api/worklist", headers=wang)).status == 200

    assert await service.database.read(audit_count) == before + 3
    assert service.database.version() == version
