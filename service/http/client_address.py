"""Who is calling: the peer's address, or the client's when the peer is a trusted proxy.

Behind the compose deployment's reverse proxy every connection comes from the proxy. Taking its
address as the caller's would put one address on every audit record and make the failed-login
limit per address (service/auth/sessions.py) lock out the whole consortium after a few typos.
So when the peer is listed in ``TELEREAD_TRUSTED_PROXIES`` (addresses or networks), the caller
is the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy — the one the
outermost trusted proxy saw. Anything to its left was written by the client and proves nothing.
Without the setting (the default) the header is ignored: anyone can send it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

# The setting's parser lives with the settings (which check it at start-up, below the web layer).
from ..settings import Network, trusted_networks

__all__ = ["Network", "caller_address", "trusted_networks"]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks) -> bool:
    return any(address in network for network in networks)


def caller_address(
    peer: str | None, forwarded_for: Iterable[str], networks: tuple[Network, ...]
) -> str | None:
    """The caller's address from the TCP peer and every ``X-Forwarded-For`` header value."""
    current = _address(peer) if peer else None
    if current is None or not networks or not _trusted(current, networks):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # a malformed hop: stop at the last address we could vouch for
            break
        current = address
        if not _trusted(address, networks):
            break
    return str(current)
