"""The caller's address behind trusted proxies: audit records and the per-address login limit
name the client, not the reverse proxy; an untrusted peer's X-Forwarded-For is ignored."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.app import create_app
from service.auth.login_limits import MAX_FAILURES_PER_ADDRESS
from service.http.client_address import caller_address, trusted_networks
from service.http.keys import DATABASE
from service.settings import SettingsError, load_settings

from .conftest import PASSWORD, add_specialist

PROXIES = trusted_networks("127.0.0.1, 10.0.0.0/8, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer: header ignored
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that forwarded nothing
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the left part is the client's
        ("127.0.0.1", ["198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # through an inner proxy
        ("127.0.0.1", ["198.51.100.1", "10.1.2.3"], "198.51.100.1"),  # two header lines
        ("127.0.0.1", ["10.1.2.3"], "10.1.2.3"),  # only proxies: the farthest one
        ("127.0.0.1", ["198.51.100.1, garbage"], "127.0.0.1"),  # malformed: no further trust
        ("127.0.0.1", ["2001:db8::7, fd00::1"], "2001:db8::7"),
    ],
)
def test_the_caller_is_the_nearest_address_no_trusted_proxy_wrote(peer, headers, expected):
    assert caller_address(peer, headers, PROXIES) == expected


def test_without_trusted_proxies_the_header_counts_for_nothing():
    assert caller_address("127.0.0.1", ["198.51.100.1"], trusted_networks(None)) == "127.0.0.1"


def test_a_bad_trusted_proxy_entry_is_refused_by_name():
    with pytest.raises(SettingsError, match="TELEREAD_TRUSTED_PROXIES.*'proxy.local'"):
        load_settings({"TELEREAD_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})


def login_addresses(app) -> list[str]:
    rows = app[DATABASE].read_sync(
        lambda db: db.execute(
            "SELECT client_ip FROM audit_log WHERE action = 'auth.login' ORDER BY id"
        ).fetchall()
    )
    return [row[0] for row in rows]


async def test_behind_a_trusted_proxy_one_client_locked_out_is_not_everyone(
    settings, orthanc, aiohttp_client
):
    client = await aiohttp_client(create_app(replace(settings, trusted_proxies="127.0.0.1")))
    await add_specialist(client.app)
    noisy = {"X-Forwarded-For": "198.51.100.66"}
    for n in range(MAX_FAILURES_PER_ADDRESS):
        response = await client.post(
            "/api/login", json={"username": f"guess{n}", "password": "x"}, headers=noisy
        )
        assert response.status == 401
    locked = await client.post(
        "/api/login", json={"username": "u", "password": PASSWORD}, headers=noisy
    )
    assert locked.status == 429
    elsewhere = await client.post(
        "/api/login",
        json={"username": "u", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.5"},
    )
    assert elsewhere.status == 200
    assert login_addresses(client.app)[-1] == "203.0.113.5"


async def test_by_default_a_forwarded_address_is_not_believed(settings, orthanc, aiohttp_client):
    client = await aiohttp_client(create_app(settings))
    await add_specialist(client.app)
    response = await client.post(
        "/api/login",
        json={"username": "u", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.5"},
    )
    assert response.status == 200
    assert login_addresses(client.app)[-1] == "127.0.0.1"
