"""The managed Orthanc: a child process with a generated configuration under the data dir.

Debian's Orthanc 1.10 has no bind-address setting, so it is kept private by
``RemoteAccessAllowed: false`` (HTTP only from localhost) plus HTTP authentication with generated
credentials. Its DICOM port takes C-ECHO and C-STORE (:data:`DICOM_PORT_RULES`), and worklist
C-FIND from facilities' AE titles only, answered by the ModalityWorklists plugin from the files
teleread writes (:data:`WORKLIST_PLUGIN`, service/mwl/).
``TCP_NODELAY=1`` in its environment makes DCMTK disable Nagle's algorithm, which quadruples
C-STORE throughput (measured on loopback).

With :class:`SharedIndex`, the index is in PostgreSQL (Debian's ``orthanc-postgresql`` plugin) and
the files in a storage directory that several Orthancs share, so that they serve one archive
(docs/scaling.md, "Orthanc on PostgreSQL").
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .auth import basic_auth_header

log = logging.getLogger(__name__)

PLUGIN_FILES = ("libOrthancDicomWeb.so", "libModalityWorklists.so")
REQUIRED_PLUGINS = ("dicom-web", "worklists")

#: The ModalityWorklists plugin (Debian's ``orthanc`` ships it), less its ``Database`` folder.
#: ``FilterIssuerAet``: Orthanc 1.10.1's plugin sets the query's Scheduled Station AE Title
#: (0040,0001) to the calling AE title whatever the query asked (measured: an AE title asking for
#: another's, or for "*", gets nothing), so a modality sees only its own facility's items.
WORKLIST_PLUGIN: dict[str, object] = {"Enable": True, "FilterIssuerAet": True}

#: Orthanc re-encodes every C-FIND answer, worklist items included, into this one character set
#: whatever the item file or the query says (measured on 1.10.1: its default, Latin1, turned a
#: Chinese name into "^"). UTF-8 carries every name; docs/integration.md says what it means for a
#: GB 18030 modality.
ANSWER_ENCODING: dict[str, object] = {"DefaultEncoding": "Utf8"}


#: Who may do what on the DICOM port. Any AE title may verify the connection and send (C-STORE):
#: a study from an AE title no facility has is kept and quarantined by ingest ("unknown AE title")
#: for an administrator to see, rather than lost at a clinic that was not registered yet. Nobody
#: unknown may query or retrieve; registered facilities are refused the same per modality
#: (service/intake/modalities.py). Associations must call Orthanc's own AE title.
DICOM_PORT_RULES: dict[str, bool] = {
    "DicomCheckCalledAet": True,
    "DicomAlwaysAllowEcho": True,
    "DicomAlwaysAllowStore": True,
    "DicomAlwaysAllowFind": False,
    "DicomAlwaysAllowFindWorklist": False,
    "DicomAlwaysAllowGet": False,
    "DicomAlwaysAllowMove": False,
}


#: The PostgreSQL index plugin's file and the name it reports under ``/plugins``.
POSTGRESQL_INDEX_PLUGIN = ("libOrthancPostgreSQLIndex.so", "postgresql-index")


@dataclass(frozen=True)
class SharedIndex:
    """An Orthanc index in PostgreSQL that other Orthancs may share, and the storage directory
    they all keep their files in.

    The files stay on a filesystem (a shared volume in production), not in PostgreSQL: the
    viewer reads them straight from the storage directory (stored_files.py), and large objects
    in the database would grow every backup and vacuum by the whole archive.
    """

    url: str = field(repr=False)
    """A libpq URL, ``postgresql://user:password@host:port/database`` (a password: never in a
    repr; the configuration file that carries it is the owner's alone)."""
    storage_dir: Path

    def plugin_section(self) -> dict[str, object]:
        """The ``PostgreSQL`` section of plugin 4.0's configuration.

        ``Lock`` false lets several Orthancs open the database at once (plugin 4.0 with Orthanc
        1.9.2+ retries a transaction that collides with another writer's), the index only
        (``EnableStorage`` false: the files go to the shared directory), and a connection a few
        seconds late at start-up (a database that starts beside Orthanc) is waited for.
        """
        return {
            "EnableIndex": True,
            "EnableStorage": False,
            "ConnectionUri": self.url,
            "Lock": False,
            "MaximumConnectionRetries": 10,
            "ConnectionRetryInterval": 1,
        }


class OrthancStartError(RuntimeError):
    """The managed Orthanc did not come up; the message carries the end of its log."""


@dataclass(frozen=True)
class OrthancCredentials:
    username: str
    password: str


