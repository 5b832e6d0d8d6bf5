"""Ports for the servers the tests start, chosen so that nothing else can take them meanwhile.

A port from ``bind(("127.0.0.1", 0))`` comes from the kernel's ephemeral range: the very range
every outgoing connection takes its source port from. Between the moment a test picks it and the
moment its child process (Orthanc, ``teleread serve``, PostgreSQL) listens on it, any connection
on the machine (Chromium, another worker's HTTP client) may be given it, and the child then dies
with "address in use" (CI saw ``teleread serve`` exit 1 that way under load).

So ports come from below the ephemeral range, where the kernel never hands out one on its own,
each pytest-xdist worker from a slice of its own, in turn (a port is not handed out twice by a
worker until its whole slice has gone by), and only when a plain bind shows nothing holds it.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
import threading
from pathlib import Path

FIRST, LAST = 20000, 32000  # below Linux's ephemeral range (32768–60999 by default)
SLICES = 8  # the controller (or a run without xdist) and up to seven workers; more share slices


def _ephemeral_start() -> int:
    """Where the kernel's ephemeral range starts here, so the ports stay below it."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return LAST


def _slice() -> range:
    """This process's share of the range: gw0 gets the second slice, gw1 the third, and so on."""
    last = min(LAST, _ephemeral_start())
    width = (last - FIRST) // SLICES
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = (int(worker.group(1)) + 1) % SLICES if worker else 0
    start = FIRST + index * width
    return range(start, start + width)


_lock = threading.Lock()
_ports = _slice()
_turn = itertools.cycle(random.sample(list(_ports), len(_ports)))


def free_port() -> int:
    """A localhost TCP port nothing listens on, that no other worker and no kernel choice gets."""
    with _lock:
        for _ in range(len(_ports)):
            port = next(_turn)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # held by something else, or still in TIME_WAIT
            return port
    raise RuntimeError(f"no free port in {_ports.start}–{_ports.stop - 1}")
