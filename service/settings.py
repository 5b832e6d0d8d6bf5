"""Service settings: one frozen dataclass from ``TELEREAD_*`` variables and an optional TOML file.

Every setting has a safe default for the embedded mode (managed Orthanc, SQLite under the data
directory), so ``teleread serve`` works with no configuration at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from worklists.rules import DEFAULT_RULES_PATH, RulesError


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start; documented in docs/configuration.md."""

    data_dir: Path = Path("./var")
    database_url: str | None = None
    """``postgresql://user:password@host:port/db``: teleread's tables in PostgreSQL (several
    replicas may share it: docs/scaling.md); unset, the SQLite file in the data dir."""
    host: str = "127.0.0.1"
    port: int = 8080
    orthanc_url: str | None = None
    orthanc_username: str | None = None
    orthanc_password: str | None = None
    orthanc_http_port: int = 8042
    orthanc_dicom_port: int = 4242
    orthanc_aet: str = "TELEREAD"
    orthanc_executable: str = "Orthanc"
    orthanc_plugins_dir: Path = Path("/usr/share/orthanc/plugins")
    orthanc_max_restarts: int = 5
    orthanc_restart_window: float = 600.0
    orthanc_other_urls: str | None = None
    """Comma-separated: other Orthancs sharing ``orthanc_url``'s index (PostgreSQL), used when
    it does not answer (service/runtime/orthanc/client.py)."""
    orthanc_index_url: str | None = None
    """The managed Orthanc's index in PostgreSQL (``postgresql://…``); None: SQLite."""
    orthanc_storage_dir: Path | None = None
    """With ``orthanc_index_url``: the DICOM files' directory, shared by the Orthancs of that
    index; None: under the data directory."""
    stable_age: int = 10
    changes_poll_interval: float = 0.5
    session_hours: float = 12.0
    upload_max_file_mb: int = 1024
    upload_max_request_mb: int = 4096
    upload_max_expanded_mb: int = 8192
    upload_max_expanded_file_mb: int = 1024
    default_timezone: str = "Asia/Shanghai"
    public_url: str | None = None
    trusted_proxies: str | None = None
    worklist_rules: Path | None = None
    claim_lease_minutes: float = 15.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    escalation_interval: float = 30.0
    escalation_share: float = 0.5
    critical_ack_minutes: float = 15.0
    ca_name: str = "teleread consortium CA"
    ca_passphrase: str | None = None
    tsa_url: str | None = None
    delivery_retry_seconds: float = 30.0
    delivery_max_attempts: int = 10
    hl7_retry_seconds: float = 30.0
    hl7_max_attempts: int = 10
    web_processes: int = 0
    render_workers: int = 0
    frame_cache_mb: int = 512
    loopback_addresses: bool = True
    """Not an environment variable: ``teleread serve`` sets it False (unless ``--demo``), so that
    no certificate or QR code names a loopback address (service/reports/public_address.py)."""
    atna_url: str | None = None
    atna_ca_file: str | None = None
    atna_client_cert: str | None = None
    atna_client_key: str | None = None
    ohif_dir: Path | None = None
    cors_origins: str | None = None
    mwl_dir: Path | None = None
    hl7_port: int | None = None
    """The HL7 v2 MLLP listener's port (service/hl7/listener.py); off when unset."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "teleread.db"

    @property
    def ohif_files(self) -> Path:
        """The OHIF viewer's built files (``make ohif`` puts them in the checkout's build/ohif)."""
        return self.ohif_dir or REPOSITORY_DIR / "build" / "ohif"

    @property
    def managed_orthanc(self) -> bool:
        """True when the service starts its own Orthanc child process."""
        return not self.orthanc_url

    @property
    def orthanc_dir(self) -> Path:
        return self.data_dir / "orthanc"

    @property
    def orthanc_storage(self) -> Path:
        """Where the managed Orthanc keeps its DICOM files."""
        return self.orthanc_storage_dir or self.orthanc_dir / "storage"

    @property
    def other_orthancs(self) -> tuple[str, ...]:
        """``orthanc_other_urls`` as a tuple (empty when unset)."""
        return tuple(u.strip() for u in (self.orthanc_other_urls or "").split(",") if u.strip())

    @property
    def worklist_files_dir(self) -> Path | None:
        """Where the modality worklist item files go (service/mwl/): ``TELEREAD_MWL_DIR``, else
        the managed Orthanc's plugin folder; None (no worklist) with an Orthanc elsewhere and no
        folder shared with it."""
        if self.mwl_dir is not None:
            return self.mwl_dir
        return self.orthanc_dir / "worklists" if self.managed_orthanc else None

    @property
    def quarantine_dir(self) -> Path:
        """Files of quarantined instances, moved out of Orthanc (service/intake/ingest.py)."""
        return self.data_dir / "quarantine"


ENV_PREFIX = "TELEREAD_"
REPOSITORY_DIR = Path(__file__).resolve().parent.parent
MAX_WEB_PROCESSES = 32


def web_process_count(settings: Settings) -> int:
    """How many HTTP processes ``teleread serve`` runs: the setting, or one per usable core."""
    if settings.web_processes:
        return settings.web_processes
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WEB_PROCESSES))


_SETTABLE = {f.name: f for f in fields(Settings) if f.name not in ("extra", "loopback_addresses")}


def _convert(name: str, raw: Any) -> Any:
    """Coerce a raw env/TOML value into the type of the named setting."""
    default = getattr(Settings, name, None)
    kind = type(default) if default is not None else str
    if name in {"data_dir", "orthanc_plugins_dir"}:
        return Path(str(raw))
    if name in {"worklist_rules", "ohif_dir", "mwl_dir", "orthanc_storage_dir"}:
        return Path(str(raw)) if raw else None
    if raw is None or raw == "":
        return None if default is None else default
    if name == "hl7_port":
        kind = int
    if kind is bool:
        return str(raw).lower() in {"1", "true", "yes", "on"}
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError as exc:
            raise SettingsError(
                f"{ENV_PREFIX}{name.upper()} must be a number, got {raw!r}"
            ) from exc
    return str(raw)


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


def load_settings(
    environ: Mapping[str, str] | None = None, toml_path: Path | None = None
) -> Settings:
    """Build settings from a TOML file (``TELEREAD_CONFIG``) overlaid by ``TELEREAD_*`` vars."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    toml_path = toml_path or (
        Path(environ["TELEREAD_CONFIG"]) if environ.get("TELEREAD_CONFIG") else None
    )
    if toml_path is not None:
        with toml_path.open("rb") as fh:
            for key, raw in tomllib.load(fh).items():
                if key in _SETTABLE:
                    values[key] = _convert(key, raw)
    for name in _SETTABLE:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _convert(name, environ[env_name])
    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    for port_name in ("port", "orthanc_http_port", "orthanc_dicom_port", "hl7_port"):
        port = getattr(settings, port_name)
        if port is not None and not 0 < port < 65536:
            raise SettingsError(f"{ENV_PREFIX}{port_name.upper()} must be a TCP port, got {port}")
    if settings.stable_age < 1:
        raise SettingsError("TELEREAD_STABLE_AGE must be at least 1 second")
    if settings.database_url is not None and not settings.database_url.startswith(
        ("postgresql://", "postgres://")
    ):
        raise SettingsError(
            "TELEREAD_DATABASE_URL must be a postgresql:// URL (unset: the SQLite file)"
        )
    if settings.claim_lease_minutes <= 0:
        raise SettingsError("TELEREAD_CLAIM_LEASE_MINUTES must be more than 0")
    if settings.escalation_interval <= 0:
        raise SettingsError("TELEREAD_ESCALATION_INTERVAL must be more than 0")
    if not 0 < settings.escalation_share <= 1:
        raise SettingsError("TELEREAD_ESCALATION_SHARE must be more than 0 and at most 1")
    if settings.critical_ack_minutes <= 0:
        raise SettingsError("TELEREAD_CRITICAL_ACK_MINUTES must be more than 0")
    if settings.delivery_retry_seconds <= 0 or settings.delivery_max_attempts < 1:
        raise SettingsError(
            "TELEREAD_DELIVERY_RETRY_SECONDS must be more than 0 and"
            " TELEREAD_DELIVERY_MAX_ATTEMPTS at least 1"
        )
    if settings.hl7_retry_seconds <= 0 or settings.hl7_max_attempts < 1:
        raise SettingsError(
            "TELEREAD_HL7_RETRY_SECONDS must be more than 0 and"
            " TELEREAD_HL7_MAX_ATTEMPTS at least 1"
        )
    if settings.render_workers < 0 or settings.frame_cache_mb < 1:
        raise SettingsError(
            "TELEREAD_RENDER_WORKERS must be 0 or more and TELEREAD_FRAME_CACHE_MB at least 1"
        )
    if not 0 <= settings.web_processes <= MAX_WEB_PROCESSES:
        raise SettingsError(
            f"TELEREAD_WEB_PROCESSES must be from 0 (one per core) to {MAX_WEB_PROCESSES}"
        )
    if settings.webhook_url and not settings.webhook_secret:
        raise SettingsError("TELEREAD_WEBHOOK_URL needs TELEREAD_WEBHOOK_SECRET to sign with")
    _validate_atna(settings)
    try:
        trusted_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"TELEREAD_TRUSTED_PROXIES: {exc}") from exc
    if settings.orthanc_max_restarts < 0 or settings.orthanc_restart_window <= 0:
        raise SettingsError(
            "TELEREAD_ORTHANC_MAX_RESTARTS must be 0 or more and"
            " TELEREAD_ORTHANC_RESTART_WINDOW more than 0"
        )
    try:
        cors_origins(settings.cors_origins)
    except ValueError as exc:
        raise SettingsError(f"TELEREAD_CORS_ORIGINS: {exc}") from exc
    if len(settings.orthanc_aet) > 16:
        raise SettingsError("TELEREAD_ORTHANC_AET must be at most 16 characters")
    _validate_orthanc_sharing(settings)


