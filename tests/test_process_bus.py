"""The process bus: hub and peers in one loop, plus one real second process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.runtime.process_bus import BusConnectError, ProcessBus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """pytest's tmp_path can exceed the ~107-byte limit of a Unix socket path."""
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="bus-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def sock(short_dir: Path) -> Path:
    return short_dir / "run" / "bus.sock"


@pytest.fixture
async def bus(sock: Path) -> AsyncIterator[tuple[ProcessBus, ProcessBus, ProcessBus]]:
    """A hub and two connected peers."""
    hub = ProcessBus(sock, hub=True)
    await hub.start()
    one, two = ProcessBus(sock, hub=False), ProcessBus(sock, hub=False)
    await one.start()
    await two.start()
    await until(lambda: hub.peers == 2)
    yield hub, one, two
    for each in (two, one, hub):
        await each.close()


def collect(bus: ProcessBus, topic: str) -> list[dict[str, Any]]:
    """A list that fills with the payloads ``bus`` receives on ``topic``."""
    received: list[dict[str, Any]] = []
    bus.on(topic, received.append)
    return received


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll a plain predicate (messages arrive in the same loop, so polling is cheap and exact)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def settle() -> None:
    """Long enough for anything in flight between three sockets in one loop to arrive."""
    await asyncio.sleep(0.1)


async def test_peer_to_hub(bus):
    hub, one, _ = bus
    received = collect(hub, "kick")
    one.send("kick", {"loop": "delivery"})
    await until(lambda: received == [{"loop": "delivery"}])


async def test_peer_to_other_peer_through_the_hub(bus):
    _, one, two = bus
    received = collect(two, "change")
    one.send("change", {"kind": "claimed", "consultation_id": 7})
    await until(lambda: received == [{"kind": "claimed", "consultation_id": 7}])


async def test_hub_to_every_peer(bus):
    hub, one, two = bus
    first, second = collect(one, "change"), collect(two, "change")
    hub.send("change", {"kind": "new"})
    await until(lambda: first == second == [{"kind": "new"}])


async def test_sender_never_receives_its_own_message(bus):
    hub, one, two = bus
    heard = {name: collect(b, "t") for name, b in (("hub", hub), ("one", one), ("two", two))}
    one.send("t", {"from": "one"})
    hub.send("t", {"from": "hub"})
    await until(lambda: len(heard["two"]) == 2)
    await settle()
    assert heard["one"] == [{"from": "hub"}]
    assert heard["hub"] == [{"from": "one"}]
    assert sorted(p["from"] for p in heard["two"]) == ["hub", "one"]


async def test_topics_reach_only_their_handlers_and_several_handlers_run(bus):
    hub, one, _ = bus
    a, b, other = collect(hub, "t"), collect(hub, "t"), collect(hub, "other")
    one.send("t", {"n": 1})
    await until(lambda: a == b == [{"n": 1}])
    assert other == []


async def test_order_is_preserved_for_200_messages(bus):
    hub, one, two = bus
    at_hub, at_two = collect(hub, "seq"), collect(two, "seq")
    from_hub = collect(one, "hub-seq")
    for n in range(200):
        one.send("seq", {"n": n})
        hub.send("hub-seq", {"n": n})
    await until(lambda: len(at_hub) == len(at_two) == len(from_hub) == 200)
    expected = [{"n": n} for n in range(200)]
    assert at_hub == at_two == from_hub == expected


async def test_a_failing_handler_does_not_stop_later_messages(bus, caplog):
    hub, one, _ = bus
    seen: list[int] = []

    def fragile(payload: dict[str, Any]) -> None:
        seen.append(payload["n"])
        if payload["n"] == 0:
            raise RuntimeError("boom")

    hub.on("t", fragile)
    one.send("t", {"n": 0})
    one.send("t", {"n": 1})
    await until(lambda: seen == [0, 1])
    assert "handler for 't' failed" in caplog.text
    assert hub.peers == 2


async def test_async_handlers_are_refused(bus):
    hub, _, _ = bus

    async def handler(payload: dict[str, Any]) -> None:
        pass

    with pytest.raises(TypeError):
        hub.on("t", handler)


