"""Static checks of the docker compose deployment in compose/ (no Docker engine needed).

They catch the mistakes that otherwise only show up on a customer's server: a renamed config
file, a published Orthanc HTTP port, a secret written into the yml, or a variable the operator
was never told to set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.runtime.orthanc.process import ANSWER_ENCODING, DICOM_PORT_RULES, WORKLIST_PLUGIN

# Static checks of compose/ (no Docker engine needed).
pytestmark = pytest.mark.compose

REPO = Path(__file__).resolve().parent.parent
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / "env.example"
ORTHANC_CONFIG = COMPOSE_DIR / "orthanc" / "orthanc.json"
CADDYFILE = COMPOSE_DIR / "Caddyfile"

SERVICES = {"postgres", "orthanc", "teleread", "proxy"}

# ${VAR}, ${VAR:-default}, ${VAR:?message}, $VAR -- but not $$ (a literal dollar for the container).
_INTERPOLATION = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_WHOLE_INTERPOLATION = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_CADDY_ENV = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def orthanc_config() -> dict[str, Any]:
    """The parsed Orthanc configuration mounted into the orthanc container."""
    return json.loads(ORTHANC_CONFIG.read_text(encoding="utf-8"))


def _interpolated_names(text: str) -> set[str]:
    """Names of the variables docker compose substitutes in ``text``."""
    text = text.replace("$$", "")
    return {braced or bare for braced, bare in _INTERPOLATION.findall(text)}


def _strings(node: Any) -> list[str]:
    """Every string (key or value) in a parsed YAML tree: what compose interpolates."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _documented_names() -> set[str]:
    """Variable names assigned in env.example (commented-out examples do not count)."""
    names = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two compose syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _published_container_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes on the host (short and long port syntax)."""
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
            continue
        spec = str(entry).split("/", 1)[0]  # drop "/udp"
        target = spec.rsplit(":", 1)[-1]
        if "-" in target:
            low, high = (int(part) for part in target.split("-"))
            ports.update(range(low, high + 1))
        else:
            ports.add(int(target))
    return ports


def _bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths of a service's bind mounts (named volumes are skipped)."""
    sources = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                sources.append(entry["source"])
            continue
        source = str(entry).split(":", 1)[0]
        if source.startswith((".", "/", "~")):
            sources.append(source)
    return sources


def test_compose_file_parses_and_has_the_four_services(compose: dict[str, Any]) -> None:
    """The compose file is valid YAML and defines postgres, orthanc, teleread and proxy."""
    assert isinstance(compose, dict)
    assert SERVICES <= set(compose["services"])


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    """Every bind-mounted file or directory, resolved against compose/, exists in the repo."""
    checked = []
    for name, service in compose["services"].items():
        for source in _bind_sources(service):
            assert not source.startswith(("/", "~")), f"{name}: absolute bind mount {source}"
            path = (COMPOSE_DIR / source).resolve()
            assert path.exists(), f"{name}: bind mount source {source} is missing"
            checked.append(path)
    assert ORTHANC_CONFIG in checked
    assert CADDYFILE in checked


def test_build_context_and_dockerfile_exist(compose: dict[str, Any]) -> None:
    """The teleread image builds from the repository root with the top-level Dockerfile."""
    build = compose["services"]["teleread"]["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == REPO
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file()
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.MULTILINE)
    assert '"teleread", "serve"' in text
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "compose" in ignored, "compose/.env (secrets) must stay out of the build context"


def test_only_dicom_port_of_orthanc_is_published(compose: dict[str, Any]) -> None:
    """Orthanc publishes DICOM 4242 but never HTTP 8042; teleread is reachable only via proxy."""
    services = compose["services"]
    orthanc_ports = _published_container_ports(services["orthanc"])
    assert 4242 in orthanc_ports
    assert 8042 not in orthanc_ports
    assert not _published_container_ports(services["teleread"])
    assert not _published_container_ports(services["postgres"])
    assert {80, 443} <= _published_container_ports(services["proxy"])
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} must not use host networking"
        assert 8042 not in _published_container_ports(service), f"{name} publishes 8042"