def _validate_orthanc_sharing(settings: Settings) -> None:
    """Orthancs on one PostgreSQL index (docs/scaling.md, "Orthanc on PostgreSQL")."""
    if settings.orthanc_index_url:
        parts = urlsplit(settings.orthanc_index_url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise SettingsError(
                "TELEREAD_ORTHANC_INDEX_URL must be postgresql://user:password@host:port/database"
            )
    elif settings.orthanc_storage_dir is not None:
        raise SettingsError("TELEREAD_ORTHANC_STORAGE_DIR needs TELEREAD_ORTHANC_INDEX_URL")
    if settings.other_orthancs and not settings.orthanc_url:
        raise SettingsError("TELEREAD_ORTHANC_OTHER_URLS needs TELEREAD_ORTHANC_URL")
    for url in settings.other_orthancs:
        if urlsplit(url).scheme not in ("http", "https"):
            raise SettingsError(f"TELEREAD_ORTHANC_OTHER_URLS: not an http(s) URL: {url!r}")


def _validate_atna(settings: Settings) -> None:
    """ATNA forwarding (service/audit/forwarding.py) is syslog over TLS only: ``tls://host[:port]``."""
    if not settings.atna_url:
        return
    parts = urlsplit(settings.atna_url)
    try:
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"TELEREAD_ATNA_URL: {exc}") from exc
    if parts.scheme != "tls" or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(
            f"TELEREAD_ATNA_URL must be tls://host[:port] (syslog over TLS, RFC 5425), "
            f"got {settings.atna_url!r}"
        )
    if port == 0:
        raise SettingsError("TELEREAD_ATNA_URL: the port must be from 1 to 65535")
    if bool(settings.atna_client_cert) != bool(settings.atna_client_key):
        raise SettingsError(
            "TELEREAD_ATNA_CLIENT_CERT and TELEREAD_ATNA_CLIENT_KEY go together (mutual TLS)"
        )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(setting: str | None) -> tuple[Network, ...]:
    """``TELEREAD_TRUSTED_PROXIES`` parsed: comma-separated addresses or CIDR networks.

    Raises ValueError naming the entry that is neither.
    """
    networks = []
    for part in (setting or "").split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network") from exc
    return tuple(networks)


