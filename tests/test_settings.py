"""Settings come from TELEREAD_* variables and an optional TOML file, with safe defaults."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from service.settings import (
    Settings,
    SettingsError,
    documented_settings,
    load_settings,
    web_process_count,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_defaults_match_the_documented_embedded_mode():
    """With no variables set: ./var, 127.0.0.1:8080, managed Orthanc on 8042/4242, StableAge 10."""
    settings = load_settings({})
    assert settings.data_dir == Path("./var")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.orthanc_http_port, settings.orthanc_dicom_port) == (8042, 4242)
    assert settings.orthanc_aet == "TELEREAD"
    assert settings.stable_age == 10
    assert settings.managed_orthanc


def test_environment_overrides_defaults():
    """Every TELEREAD_* variable is read and converted to the setting's type."""
    settings = load_settings(
        {
            "TELEREAD_DATA_DIR": "/srv/tr",
            "TELEREAD_PORT": "9000",
            "TELEREAD_STABLE_AGE": "3",
            "TELEREAD_ORTHANC_URL": "http://orthanc:8042",
        }
    )
    assert settings.data_dir == Path("/srv/tr")
    assert settings.port == 9000
    assert settings.stable_age == 3
    assert not settings.managed_orthanc


def test_environment_wins_over_the_toml_file(tmp_path):
    """The TOML file sets values; variables override them."""
    config = tmp_path / "teleread.toml"
    config.write_text('port = 8181\northanc_aet = "REGION"\n')
    settings = load_settings({"TELEREAD_CONFIG": str(config), "TELEREAD_PORT": "8282"})
    assert settings.port == 8282
    assert settings.orthanc_aet == "REGION"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TELEREAD_PORT", "eighty"),
        ("TELEREAD_PORT", "70000"),
        ("TELEREAD_STABLE_AGE", "0"),
        ("TELEREAD_ORTHANC_AET", "A_TITLE_MUCH_TOO_LONG"),
        ("TELEREAD_WEB_PROCESSES", "-1"),
        ("TELEREAD_WEB_PROCESSES", "33"),
        ("TELEREAD_RENDER_WORKERS", "-2"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(variable, value):
    """A wrong value stops start-up with a message naming the variable."""
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


def test_web_processes_default_to_one_per_usable_core():
    """0 (the default) is one per core this process may run on; a number is taken as is."""
    assert web_process_count(load_settings({})) == len(os.sched_getaffinity(0))
    assert web_process_count(load_settings({"TELEREAD_WEB_PROCESSES": "3"})) == 3


def test_every_setting_is_documented():
    """docs/configuration.md lists every variable the service reads (and no stale ones)."""
    documented = set(re.findall(r"`(TELEREAD_[A-Z0-9_]+)`", DOCS.read_text()))
    assert set(documented_settings()) <= documented
    assert documented <= set(documented_settings())


def test_settings_are_immutable():
    """One frozen object: nothing changes settings behind the app's back."""
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"TELEREAD_ATNA_URL": "udp://arr.example:514"}, "tls://host[:port]"),
        ({"TELEREAD_ATNA_URL": "tls://:6514"}, "tls://host[:port]"),
        (
            {"TELEREAD_ATNA_URL": "tls://arr.example", "TELEREAD_ATNA_CLIENT_CERT": "c.pem"},
            "go together",
        ),
    ],
)
def test_atna_forwarding_is_syslog_over_tls_only(environ, complaint):
    """RFC 5425 or nothing: a plain or UDP address, or half a client key pair, is refused."""
    with pytest.raises(SettingsError, match=re.escape(complaint)):
        load_settings(environ)
    assert load_settings({"TELEREAD_ATNA_URL": "tls://arr.example"}).atna_url