def test_networks_keep_orthanc_http_internal(compose: dict[str, Any]) -> None:
    """postgres, orthanc and teleread share an internal network that the proxy is not on."""
    services = compose["services"]
    backend = compose["networks"]["backend"]
    assert backend and backend.get("internal") is True
    for name in ("postgres", "orthanc", "teleread"):
        assert "backend" in services[name]["networks"], name
    assert "backend" not in services["proxy"]["networks"]
    shared = set(services["proxy"]["networks"]) & set(services["teleread"]["networks"])
    assert shared, "the proxy must share a network with teleread"


def test_orthanc_config_has_auth_dicomweb_and_postgresql(
    orthanc_config: dict[str, Any],
) -> None:
    """The Orthanc JSON enables authentication, DICOMweb and the PostgreSQL index."""
    cfg = orthanc_config
    assert cfg["AuthenticationEnabled"] is True
    assert cfg["RemoteAccessAllowed"] is True
    assert cfg["DicomAet"] == "TELEREAD"
    assert cfg["DicomPort"] == 4242
    assert cfg["HttpPort"] == 8042
    assert cfg["StableAge"] == 10
    assert cfg["OverwriteInstances"] is False
    assert cfg["DicomModalitiesInDatabase"] is True
    assert cfg["DicomWeb"]["Enable"] is True
    pg = cfg["PostgreSQL"]
    assert pg["EnableIndex"] is True
    assert pg["EnableStorage"] is False, "DICOM files belong on the orthanc-storage volume"
    assert pg["Host"] == "postgres"


def test_orthanc_dicom_port_has_the_managed_orthancs_rules(orthanc_config: dict[str, Any]) -> None:
    """Production's DICOM port is as closed as the managed one: called AE title checked, echo and
    store only for unknown AE titles (tests/test_dicom_port.py tries them with dcmtk)."""
    assert {key: orthanc_config.get(key) for key in DICOM_PORT_RULES} == DICOM_PORT_RULES
    assert orthanc_config["DicomModalitiesInDatabase"] is True  # what teleread registers


def test_orthanc_serves_the_worklist_teleread_writes(
    compose: dict[str, Any], orthanc_config: dict[str, Any]
) -> None:
    """The worklist plugin is set as in the managed Orthanc, and reads (only) the folder that
    teleread writes its item files to (TELEREAD_MWL_DIR), one named volume mounted in both."""
    worklists = dict(orthanc_config["Worklists"])
    database = worklists.pop("Database")
    assert worklists == WORKLIST_PLUGIN
    assert {key: orthanc_config.get(key) for key in ANSWER_ENCODING} == ANSWER_ENCODING
    services = compose["services"]
    orthanc_mounts = [str(v) for v in services["orthanc"]["volumes"]]
    (shared,) = [v.split(":")[0] for v in orthanc_mounts if v.split(":")[1] == database]
    assert f"{shared}:{database}:ro" in orthanc_mounts
    folder = _environment(services["teleread"])["TELEREAD_MWL_DIR"]
    assert f"{shared}:{folder}" in [str(v) for v in services["teleread"]["volumes"]]
    assert shared in compose["volumes"]


def test_orthanc_config_holds_no_secrets(orthanc_config: dict[str, Any]) -> None:
    """Passwords and users reach Orthanc through the environment, not the versioned JSON."""
    assert "Password" not in orthanc_config["PostgreSQL"]
    assert not orthanc_config.get("RegisteredUsers")
    assert "$" not in ORTHANC_CONFIG.read_text(encoding="utf-8")  # the image runs envsubst on it


def test_orthanc_and_postgres_agree(
    compose: dict[str, Any], orthanc_config: dict[str, Any]
) -> None:
    """Orthanc connects with the role and database postgres creates, using the same password."""
    pg_env = _environment(compose["services"]["postgres"])
    orthanc_env = _environment(compose["services"]["orthanc"])
    assert orthanc_config["PostgreSQL"]["Username"] == pg_env["POSTGRES_USER"]
    assert orthanc_config["PostgreSQL"]["Database"] == pg_env["POSTGRES_DB"]
    assert _interpolated_names(pg_env["POSTGRES_PASSWORD"]) == {"POSTGRES_PASSWORD"}
    assert _interpolated_names(orthanc_env["ORTHANC__POSTGRESQL__PASSWORD"]) == {
        "POSTGRES_PASSWORD"
    }
    volumes = [str(v) for v in compose["services"]["orthanc"]["volumes"]]
    assert any(v.endswith(":" + orthanc_config["StorageDirectory"]) for v in volumes)