def load_or_create_credentials(orthanc_dir: Path) -> OrthancCredentials:
    """Generated once, kept in the data dir (mode 0600), reused on every start."""
    path = orthanc_dir / "credentials.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return OrthancCredentials(raw["username"], raw["password"])
    orthanc_dir.mkdir(parents=True, exist_ok=True)
    credentials = OrthancCredentials("teleread", secrets.token_urlsafe(24))
    _write_private(path, json.dumps(credentials.__dict__))
    return credentials


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class OrthancConfig:
    """What the generated configuration file contains."""

    directory: Path
    http_port: int
    dicom_port: int
    aet: str
    stable_age: int
    plugins_dir: Path
    credentials: OrthancCredentials
    shared_index: SharedIndex | None = None
    """None: the index in SQLite and the files under ``directory``, this Orthanc's alone."""

    def as_json(self) -> dict[str, object]:
        plugins = [str(self.plugins_dir / name) for name in self.plugin_files]
        shared: dict[str, object] = {}
        if self.shared_index is not None:
            shared = {"PostgreSQL": self.shared_index.plugin_section()}
        return {
            "Name": "teleread",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.directory / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.credentials.username: self.credentials.password},
            "StableAge": self.stable_age,
            "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            "Worklists": {**WORKLIST_PLUGIN, "Database": str(self.worklists_dir)},
            **ANSWER_ENCODING,
            "DicomModalitiesInDatabase": True,
            **DICOM_PORT_RULES,
            "OverwriteInstances": False,
            "SaveJobs": False,
            "HttpDescribeErrors": True,
            "KeepAlive": True,
            "StorageCompression": False,
            **shared,
        }

    @property
    def plugin_files(self) -> tuple[str, ...]:
        if self.shared_index is None:
            return PLUGIN_FILES
        return (*PLUGIN_FILES, POSTGRESQL_INDEX_PLUGIN[0])

    @property
    def required_plugins(self) -> tuple[str, ...]:
        if self.shared_index is None:
            return REQUIRED_PLUGINS
        return (*REQUIRED_PLUGINS, POSTGRESQL_INDEX_PLUGIN[1])

    @property
    def storage_dir(self) -> Path:
        """Where the DICOM files are: the shared directory, or this Orthanc's own."""
        if self.shared_index is not None:
            return self.shared_index.storage_dir
        return self.directory / "storage"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def worklists_dir(self) -> Path:
        """The worklist item files the plugin answers from: only teleread writes here."""
        return self.directory / "worklists"


class ManagedOrthanc:
    """Start, watch and stop one Orthanc child process."""

    def __init__(self, config: OrthancConfig, executable: str = "Orthanc") -> None:
        self.config = config
        self.executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._log_file = config.directory / "orthanc.log"
        self._pid_file = config.directory / "orthanc.pid"

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def wait(self) -> int | None:
        """Until the current Orthanc process ends: its exit status (None when none runs, or
        when :meth:`stop` or :meth:`kill` ended it, which the supervisor must not restart)."""
        process = self._process
        if process is None:
            return None
        code = await process.wait()
        return code if self._process is process else None

    def write_config(self) -> Path:
        self.config.directory.mkdir(parents=True, exist_ok=True)
        self.config.worklists_dir.mkdir(mode=0o700, exist_ok=True)
        # Made here, not by Orthanc: Orthancs sharing it that start at once raced to create it,
        # and the loser exited ("Cannot create a directory", measured: 1 start in 12).
        self.config.storage_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.directory / "orthanc.json"
        _write_private(path, json.dumps(self.config.as_json(), indent=2))
        return path

    async def start(self, timeout: float = 30.0) -> None:
        """Start Orthanc and wait until it answers with the DICOMweb plugin loaded."""
        config_path = self.write_config()
        self._stop_stale_process()
        log_handle = self._log_file.open("ab")
        env = dict(os.environ, TCP_NODELAY="1")
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.executable,
                str(config_path),
                stdout=log_handle,
                stderr=log_handle,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise OrthancStartError(
                f"{self.executable!r} not found: install the Debian packages orthanc and "
                "orthanc-dicomweb (make run does this)"
            ) from exc
        finally:
            log_handle.close()
        self._pid_file.write_text(str(self._process.pid))
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        # Imported here: the CLI imports this module for its credentials and errors, and a
        # `teleread user add` should not pay ~0.1 s for an HTTP client it never uses.
        import aiohttp

        headers = basic_auth_header(
            self.config.credentials.username, self.config.credentials.password
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    raise OrthancStartError(
                        f"Orthanc exited with code {self._process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    async with session.get(self.url + "/plugins") as response:
                        if response.status == 200:
                            self._check_plugins(await response.json())
                            log.info("Orthanc ready at %s (pid %s)", self.url, self._process.pid)
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        await self.stop()
        raise OrthancStartError(
            f"Orthanc did not answer within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _check_plugins(self, loaded: list[str]) -> None:
        missing = [p for p in self.config.required_plugins if p not in loaded]
        if missing:
            raise OrthancStartError(
                f"Orthanc runs without the plugin(s) {missing} (looked in "
                f"{self.config.plugins_dir}); install the Debian packages orthanc, "
                "orthanc-dicomweb (and orthanc-postgresql for a PostgreSQL index)"
            )

    def _stop_stale_process(self) -> None:
        """A previous run killed hard may have left its Orthanc holding the index: stop it.

        An Orthanc whose parent is still alive belongs to a running teleread: refuse instead.
        """
        if not self._pid_file.exists():
            return
        try:
            pid = int(self._pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            return
        if str(self.config.directory / "orthanc.json") not in cmdline:
            return
        if parent != 1 and Path(f"/proc/{parent}").exists():
            raise OrthancStartError(
                f"another teleread (pid {parent}) is already running on {self.config.directory}"
            )
        log.warning("stopping a stale Orthanc (pid %s) left by a previous run", pid)
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Orthanc takes about 3.5 s to stop cleanly), SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.warning("Orthanc did not stop within %.0f s; killing it", timeout)
            process.kill()
            await process.wait()
        self._pid_file.unlink(missing_ok=True)

    async def kill(self) -> None:
        """Hard kill: crash-recovery tests, and throwaway test archives (safe, measured)."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        self._pid_file.unlink(missing_ok=True)
