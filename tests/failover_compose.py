"""The failover scenario's topology as compose's ``scale`` profile itself (tests/test_failover.py).

Where ``docker compose`` exists, :func:`compose_topology` builds and starts
compose/docker-compose.yml with ``--profile scale`` under a project name of its own, with an env
file of throwaway secrets, seeds a clinic and a reader with the ``teleread`` command inside the
first replica, and takes it all down (volumes too) at the end. The proxy listens on the host's
80/443 as in production (TLS from Caddy's internal CA: the test's clients do not verify it);
Orthanc's DICOM ports are published on loopback only, on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from service.dicom.send import send_datasets

from .conftest import free_port
from .failover_scenario import CLINIC_AET

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose" / "docker-compose.yml"
REPLICAS = ["teleread", "teleread-2", "teleread-3"]
ORTHANCS = ["orthanc", "orthanc-2"]
UP_SECONDS = 900

_HEALTHZ_LEADER = (
    "import json, urllib.request, urllib.error\n"
    "try:\n"
    "    body = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3).read()\n"
    "except urllib.error.HTTPError as error:\n"
    "    body = error.read()\n"
    "print(json.dumps(json.loads(body)['leader']))\n"
)


def docker_compose_missing() -> str | None:
    """Why the compose variant cannot run here (None when it can)."""
    if shutil.which("docker") is None:
        return "no docker here: the loopback test runs the same topology as child processes"
    try:
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker compose does not answer: {exc}"
    if found.returncode != 0:
        return "docker has no compose plugin: the loopback test runs the same topology"
    return None


@dataclass
class Compose:
    """The running ``scale`` profile (a :class:`~tests.failover_scenario.Topology`)."""

    project: str
    env_file: Path
    dicom_ports: list[int]
    password: str
    reader: str = "dr_li"
    proxy_url: str = "https://localhost"

    @property
    def replicas(self) -> list[str]:
        return list(REPLICAS)

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        command = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.project]
        command += ["--env-file", str(self.env_file), "--profile", "scale", *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    async def send(self, door: int, study: list[Dataset]) -> bool:
        try:
            result = await asyncio.to_thread(
                send_datasets,
                study,
                host="127.0.0.1",
                port=self.dicom_ports[door],
                calling_aet=CLINIC_AET,
                called_aet="TELEREAD",
                timeout=10,
            )
        except (OSError, RuntimeError):
            return False
        return result.failed == 0

    async def leads(self, replica: str) -> bool | None:
        try:
            out = await asyncio.to_thread(
                self.run, "exec", "-T", replica, "python", "-c", _HEALTHZ_LEADER, timeout=20
            )
            return json.loads(out)
        except (AssertionError, ValueError, subprocess.TimeoutExpired):
            return None

    async def kill_replica(self, replica: str) -> None:
        await asyncio.to_thread(self.run, "kill", "-s", "SIGKILL", replica)

    async def kill_orthanc(self, door: int) -> None:
        await asyncio.to_thread(self.run, "kill", "-s", "SIGKILL", ORTHANCS[door])

    async def consultation_counts(self, uids: list[str]) -> Counter[str]:
        listed = ", ".join(f"'{uid}'" for uid in uids)  # UIDs: digits and dots only
        sql = f"SELECT study_instance_uid FROM consultations WHERE study_instance_uid IN ({listed})"
        out = await asyncio.to_thread(
            self.run, "exec", "-T", "postgres", "psql", "-U", "orthanc", "-d", "teleread",
            "-At", "-c", sql,
        )  # fmt: skip
        return Counter(line for line in out.splitlines() if line)

    def seed(self) -> None:
        """A sending clinic and a specialist, with the administrator's commands."""
        teleread = ["exec", "-T", "teleread", "teleread"]
        self.run(*teleread, "facility", "add", "--name", "Dongxiang", "--kind", "township",
                 "--aet", CLINIC_AET)  # fmt: skip
        centre = self.run(*teleread, "facility", "add", "--name", "Centre", "--kind",
                          "regional", "--aet", "CENTRE").strip()  # fmt: skip
        self.run(*teleread, "user", "add", self.reader, "--role", "specialist", "--facility",
                 centre, "--password-stdin", stdin=self.password + "\n")  # fmt: skip


def env_file(directory: Path, dicom_ports: list[int]) -> Path:
    """compose/.env for the test: throwaway secrets, the scale profile's settings."""
    database_password = secrets.token_hex(16)
    values = {
        "TELEREAD_DOMAIN": "localhost",
        "TELEREAD_TLS": "internal",
        "TELEREAD_UPLOAD_MAX_REQUEST_MB": "64",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "TELEREAD_DB_PASSWORD": database_password,
        "TELEREAD_DATABASE_URL": (
            f"postgresql://teleread:{database_password}@postgres:5432/teleread"
        ),
        "TELEREAD_ORTHANC_USERNAME": "teleread",
        "TELEREAD_ORTHANC_PASSWORD": secrets.token_hex(16),
        "ORTHANC_DICOM_HOST_PORT": f"127.0.0.1:{dicom_ports[0]}",
        "ORTHANC_2_DICOM_HOST_PORT": f"127.0.0.1:{dicom_ports[1]}",
        "TELEREAD_ORTHANC_OTHER_URLS": "http://orthanc-2:8042",
        "TELEREAD_UPSTREAMS": "teleread:8080 teleread-2:8080 teleread-3:8080",
    }
    path = directory / "failover.env"
    path.write_text("".join(f'{key}="{value}"\n' for key, value in values.items()))
    return path


@contextlib.asynccontextmanager
async def compose_topology(directory: Path) -> AsyncIterator[Compose]:
    """The scale profile, up and healthy and seeded; down with its volumes afterwards."""
    ports = [free_port(), free_port()]
    compose = Compose(
        f"teleread-failover-{int(time.time())}",
        env_file(directory, ports),
        ports,
        password=secrets.token_hex(12),
    )
    try:
        await asyncio.to_thread(compose.run, "up", "-d", "--build", "--wait", timeout=UP_SECONDS)
        await asyncio.to_thread(compose.seed)
        yield compose
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            await asyncio.to_thread(compose.run, "down", "-v", "--timeout", "10", timeout=300)
