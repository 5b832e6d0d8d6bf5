"""The address printed into certificates and reports must be one other people can reach.

A signer's certificate names the CRL address, the consortium TSA's certificate too, and the
report's QR code the verification page: all of them outlive the moment of signing. Served on
``127.0.0.1`` without ``TELEREAD_PUBLIC_URL``, they would say ``http://127.0.0.1:8080/…``, which on
paper at a clinic points nowhere. ``teleread serve`` therefore refuses to sign through a loopback
address unless the public URL is set; the demo (``serve --demo``) may, as it runs on one machine.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..settings import Settings
from ..storage import Conflict

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(url: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_allowed(settings: Settings) -> bool:
    """Outside ``serve`` (tests, ``teleread demo``), under ``serve --demo``, or when the public
    URL is set explicitly (whatever it says: the operator chose it)."""
    return settings.loopback_addresses or bool(settings.public_url)


def check_printable(url: str, *, loopback_allowed: bool) -> None:
    """Refuse (``public_url_required``) to print ``url`` when it is loopback and not allowed."""
    if loopback_allowed or not is_loopback(url):
        return
    raise Conflict(
        "public_url_required",
        f"the certificate and the report's QR code would name {url}, which nobody else can"
        " reach: set TELEREAD_PUBLIC_URL to the address users open (e.g."
        " https://teleread.example.org) and restart, or sign through that address",
    )
