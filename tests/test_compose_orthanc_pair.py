"""Static checks of the compose ``scale`` profile (no Docker engine needed): the second Orthanc
(one archive with two doors, as tests/test_orthanc_postgresql.py runs it for real), the three
teleread replicas on one PostgreSQL database, and the proxy spreading requests over them (as
tests/test_failover.py runs them for real, on loopback)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .failover_scenario import proxy_block, retry_seconds

pytestmark = pytest.mark.compose

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"
INIT_SCRIPT = COMPOSE_DIR / "postgres" / "initdb" / "10-teleread.sh"
REPLICAS = ("teleread", "teleread-2", "teleread-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def example(name: str) -> str:
    """The value env.example shows for the scale profile (its commented-out line)."""
    text = (COMPOSE_DIR / "env.example").read_text()
    [value] = re.findall(rf"^#\s+{name}=(.*)$", text, re.MULTILINE)
    return value.strip().strip('"')


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume (``volume/subpath`` for a subpath) of a service."""
    found = {}
    for entry in service["volumes"]:
        if isinstance(entry, dict):
            subpath = (entry.get("volume") or {}).get("subpath")
            found[entry["target"]] = entry["source"] + (f"/{subpath}" if subpath else "")
        else:
            source, target = str(entry).split(":")[:2]
            found[target] = source
    return found


def test_the_second_orthanc_runs_only_in_the_scale_profile(services: dict[str, Any]) -> None:
    assert services["orthanc-2"]["profiles"] == ["scale"]
    assert "profiles" not in services["orthanc"]


def test_both_orthancs_share_configuration_index_and_storage(services: dict[str, Any]) -> None:
    """The same image, configuration file (PostgreSQL index), secrets, volumes and networks."""
    first, second = services["orthanc"], services["orthanc-2"]
    for key in ("image", "environment", "volumes", "networks", "depends_on"):
        assert second[key] == first[key], key


def test_the_second_orthanc_publishes_its_own_dicom_port_and_no_http(
    services: dict[str, Any],
) -> None:
    [port] = services["orthanc-2"]["ports"]
    assert port.endswith(":4242")
    assert port.split(":")[0] != services["orthanc"]["ports"][0].split(":")[0]
    assert not any("8042" in str(p) for p in services["orthanc-2"]["ports"])


def test_teleread_can_be_given_the_second_door(services: dict[str, Any]) -> None:
    env = services["teleread"]["environment"]
    assert env["TELEREAD_ORTHANC_OTHER_URLS"] == "${TELEREAD_ORTHANC_OTHER_URLS:-}"
    example = (COMPOSE_DIR / "env.example").read_text()
    assert "http://orthanc-2:8042" in example


def test_the_scale_profile_adds_a_second_orthanc_and_two_replicas(services: dict[str, Any]):
    """Without the profile: one of each, as before; with it: two Orthancs, three replicas."""
    scaled = {name for name, service in services.items() if "scale" in service.get("profiles", [])}
    assert scaled == {"orthanc-2", "teleread-2", "teleread-3"}
    for name in ("postgres", "orthanc", "teleread", "proxy"):
        assert "profiles" not in services[name], name


def test_every_replica_runs_the_same_image_and_settings_on_one_database(
    services: dict[str, Any],
):
    """The replicas are "teleread" again (a YAML merge): build, environment with
    TELEREAD_DATABASE_URL, networks and health check alike; they start once it is healthy (it
    migrates the database and creates the consortium CA first)."""
    first = services["teleread"]
    assert first["environment"]["TELEREAD_DATABASE_URL"] == "${TELEREAD_DATABASE_URL:-}"
    for name in REPLICAS[1:]:
        replica = services[name]
        for key in ("build", "environment", "networks", "healthcheck", "restart"):
            assert replica[key] == first[key], (name, key)
        assert replica["depends_on"] == {"teleread": {"condition": "service_healthy"}}
        assert not replica.get("ports"), f"{name} is reached through the proxy only"


