"""Static checks of the compose ``scale`` profile's second Orthanc (no Docker engine needed):
one archive with two doors, as tests/test_orthanc_postgresql.py runs it for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.compose

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["services"]


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
