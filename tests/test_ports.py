"""The tests' ports (tests/ports.py) stay out of the kernel's hands and out of each other's."""

from __future__ import annotations

import itertools
import socket

from . import ports


def test_ports_come_from_below_the_ephemeral_range_and_are_free():
    start = ports._ephemeral_start()
    chosen = [ports.free_port() for _ in range(50)]
    assert len(set(chosen)) == 50  # a worker hands a port out again only after its whole slice
    for port in chosen:
        assert ports.FIRST <= port < min(start, ports.LAST)
        assert port in ports._ports
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # nothing holds it


def test_a_port_something_listens_on_is_passed_over(monkeypatch):
    held_port, next_port = ports.free_port(), ports.free_port()
    with socket.socket() as held:
        held.bind(("127.0.0.1", held_port))
        held.listen()
        monkeypatch.setattr(ports, "_turn", itertools.cycle([held_port, next_port]))
        assert ports.free_port() == next_port


def test_each_worker_has_a_slice_of_its_own(monkeypatch):
    slices = []
    for worker in ("", "gw0", "gw1", "gw2", "gw3"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(set(ports._slice()))
    for index, one in enumerate(slices):
        for other in slices[index + 1 :]:
            assert not one & other