def test_each_replica_keeps_its_own_data_and_shares_what_must_be_one(
    compose: dict[str, Any], services: dict[str, Any]
):
    """Own data volumes; one worklist folder (whichever replica leads writes it, Orthanc reads
    it) and one consortium CA (DATA_DIR/pki: every signer's certificate from the same CA)."""
    data_dir = services["teleread"]["environment"]["TELEREAD_DATA_DIR"]
    mwl_dir = services["teleread"]["environment"]["TELEREAD_MWL_DIR"]
    seen = [mounts(services[name]) for name in REPLICAS]
    data_volumes = [m[data_dir] for m in seen]
    assert len(set(data_volumes)) == len(REPLICAS)
    assert set(data_volumes) <= set(compose["volumes"])
    assert {m[mwl_dir] for m in seen} == {"worklist-items"}
    for replica in seen[1:]:
        assert replica[f"{data_dir}/pki"] == f"{data_volumes[0]}/pki"


def test_the_proxy_is_told_of_every_replica(services: dict[str, Any]):
    """One upstream by default; env.example's scale line names the three replicas' ports."""
    proxy_env = services["proxy"]["environment"]
    assert proxy_env["TELEREAD_UPSTREAMS"] == "${TELEREAD_UPSTREAMS:-teleread:8080}"
    port = services["teleread"]["environment"]["TELEREAD_PORT"]
    assert example("TELEREAD_UPSTREAMS").split() == [f"{name}:{port}" for name in REPLICAS]


def test_the_proxy_retries_elsewhere_and_leaves_a_failed_replica_out():
    """Round robin, a few seconds of retries (GET also after a broken connection), a failed
    replica left out for a while; no active /healthz probe (it answers 503 while Orthanc is
    away, which would take the worklist down with the archive)."""
    block = proxy_block()
    assert block.startswith("\treverse_proxy {$TELEREAD_UPSTREAMS:teleread:8080} {")
    for option in ("lb_policy round_robin", "fail_duration"):
        assert option in block, option
    assert "health_uri" not in block
    assert re.search(r"lb_retry_match \{\s*method GET HEAD\s*\}", block)
    assert 1 <= retry_seconds(block) <= 30


def test_caddy_reads_the_caddyfile_with_three_upstreams():
    """Debian's caddy adapts compose/Caddyfile as the image's would: three upstreams from one
    variable, the site on the configured domain."""
    if shutil.which("caddy") is None:
        pytest.skip("no caddy: scripts/install-system-deps.sh --test installs Debian's")
    environment = {
        "PATH": "/usr/bin:/bin",
        "TELEREAD_DOMAIN": "teleread.example-hospital.cn",
        "TELEREAD_TLS": "internal",
        "TELEREAD_UPLOAD_MAX_REQUEST_MB": "2048",
        "TELEREAD_UPSTREAMS": example("TELEREAD_UPSTREAMS"),
    }
    adapted = subprocess.run(
        ["caddy", "adapt", "--config", str(COMPOSE_DIR / "Caddyfile")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert adapted.returncode == 0, adapted.stderr
    assert re.findall(r'"dial":"([^"]+)"', adapted.stdout) == example("TELEREAD_UPSTREAMS").split()


def test_postgres_makes_teleread_a_database_of_its_own_once(services: dict[str, Any]):
    """postgres/initdb/10-teleread.sh, in the image's /docker-entrypoint-initdb.d, makes the
    role and database env.example's TELEREAD_DATABASE_URL names, with the password from .env."""
    postgres = services["postgres"]
    assert "./postgres/initdb:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert postgres["environment"]["TELEREAD_DB_PASSWORD"] == "${TELEREAD_DB_PASSWORD:-}"
    url = urlsplit(example("TELEREAD_DATABASE_URL"))
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    script = INIT_SCRIPT.read_text()
    assert f"CREATE ROLE {url.username} LOGIN PASSWORD" in script
    assert f"CREATE DATABASE {url.path[1:]} OWNER {url.username}" in script
    assert '"$TELEREAD_DB_PASSWORD"' in script
    assert INIT_SCRIPT.stat().st_mode & 0o111, "executable: the image runs it rather than sources"
    assert subprocess.run(["bash", "-n", str(INIT_SCRIPT)], timeout=30).returncode == 0
