"""`teleread serve` with several web processes on one port: the work is shared, the state is not.

Real subprocesses (the command as `make run` starts it), a real Orthanc, the real SQLite file.
A client learns which process holds a connection from ``/healthz`` sent on it first (one
keep-alive connection per client session), so each claim below is checked against streams held
by both processes, not by luck of the kernel's spreading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import free_port
from .dying_secondary import exit_at_once
from .test_cli import (
    TELEREAD,
    env,
    orthanc_pid,
    read_until,
    serve,
    stop,
    teleread,
    wait_for_worklist,
)
from .test_live_updates import next_change

__all__ = ["env"]  # the fixture, shared with test_cli

# `teleread serve` runs its own managed Orthanc.
pytestmark = pytest.mark.orthanc

PASSWORD = "teleread-demo"


def children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                found.update(int(p) for p in (task / "children").read_text().split())
    return found


def web_children(pid: int) -> set[int]:
    """The primary's secondary web processes: its multiprocessing ``spawn`` children that listen
    on TCP (the file-check worker is a ``spawn`` child too, but serves no port)."""
    listening = _listening_socket_inodes()
    found = set()
    for child in children(pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and _holds_any(child, listening):
                found.add(child)
    return found


def _listening_socket_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                    inodes.add(fields[9])
    return inodes


def _holds_any(pid: int, inodes: set[str]) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def wait_until(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Pinned:
    """One keep-alive connection to the service, and the web process that holds it."""

    def __init__(self, port: str, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self.process = -1

    async def open(self) -> Pinned:
        async with self.session.get(self.base + "/healthz") as response:
            self.process = (await response.json())["web_process"]
        return self

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.session.get(self.base + path, headers=self.headers)

    async def post(self, path: str, body: dict | None = None) -> dict:
        async with self.session.post(self.base + path, headers=self.headers, json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    async def close(self) -> None:
        await self.session.close()


async def pinned_to_each(port: str, token: str, want: int = 2) -> dict[int, Pinned]:
    """A connection held by each of the ``want`` processes (opening more until each has one;
    a process just started may take a few seconds to listen)."""
    found: dict[int, Pinned] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        client = await Pinned(port, token).open()
        if client.process in found:
            await client.close()
            await asyncio.sleep(0.02)
        else:
            found[client.process] = client
        if len(found) == want:
            return found
    for client in found.values():
        await client.close()
    raise AssertionError(f"connections only ever reached processes {sorted(found)}")


async def login(port: str, username: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{port}/api/login",
            json={"username": username, "password": PASSWORD},
        ) as response:
            return (await response.json())["token"]


async def changes_until(stream, wanted: set[tuple[str, int]], timeout: float) -> set:
    seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen and time.monotonic() < deadline:
        change = await next_change(stream, deadline - time.monotonic())
        if change is None:
            break
        seen.add((change["kind"], change["consultation_id"]))
    return seen


def study_viewed_rows(env, username: str, study_uid: str) -> int:
    path = Path(env["TELEREAD_DATA_DIR"]) / "teleread.db"
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'study.viewed'"
            " AND username = ? AND study_instance_uid = ?",
            [username, study_uid],
        ).fetchone()
    return count


async def test_two_processes_share_the_port_and_the_changes_but_run_background_work_once(env):
    env = {**env, "TELEREAD_WEB_PROCESSES": "2"}
    port = env["TELEREAD_PORT"]
    process = serve(env)
    clients: list[Pinned] = []
    streams: dict[int, aiohttp.ClientResponse] = {}
    try:
        banner = await asyncio.to_thread(read_until, process, "Press Ctrl-C")
        assert "(2 web processes)" in banner
        assert (
            len(
                await asyncio.to_thread(
                    wait_until, lambda: web_children(process.pid), 30, "the secondary"
                )
            )
            == 1
        )
        token = await login(port, "dr.li")
        # The demo's six studies were sent once and ingested once: one follower, one seeding.
        items = await asyncio.to_thread(wait_for_worklist, port, token, 6)
        assert len(items) == 6
        by_process = await pinned_to_each(port, token)
        clients.extend(by_process.values())
        health = {}
        for number, client in by_process.items():
            async with await client.get("/healthz") as response:
                health[number] = await response.json()
        assert health[0]["ingest_caught_up"] is True  # the primary follows Orthanc
        assert health[1]["ingest_caught_up"] is None  # the secondary does not

        # A stream held by each process; a claim and a release made through each process.
        for number in (0, 1):
            listener = await pinned_to_each(port, token)
            clients.extend(listener.values())
            stream = await listener[number].get("/api/worklist/events")
            assert stream.status == 200
            streams[number] = stream
        open_items = [i for i in items if i["status"] == "ready"]
        assert len(open_items) >= 2
        wanted = set()
        for number, item in zip((0, 1), open_items, strict=False):
            await by_process[number].post(f"/api/consultations/{item['id']}/claim")
            await by_process[number].post(f"/api/consultations/{item['id']}/release")
            wanted |= {("claimed", item["id"]), ("released", item["id"])}
        for number, stream in streams.items():
            seen = await changes_until(stream, wanted, 10)
            assert wanted <= seen, f"stream in process {number} missed {wanted - seen}"

        # Frames of one study through both processes: rendered by each, audited once.
        manager = await login(port, "sun")
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"http://127.0.0.1:{port}/api/consultations/{open_items[0]['id']}/viewer",
                headers={"Authorization": f"Bearer {manager}"},
            ) as response:
                manifest = await response.json()
        study = manifest["study"]["uid"]
        rendered = [i["rendered"] for s in manifest["series"] for i in s["instances"]]
        assert study_viewed_rows(env, "dr.li", study) == 0
        for client in by_process.values():
            for url in rendered[:3]:
                async with await client.get(url + "?window=40,400") as response:
                    assert response.status == 200
                    assert (await response.read())[:2] == b"\xff\xd8"
        assert study_viewed_rows(env, "dr.li", study) == 1
        secondary = web_children(process.pid).pop()
        orthanc = orthanc_pid(env)
    finally:
        for stream in streams.values():
            stream.close()
        for client in clients:
            await client.close()
        code = await asyncio.to_thread(stop, process)
    assert code == 0
    assert not alive(secondary), "the secondary outlived the service"
    assert not alive(orthanc), "Orthanc outlived the service"


def serve_without_demo(env) -> subprocess.Popen:
    """``teleread serve`` with no demo studies being sent, ingested and signed meanwhile (CPU
    a test of the processes alone has no use for)."""
    return subprocess.Popen(
        [TELEREAD, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


async def test_a_dead_secondary_is_replaced_and_a_dead_primary_takes_the_secondaries(env):
    env = {**env, "TELEREAD_WEB_PROCESSES": "2"}
    process = serve_without_demo(env)
    orthanc = None
    try:
        await asyncio.to_thread(read_until, process, "Press Ctrl-C")
        orthanc = orthanc_pid(env)
        [first] = await asyncio.to_thread(
            wait_until, lambda: web_children(process.pid), 30, "the secondary"
        )
        os.kill(first, signal.SIGKILL)
        [second] = await asyncio.to_thread(
            wait_until,
            lambda: {p for p in web_children(process.pid) if p != first},
            30,
            "a new secondary",
        )
        answering = await pinned_to_each(env["TELEREAD_PORT"], "")  # both answer again
        for client in answering.values():
            await client.close()
        os.kill(process.pid, signal.SIGKILL)  # no clean-up at all: the bus just ends
        await asyncio.to_thread(
            wait_until, lambda: not alive(second), 20, "the secondary to stop by itself"
        )
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
        if orthanc is not None and alive(orthanc):  # the killed primary could not stop it
            os.kill(orthanc, signal.SIGKILL)


async def test_a_secondary_that_keeps_dying_is_restarted_less_and_less_often(
    tmp_path, caplog, monkeypatch
):
    """Each quick death doubles the wait before the next start (1 s, 2 s, 4 s...). Counted by the
    delays the watcher chose, not by starts in a fixed window: on a busy machine one start of a
    process (importing the whole app) can itself take several seconds. The dying target lives
    in a module of its own: spawned from this one, each start imported the app and pytest
    (~2.5 CPU-seconds, 12 s at a load of 10)."""
    from service.runtime import web_processes
    from service.runtime.web_processes import ProcessRole, Secondaries
    from service.settings import Settings

    # A death within a minute counts as quick here: the point is the doubling, not the threshold.
    monkeypatch.setattr(web_processes, "QUICK_DEATH_SECONDS", 60.0)
    caplog.set_level(logging.WARNING, logger="service.runtime.web_processes")
    settings = Settings(data_dir=tmp_path, orthanc_url="http://127.0.0.1:9")
    secondaries = Secondaries(settings, ProcessRole(0, 2, None), target=exit_at_once)

    def delays() -> list[int]:
        return [int(d) for d in re.findall(r"starting it again in (\d+) s", caplog.text)]

    await secondaries.start()
    watcher = asyncio.create_task(secondaries.watch())
    for _ in range(600):  # at most 120 s
        if len(delays()) >= 3:
            break
        await asyncio.sleep(0.2)
    await secondaries.stop()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    starts = (tmp_path / "starts").read_text().split()
    assert set(starts) == {"1"} and len(starts) >= 3, starts
    # Without the growing delay every restart would wait the same second.
    assert delays()[:3] == [1, 2, 4], caplog.text


def test_serve_refuses_a_port_another_program_listens_on(env):
    """SO_REUSEPORT must not let a second service quietly share a port in use."""
    env = {**env, "TELEREAD_WEB_PROCESSES": "2"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["TELEREAD_PORT"])))
        taken.listen()
        result = teleread(env, "serve")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{env['TELEREAD_PORT']}" in result.stderr


def serve_in_its_own_group(env, errors) -> subprocess.Popen:
    """``teleread serve`` as a shell runs a foreground job: a process group of its own."""
    return subprocess.Popen(
        [TELEREAD, "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        start_new_session=True,
    )


def ended_and_logged(process: subprocess.Popen, errors) -> str:
    """Make sure the service is gone, then what every process of it wrote to stderr."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)
    process.stdout.close()
    errors.seek(0)
    log = errors.read()
    errors.close()
    return log


