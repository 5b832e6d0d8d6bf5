"""A throwaway PostgreSQL server, started from Debian's ``postgresql`` package as a child
process on a free loopback port, as the suite starts Orthanc: never a mock.

``initdb`` makes a cluster in a temporary directory; ``postgres`` serves it on 127.0.0.1 and on a
Unix socket in that directory, with durability off (``fsync``, ``synchronous_commit``,
``full_page_writes``): a test cluster is thrown away, and commits then cost microseconds rather
than a disk flush. PostgreSQL refuses to run as root, so as root (CI, the machines here) the
cluster belongs to Debian's ``postgres`` user and the server runs as it (``runuser``).

Each test gets a database of its own, copied from a template that was migrated once
(``CREATE DATABASE ... TEMPLATE``, some tens of milliseconds): no test sees another's rows.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from .ports import free_port

START_SECONDS = 30.0


def postgres_bin_dir() -> Path:
    """The newest installed server's ``bin/`` (Debian keeps them under /usr/lib/postgresql/N)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not found:
        raise FileNotFoundError(
            "no PostgreSQL server: Debian's postgresql package installs it"
            " (scripts/install-system-deps.sh --test)"
        )
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    """One running cluster; :meth:`new_database` hands out empty databases on it."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str = "teleread"
    password: str = "teleread-test"
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), autocommit=True)

    def new_database(self, template: str | None = None) -> str:
        """An empty (or ``template``'s copy) database's URL, with a name not used before."""
        name = f"t{os.getpid()}_{next(self._names)}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}{clause}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """A fast shutdown (SIGINT: roll back, disconnect, stop), then the directory goes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _owner() -> dict[str, str]:
    """Popen's arguments that run the child as Debian's ``postgres`` user when this process is
    root (directly, not through runuser, so that signals reach the server itself)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def start_postgres(
    parent: Path | None = None, attempts: int = 3, user: str = "teleread"
) -> PostgresServer:
    """initdb a cluster and start its server on a free port (retried if the port was taken);
    ``user`` names its superuser."""
    bin_dir = postgres_bin_dir()
    directory = Path(tempfile.mkdtemp(prefix="teleread-pg-", dir=parent))
    data = directory / "data"
    password_file = directory / "password"
    server = PostgresServer(directory, 0, None, user=user)  # type: ignore[arg-type]
    password_file.write_text(server.password + "\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    directory.chmod(0o700)
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            server.user,
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        cwd=directory,
        **_owner(),
    )
    for attempt in range(attempts):
        port = free_port()
        with open(directory / "server.log", "ab") as server_log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={directory}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=64MB",
                ],
                cwd=directory,
                **_owner(),
                stdout=subprocess.DEVNULL,
                stderr=server_log,
                start_new_session=True,
            )
        server = PostgresServer(directory, port, process, user=user)
        if _ready(server):
            return server
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        if attempt == attempts - 1:
            log = (directory / "server.log").read_text(errors="replace")[-2000:]
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {log}")
    raise AssertionError("unreachable")


def _ready(server: PostgresServer) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with server.admin():
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False
