"""Login benchmark: N readers logging in at once against ``teleread serve`` (issue 14 item 9).

Run from the repository root::

    .venv/bin/python bench/logins.py [--users 50] [--rounds 3] [--web-processes 0]

1. Creates a data directory in a temporary directory, a regional facility and ``--users``
   specialists (one argon2 hash computed here with the service's parameters, shared by all,
   written straight into SQLite: the accounts are set-up, not what is measured).
2. Starts the real command, ``teleread serve`` (managed Orthanc, ``--web-processes`` HTTP
   processes; 0 = one per core, the default a deployment gets), and waits for its banner.
3. Each round: every user sends ``POST /api/login`` at the same moment, each on a connection of
   its own (as 50 browsers would); the time from the common start to each 200 is recorded.
   Before the rounds, a few logins one after the other give the cost of one login alone.

Prints p50, p95 and max per round and over all rounds, the CPU time the service (all its
processes) spent per login, the machine's load average and core count (the machine is shared:
read the latencies with its load; the CPU per login does not depend on it much). The issue's
target is p95 <= 2 s for 50 concurrent logins; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher  # noqa: E402

from service.auth.passwords import hash_password, parameters  # noqa: E402
from service.storage import Database  # noqa: E402
from service.storage import facilities as facility_store  # noqa: E402
from service.storage import users as user_store  # noqa: E402

PASSWORD = "bench-password-not-secret"
TARGET_P95 = 2.0  # seconds, 50 concurrent logins


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def seed(data_dir: Path, users: int, old_hashes: bool) -> list[str]:
    database = Database(data_dir / "teleread.db")
    try:
        facility = database.write_sync(
            facility_store.add_facility,
            name="Centre",
            kind="regional",
            aet="BENCH_CENTRE",
            timezone="Asia/Shanghai",
        )
        # argon2-cffi's default (m=64 MiB t=3 p=4) is what accounts made before issue 14 hold.
        password_hash = PasswordHasher().hash(PASSWORD) if old_hashes else hash_password(PASSWORD)
        names = [f"reader{i:02d}" for i in range(users)]
        for name in names:
            database.write_sync(
                user_store.add_user,
                username=name,
                password_hash=password_hash,
                role="specialist",
                facility_id=facility,
            )
    finally:
        database.close()
    return names


def start_service(data_dir: Path, port: int, web_processes: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "TELEREAD_DATA_DIR": str(data_dir),
        "TELEREAD_PORT": str(port),
        "TELEREAD_ORTHANC_HTTP_PORT": str(free_port()),
        "TELEREAD_ORTHANC_DICOM_PORT": str(free_port()),
        "TELEREAD_WEB_PROCESSES": str(web_processes),
    }
    teleread = str(Path(sys.executable).with_name("teleread"))
    process = subprocess.Popen(
        [teleread, "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(data_dir / "serve.log").open("w"),
        text=True,
    )
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "Press Ctrl-C" in line:
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"teleread serve did not start; see {data_dir / 'serve.log'}")


async def login(url: str, username: str, start: float) -> float:
    """Seconds from ``start`` until this user's login answered 200 (own connection)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url + "/api/login", json={"username": username, "password": PASSWORD}
        ) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"login of {username} answered {response.status}")
    return time.perf_counter() - start


async def wait_until_serving(url: str, processes: int) -> None:
    """Every web process answers (the secondaries start a moment after the banner)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while time.monotonic() < deadline:
            async with session.get(url + "/healthz") as response:
                body = await response.json()
            seen.add(body["web_process"])
            if len(seen) >= body["web_processes"]:
                return
            await asyncio.sleep(0.05)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return total


async def measure(url: str, names: list[str], rounds: int, pid: int) -> list[list[float]]:
    single = []
    for name in names[:5]:
        single.append(await login(url, name, time.perf_counter()))
    print(f"one login alone: median {sorted(single)[2] * 1000:.0f} ms (5 in a row)")
    results = []
    for number in range(1, rounds + 1):
        await asyncio.sleep(1.0)
        cpu = tree_cpu_seconds(pid)
        start = time.perf_counter()
        times = await asyncio.gather(*(login(url, name, start) for name in names))
        used = (tree_cpu_seconds(pid) - cpu) / len(times)
        results.append(times)
        print(
            f"round {number}: {len(times)} concurrent logins  p50 {percentile(times, 0.5):.2f} s"
            f"  p95 {percentile(times, 0.95):.2f} s  max {max(times):.2f} s"
            f"  service CPU {used * 1000:.0f} ms/login  (load average {os.getloadavg()[0]:.2f})"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--web-processes", type=int, default=0, help="TELEREAD_WEB_PROCESSES (0: one per core)"
    )
    parser.add_argument(
        "--old-hashes",
        action="store_true",
        help="seed hashes with argon2-cffi's default parameters (accounts from before issue 14;"
        " each is verified once with them, then rehashed at that login)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="teleread-bench-logins-"))
    data_dir = root / "var"
    data_dir.mkdir()
    print(
        f"{platform.node()}: {len(os.sched_getaffinity(0))} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; new hashes: {parameters()}"
        + ("; accounts seeded with m=64 MiB t=3 p=4 hashes" if args.old_hashes else "")
    )
    process = None
    try:
        names = seed(data_dir, args.users, args.old_hashes)
        port = free_port()
        process = start_service(data_dir, port, args.web_processes)
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_until_serving(url, args.web_processes))
        results = asyncio.run(measure(url, names, args.rounds, process.pid))
        every = [t for times in results for t in times]
        p95 = percentile(every, 0.95)
        print(
            f"all rounds: {len(every)} logins  p50 {percentile(every, 0.5):.2f} s  p95 {p95:.2f} s"
            f"  max {max(every):.2f} s; target p95 <= {TARGET_P95:.1f} s: "
            f"{'met' if p95 <= TARGET_P95 else 'NOT met'}"
        )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
