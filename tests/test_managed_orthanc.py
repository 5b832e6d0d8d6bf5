"""The managed Orthanc: private, authenticated, under the data dir, and refused when unsafe."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import aiohttp
import pytest

from service.runtime.orthanc.auth import basic_auth_header
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    OrthancStartError,
    load_or_create_credentials,
)

from .conftest import free_port

# Starts Orthanc processes of its own (ManagedOrthanc).
pytestmark = pytest.mark.orthanc


def config_in(
    directory: Path, plugins_dir: Path = Path("/usr/share/orthanc/plugins"), stable_age: int = 7
) -> OrthancConfig:
    return OrthancConfig(
        directory=directory,
        http_port=free_port(),
        dicom_port=free_port(),
        aet="TELEREAD",
        stable_age=stable_age,
        plugins_dir=plugins_dir,
        credentials=load_or_create_credentials(directory),
    )


async def test_generated_config_is_private_authenticated_and_under_the_data_dir(orthanc):
    """Loopback-only HTTP, authentication on, storage and index in the data dir, file 0600."""
    path = orthanc.config.directory / "orthanc.json"
    config = json.loads(path.read_text())
    assert config["RemoteAccessAllowed"] is False
    assert config["AuthenticationEnabled"] is True
    assert Path(config["StorageDirectory"]).is_relative_to(orthanc.config.directory)
    assert Path(config["IndexDirectory"]).is_relative_to(orthanc.config.directory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = orthanc.config.directory / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600


async def test_orthanc_refuses_requests_without_the_generated_credentials(orthanc):
    """Nobody but the service can use Orthanc's REST API."""
    async with aiohttp.ClientSession() as session:
        async with session.get(orthanc.url + "/system") as anonymous:
            assert anonymous.status == 401
        creds = orthanc.config.credentials
        headers = basic_auth_header(creds.username, creds.password)
        async with session.get(orthanc.url + "/system", headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["DicomAet"] == "TELEREAD"
        async with session.get(orthanc.url + "/plugins", headers=headers) as response:
            assert "dicom-web" in await response.json()


async def test_stable_age_comes_from_settings(tmp_path):
    """TELEREAD_STABLE_AGE reaches Orthanc's configuration."""
    process = ManagedOrthanc(config_in(tmp_path / "o", stable_age=7))
    assert json.loads(process.write_config().read_text())["StableAge"] == 7


async def test_credentials_are_generated_once_and_reused(tmp_path):
    """A restart keeps the same credentials (kept in the data dir)."""
    first = load_or_create_credentials(tmp_path)
    second = load_or_create_credentials(tmp_path)
    assert first == second
    assert len(first.password) >= 24


async def test_second_orthanc_on_the_same_data_dir_is_refused(orthanc):
    """Two services on one archive would corrupt it: the second start fails with a reason."""
    twin = ManagedOrthanc(orthanc.config)
    with pytest.raises(OrthancStartError, match="already running|exited"):
        await twin.start(timeout=10)


async def test_missing_dicomweb_plugin_stops_start_up(tmp_path):
    """Orthanc runs on without a plugin it could not load; the service refuses to."""
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    process = ManagedOrthanc(config_in(tmp_path / "o", plugins_dir=empty))
    with pytest.raises(OrthancStartError, match="orthanc-dicomweb"):
        try:
            await process.start(timeout=10)
        finally:
            await process.kill()


async def test_restart_after_a_hard_kill_keeps_the_archive(orthanc):
    """SIGKILL then start again: Orthanc comes back with the same data."""
    creds = orthanc.config.credentials
    headers = basic_auth_header(creds.username, creds.password)
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(orthanc.url + "/system") as response:
            before = (await response.json())["DatabaseVersion"]
    await orthanc.kill()
    await orthanc.start()
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(orthanc.url + "/system") as response:
            assert (await response.json())["DatabaseVersion"] == before