def test_orthanc_user_is_the_one_teleread_uses(compose: dict[str, Any]) -> None:
    """ORTHANC__REGISTERED_USERS is built from the same variables teleread logs in with."""
    orthanc_env = _environment(compose["services"]["orthanc"])
    teleread_env = _environment(compose["services"]["teleread"])
    users = orthanc_env["ORTHANC__REGISTERED_USERS"]
    # Substitute any value the operator might pick: the result must be the JSON object Orthanc
    # expects, {"user": "password"}.
    placeholder = _WHOLE_INTERPOLATION.sub("x", users)
    assert json.loads(placeholder) == {"x": "x"}
    assert _interpolated_names(users) == {"TELEREAD_ORTHANC_USERNAME", "TELEREAD_ORTHANC_PASSWORD"}
    assert _interpolated_names(teleread_env["TELEREAD_ORTHANC_USERNAME"]) == {
        "TELEREAD_ORTHANC_USERNAME"
    }
    assert _interpolated_names(teleread_env["TELEREAD_ORTHANC_PASSWORD"]) == {
        "TELEREAD_ORTHANC_PASSWORD"
    }
    assert teleread_env["TELEREAD_ORTHANC_URL"] == "http://orthanc:8042"
    assert orthanc_env["TCP_NODELAY"] == "1"


def test_teleread_service_settings(compose: dict[str, Any]) -> None:
    """teleread listens on 0.0.0.0:8080, keeps data on a named volume and is health-checked."""
    service = compose["services"]["teleread"]
    env = _environment(service)
    assert env["TELEREAD_HOST"] == "0.0.0.0"
    assert env["TELEREAD_PORT"] == "8080"
    assert env["TELEREAD_DATA_DIR"] == "/var/lib/teleread"
    assert "teleread-data:/var/lib/teleread" in service["volumes"]
    assert "teleread-data" in compose["volumes"]
    assert "orthanc" in service["depends_on"]
    assert "/healthz" in " ".join(map(str, service["healthcheck"]["test"]))
    assert "pg_isready" in " ".join(
        map(str, compose["services"]["postgres"]["healthcheck"]["test"])
    )


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    """Every named volume a service mounts is declared at top level (and they all exist)."""
    declared = set(compose["volumes"])
    assert {"postgres-data", "orthanc-storage", "teleread-data", "caddy-data", "caddy-config"} <= (
        declared
    )
    for name, service in compose["services"].items():
        for entry in service.get("volumes") or []:
            if isinstance(entry, dict):  # long syntax
                if entry.get("type") == "volume":
                    assert entry["source"] in declared, f"{name}: {entry['source']} undeclared"
                continue
            source = str(entry).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_no_hard_coded_secrets(compose: dict[str, Any]) -> None:
    """Every password-like environment value is interpolated from .env, never written inline."""
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "REGISTERED_USERS")):
                assert _interpolated_names(value), f"{name}: {key} is hard-coded"


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    """Each ${VAR} the compose file uses is assigned (and so explained) in env.example."""
    used = set().union(*(_interpolated_names(s) for s in _strings(compose)))
    assert used, "the compose file should take its settings from .env"
    missing = used - _documented_names()
    assert not missing, f"undocumented in compose/env.example: {sorted(missing)}"


def test_caddyfile_variables_reach_the_proxy(compose: dict[str, Any]) -> None:
    """Each {$VAR} in the Caddyfile is in the proxy container's environment."""
    text = CADDYFILE.read_text(encoding="utf-8")
    needed = set(_CADDY_ENV.findall(text))
    assert {"TELEREAD_DOMAIN", "TELEREAD_TLS"} <= needed
    missing = needed - set(_environment(compose["services"]["proxy"]))
    assert not missing, f"proxy environment lacks {sorted(missing)}"
    assert "reverse_proxy {$TELEREAD_UPSTREAMS:teleread:8080}" in text
    assert "max_size" in text


def test_no_real_env_file_is_versioned() -> None:
    """compose/.env holds real secrets, so git must ignore it."""
    ignore = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignore
