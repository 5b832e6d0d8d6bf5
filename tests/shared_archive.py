"""Orthancs sharing one PostgreSQL index and one storage directory: one archive with several
doors (docs/scaling.md, "Orthanc on PostgreSQL"), started as child processes for a test module.

For tests/test_orthanc_postgresql.py and any test of the several-box topology (issue 22): a
:class:`~tests.postgres_server.PostgresServer` gives the database, :func:`start_archive` the
Orthancs, each on free ports, all with the same credentials.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from service.runtime.orthanc.client import OrthancClient
from service.runtime.orthanc.process import (
    ManagedOrthanc,
    OrthancConfig,
    OrthancCredentials,
    OrthancStartError,
    SharedIndex,
    load_or_create_credentials,
)

from .conftest import free_port
from .postgres_server import PostgresServer


@dataclass
class Archive:
    """Orthancs sharing one index and one storage directory."""

    index: SharedIndex
    orthancs: list[ManagedOrthanc]

    @property
    def credentials(self) -> OrthancCredentials:
        return self.orthancs[0].config.credentials

    def client(self, number: int) -> OrthancClient:
        """A client of Orthanc ``number`` alone (close it)."""
        return OrthancClient(
            self.orthancs[number].url, self.credentials.username, self.credentials.password
        )

    async def kill(self) -> None:
        for orthanc in self.orthancs:
            await orthanc.kill()


async def start_shared_orthanc(
    directory: Path, index: SharedIndex, credentials: OrthancCredentials, attempts: int = 3
) -> ManagedOrthanc:
    """An Orthanc of the shared archive on free ports (retried if one was taken meanwhile)."""
    for attempt in range(attempts):
        config = OrthancConfig(
            directory=directory,
            http_port=free_port(),
            dicom_port=free_port(),
            aet="TELEREAD",
            stable_age=1,
            plugins_dir=Path("/usr/share/orthanc/plugins"),
            credentials=credentials,
            shared_index=index,
        )
        orthanc = ManagedOrthanc(config)
        try:
            await orthanc.start()
            return orthanc
        except OrthancStartError as exc:
            if "already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def start_archive(postgres: PostgresServer, directory: Path, doors: int = 2) -> Archive:
    """``doors`` Orthancs (StableAge 1 s) on a new database of ``postgres``, files under
    ``directory/storage``; kill them with :meth:`Archive.kill`."""
    index = SharedIndex(postgres.new_database(), directory / "storage")
    credentials = load_or_create_credentials(directory)  # one set for all: one archive
    started = await asyncio.gather(
        *(start_shared_orthanc(directory / f"o{n}", index, credentials) for n in range(doors)),
        return_exceptions=True,
    )
    orthancs = [o for o in started if isinstance(o, ManagedOrthanc)]
    failed = [o for o in started if isinstance(o, BaseException)]
    if failed:
        for orthanc in orthancs:
            await orthanc.kill()
        raise failed[0]
    return Archive(index, orthancs)
