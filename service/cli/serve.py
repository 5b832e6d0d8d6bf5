"""``teleread serve``: the primary web process, which starts the others (and, with ``--demo``,
seeds the demo consortium on first start)."""

from __future__ import annotations

import socket
import sys
from dataclasses import replace

from aiohttp import web

from ..app import create_app, demo_his_context, demo_studies_context
from ..demo import seed as demo
from ..demo.first_start import seed_accounts_once
from ..demo.rules import with_repeat_windows
from ..http.keys import SECONDARIES, SERVICE_EXIT
from ..runtime.web_processes import PrimaryLock, ProcessRole, bus_path_for
from ..settings import Settings, web_process_count
from ..storage.opening import open_database


def print_banner(settings: Settings, seeded: bool, processes: int = 1) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    served_by = f" ({processes} web processes)" if processes > 1 else ""
    lines = ["", f"teleread is running at http://{host}:{settings.port}/{served_by}"]
    if settings.managed_orthanc:
        lines.append(
            f"DICOM modalities send to AE title {settings.orthanc_aet} on port "
            f"{settings.orthanc_dicom_port}"
        )
    if not settings.public_url and not settings.loopback_addresses and host in ("127.0.0.1", "::1"):
        lines.append(
            "Reports cannot be signed through this loopback address: set TELEREAD_PUBLIC_URL"
            " to the address users open"
        )
    if seeded:
        lines.append(f"Demo logins (password for all: {demo.DEMO_PASSWORD}):")
        for username, role, facility_key, _ in demo.USERS:
            facility = next(f.name for f in demo.FACILITIES if f.key == facility_key)
            note = "  (resident: her reports go to review)" if username in demo.GRADES else ""
            lines.append(f"  {username:<8} {role:<13} {facility}{note}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def refuse_a_taken_port(host: str, port: int) -> None:
    """With ``SO_REUSEPORT`` a second service of the same user could bind the port too and take
    half the connections; a plain bind first fails as it would without it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def serve(settings: Settings, seed_demo: bool = False) -> int:
    # Certificates and QR codes must name an address others reach; the demo runs on one machine.
    settings = replace(settings, loopback_addresses=seed_demo)
    with PrimaryLock(settings.data_dir):
        return _serve(settings, seed_demo)


def _serve(settings: Settings, seed_demo: bool) -> int:
    seeded = False
    if seed_demo:
        database = open_database(settings)
        try:
            seeded = seed_accounts_once(database)
        finally:
            database.close()
        settings = with_repeat_windows(settings)
    count = web_process_count(settings)
    if count > 1:
        refuse_a_taken_port(settings.host, settings.port)
    role = ProcessRole(0, count, bus_path_for(settings) if count > 1 else None)
    app = create_app(settings, role)
    if seed_demo:
        app.cleanup_ctx.append(demo_his_context)
        app.cleanup_ctx.append(demo_studies_context)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            reuse_port=count > 1,
            print=lambda _message: print_banner(settings, seeded, count),
            shutdown_timeout=5,
            access_log=None,
        )
    finally:  # a second Ctrl-C cuts the clean-up short: the secondaries must still go
        secondaries = app.get(SECONDARIES)
        if secondaries is not None:
            secondaries.stop_now()
    ending = app[SERVICE_EXIT]
    if ending.code:
        print(f"teleread: {ending.reason}", file=sys.stderr)
    return ending.code