async def test_ctrl_c_at_a_terminal_stops_every_process_cleanly(env, tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the primary alone acts on it, and
    nothing prints a traceback; a second service on the same data directory is refused."""
    env = {**env, "TELEREAD_WEB_PROCESSES": "2"}
    errors = (tmp_path / "stderr.txt").open("w+")
    process = serve_in_its_own_group(env, errors)
    try:
        await asyncio.to_thread(read_until, process, "Press Ctrl-C", 60, errors)
        [secondary] = await asyncio.to_thread(
            wait_until, lambda: web_children(process.pid), 30, "the secondary"
        )
        answering = await pinned_to_each(env["TELEREAD_PORT"], "")
        for client in answering.values():
            await client.close()
        second = await asyncio.to_thread(
            teleread, {**env, "TELEREAD_PORT": str(free_port())}, "serve"
        )
        assert second.returncode == 1
        assert "already serving the data directory" in second.stderr
        os.killpg(process.pid, signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 30) == 0
        await asyncio.to_thread(
            wait_until, lambda: not alive(secondary), 20, "the secondary to stop"
        )
    finally:
        log = ended_and_logged(process, errors)
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "starting it again" not in log, log  # stopping is not dying: nothing restarted


async def test_ctrl_c_while_the_secondary_is_still_starting_leaves_no_traceback(env, tmp_path):
    """The secondary is still importing when the group gets SIGINT: it must not die of it
    with a KeyboardInterrupt traceback; the primary stops it."""
    env = {**env, "TELEREAD_WEB_PROCESSES": "2"}
    errors = (tmp_path / "stderr.txt").open("w+")
    process = serve_in_its_own_group(env, errors)
    try:
        await asyncio.to_thread(read_until, process, "Press Ctrl-C", 60, errors)
        os.killpg(process.pid, signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        log = ended_and_logged(process, errors)
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