async def test_peer_lost_resolves_when_the_hub_closes(bus, sock):
    hub, one, two = bus
    assert not one.lost.done()
    await hub.close()
    async with asyncio.timeout(2):
        await one.lost
        await two.lost
    assert one.peers == two.peers == 0
    assert not sock.exists()


async def test_hub_forgets_a_disconnected_peer(bus):
    hub, one, two = bus
    await one.close()
    await until(lambda: hub.peers == 1)
    received = collect(two, "t")
    hub.send("t", {"still": "works"})
    await until(lambda: received == [{"still": "works"}])


async def test_a_peer_that_stops_reading_is_dropped_without_blocking(sock, caplog):
    """A raw connection that never reads: the hub's buffer for it grows, then it is cut off,
    while a peer that keeps reading gets every message."""
    hub = ProcessBus(sock, hub=True, max_buffer=256 * 1024)
    healthy = ProcessBus(sock, hub=False)
    await hub.start()
    _, stuck = await asyncio.open_unix_connection(sock)
    try:
        await healthy.start()
        await until(lambda: hub.peers == 2)
        received = collect(healthy, "big")
        blob = "x" * 10_000
        for n in range(1000):  # ~10 MB, far past the kernel's socket buffer and max_buffer
            hub.send("big", {"n": n, "blob": blob})
            await asyncio.sleep(0)  # a real sender yields between messages, and so peers read
        await until(lambda: len(received) == 1000, timeout=10)
        assert hub.peers == 1
        assert "dropping peer" in caplog.text
    finally:
        stuck.close()
        await healthy.close()
        await hub.close()


async def test_too_long_a_path_is_refused():
    with pytest.raises(ValueError, match="at most 107"):
        ProcessBus(Path("/tmp") / ("d" * 100) / "bus.sock", hub=True)


async def test_peer_without_hub_fails_clearly(sock):
    peer = ProcessBus(sock, hub=False, connect_timeout=0.2)
    with pytest.raises(BusConnectError, match="is the primary teleread process running"):
        await peer.start()


async def test_peer_waits_for_a_hub_that_starts_late(sock):
    peer = ProcessBus(sock, hub=False, connect_timeout=5)
    connecting = asyncio.create_task(peer.start())
    await asyncio.sleep(0.3)
    hub = ProcessBus(sock, hub=True)
    await hub.start()
    await connecting
    await until(lambda: hub.peers == 1)
    assert peer.peers == 1
    await peer.close()
    await hub.close()


async def test_hub_socket_is_private_and_replaces_a_stale_one(sock):
    sock.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays behind, as after a crash
    hub = ProcessBus(sock, hub=True)
    await hub.start()
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    await hub.close()
    assert not sock.exists()


async def test_a_second_hub_on_a_live_socket_is_refused(sock):
    hub = ProcessBus(sock, hub=True)
    await hub.start()
    with pytest.raises(RuntimeError, match="already listening"):
        await ProcessBus(sock, hub=True).start()
    assert sock.exists()
    await hub.close()


async def test_send_without_connection_is_dropped_not_raised(sock, caplog):
    peer = ProcessBus(sock, hub=False)
    peer.send("t", {})
    assert "not connected" in caplog.text


CHILD = textwrap.dedent(
    """
    import asyncio, pathlib, sys
    from service.runtime.process_bus import ProcessBus

    async def main():
        bus = ProcessBus(pathlib.Path(sys.argv[1]), hub=False)
        bus.on("ping", lambda payload: bus.send("pong", {"echo": payload["n"], "pid": 1}))
        await bus.start()
        bus.send("hello", {"from": "child"})
        await asyncio.wait_for(bus.lost, 20)
        await bus.close()

    asyncio.run(main())
    """
)


async def test_delivery_across_a_real_second_process(sock):
    hub = ProcessBus(sock, hub=True)
    hellos, pongs = collect(hub, "hello"), collect(hub, "pong")
    await hub.start()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(sock), cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    try:
        await until(lambda: hellos == [{"from": "child"}], timeout=20)
        hub.send("ping", {"n": 42})
        await until(lambda: pongs == [{"echo": 42, "pid": 1}])
    finally:
        await hub.close()  # the child's bus is lost, so the child exits
        async with asyncio.timeout(10):
            _, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