@lru_cache(maxsize=8)
def cors_origins(setting: str | None) -> frozenset[str]:
    """``TELEREAD_CORS_ORIGINS`` parsed: comma-separated origins (``https://pacs.example.org``),
    each a scheme, a host and an optional port with no path, as browsers send them in ``Origin``.

    Raises ValueError naming the entry that is not an origin.
    """
    origins = set()
    for part in (setting or "").split(","):
        entry = part.strip().rstrip("/")
        if not entry:
            continue
        if not _ORIGIN.fullmatch(entry):
            raise ValueError(f"{entry!r} is not an origin like https://viewer.example.org")
        origins.add(entry.lower())
    return frozenset(origins)


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def documented_settings() -> list[str]:
    """Names of every environment variable the service reads (a test checks each is documented)."""
    return sorted([ENV_PREFIX + name.upper() for name in _SETTABLE] + ["TELEREAD_CONFIG"])


_Parsed = TypeVar("_Parsed")


def read_worklist_rules(settings: Settings, parse: Callable[[str, str], _Parsed]) -> _Parsed:
    """TELEREAD_WORKLIST_RULES (or the shipped defaults) parsed by ``parse(text, source)``: the
    whole document, or the one table a caller needs (SLA and routing, ``[recognition]``,
    ``[peer_review]``). A file that cannot be read or used stops start-up with a message naming
    the problem."""
    path = settings.worklist_rules or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: cannot read {path}: {exc}") from exc
    try:
        return parse(text, str(path))
    except RulesError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: {exc}") from exc
