"""The failover scenario of issue 22, on whichever topology runs it (tests/test_failover.py).

Readers poll the worklist through the proxy while studies are C-STOREd to both Orthancs; the
leading replica and one Orthanc are killed mid-load; studies keep arriving at the surviving
Orthanc. What the scenario then knows, :class:`Outcome`, is what the test asserts: every study
sent is one consultation, the leadership moved, and the longest stretch of 5xx any reader saw.

A topology (:class:`Topology`) is the same three replicas, two Orthancs, one PostgreSQL and a
proxy, either as child processes on loopback or as the compose ``scale`` profile: the scenario
only sends, kills, asks and counts through it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp
from pydicom.dataset import Dataset

from service.demo.synthetic import StudySpec, make_study

CADDYFILE = Path(__file__).resolve().parent.parent / "compose" / "Caddyfile"
CLINIC_AET = "DONGXIANG_DR"
READERS = 3
READ_PAUSE = 0.05
STUDIES_BEFORE, STUDIES_AFTER = 4, 4


class Topology(Protocol):
    """Three replicas behind a proxy, two Orthancs on one index, as the scenario sees them."""

    proxy_url: str
    replicas: list[str]
    """Names of the replicas, in the order :meth:`leads` and :meth:`kill_replica` take."""

    async def send(self, door: int, study: list[Dataset]) -> bool:
        """C-STORE ``study`` to Orthanc ``door`` (0 or 1) as the clinic; False if refused."""
        ...

    async def leads(self, replica: str) -> bool | None:
        """The replica's /healthz ``leader`` (asked of it directly), None when it does not
        answer."""
        ...

    async def kill_replica(self, replica: str) -> None:
        """SIGKILL, as a host that loses power."""
        ...

    async def kill_orthanc(self, door: int) -> None: ...

    async def consultation_counts(self, uids: list[str]) -> Counter[str]:
        """How many consultations each study instance UID has, in teleread's database."""
        ...


def proxy_block() -> str:
    """compose/Caddyfile's ``reverse_proxy`` directive with its block, verbatim: the loopback
    proxy runs the production options, not a copy that could drift."""
    text = CADDYFILE.read_text(encoding="utf-8")
    start = text.index("\treverse_proxy ")
    opening = text.rindex("{", start, text.index("\n", start))  # the block's, last on the line
    depth = 0
    for end in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start : end + 1]
    raise AssertionError("compose/Caddyfile: reverse_proxy's block is not closed")


def retry_seconds(block: str) -> float:
    """The proxy's ``lb_try_duration``: how long it tries other replicas for one request."""
    match = re.search(r"lb_try_duration\s+(\d+(?:\.\d+)?)(ms|s)\b", block)
    assert match, "compose/Caddyfile sets no lb_try_duration"
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def a_study(number: int) -> list[Dataset]:
    return make_study(StudySpec(f"FAILOVER{number}", "WANG^FANG", "CR", "CHEST", rows=32))


@dataclass
class Reading:
    """One reader's answers: (sent at, answered at, status; 0 when no answer came)."""

    answers: list[tuple[float, float, int]] = field(default_factory=list)

    def longest_5xx(self) -> float:
        """The longest time from a failed answer to the next good one (or the last answer)."""
        longest, since = 0.0, None
        for _sent, answered, status in self.answers:
            failed = status == 0 or status >= 500
            if failed and since is None:
                since = answered
            elif not failed and since is not None:
                longest, since = max(longest, answered - since), None
        if since is not None:
            longest = max(longest, self.answers[-1][1] - since)
        return longest

    def failures(self) -> int:
        return sum(1 for *_, status in self.answers if status == 0 or status >= 500)

    def good_after(self, moment: float) -> int:
        """Good answers to reads sent after ``moment``."""
        return sum(1 for sent, _, status in self.answers if sent > moment and status == 200)


def unverified(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A client session that does not verify TLS: the compose proxy's certificate comes from
    Caddy's internal CA, made at its start (plain HTTP on loopback needs none)."""
    return aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=False))


async def read_worklist(
    proxy_url: str, token: str, stop: asyncio.Event, timeout: float, most: int = 3000
) -> Reading:
    """Poll ``/api/worklist`` through the proxy until ``stop`` (at most ``most`` times)."""
    reading = Reading()
    headers = {"Authorization": f"Bearer {token}"}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with unverified(client_timeout) as session:
        for _ in range(most):
            if stop.is_set():
                break
            sent = time.monotonic()
            try:
                async with session.get(f"{proxy_url}/api/worklist", headers=headers) as answer:
                    await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            reading.answers.append((sent, time.monotonic(), status))
            await asyncio.sleep(READ_PAUSE)
    return reading


async def login(proxy_url: str, username: str, password: str) -> str:
    async with unverified(aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(
            f"{proxy_url}/api/login", json={"username": username, "password": password}
        ) as answer:
            assert answer.status == 200, await answer.text()
            return (await answer.json())["token"]


async def the_leader(topology: Topology, among: list[str], timeout: float) -> str:
    """The one replica of ``among`` whose /healthz says it leads (waited for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = await asyncio.gather(*(topology.leads(r) for r in among))
        leading = [r for r, leads in zip(among, answers, strict=True) if leads]
        if len(leading) == 1:
            return leading[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no single leader among {among} within {timeout} s")


async def until_counted(
    topology: Topology, uids: list[str], at_least: int, timeout: float
) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        counts = await topology.consultation_counts(uids)
        if len(counts) >= at_least or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def send_as_a_modality(topology: Topology, door: int, study: list[Dataset]) -> None:
    """A store the door refused or lost is sent again to the surviving door (door 1), as a
    modality retries, at most three times."""
    for attempt in range(3):
        if await topology.send(door if attempt == 0 else 1, study):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"study {study[0].StudyInstanceUID} was refused three times")


@dataclass
class Outcome:
    uids: list[str]
    counts: Counter[str]
    leader_before: str
    leader_after: str
    readings: list[Reading]
    retry_seconds: float
    killed_at: float
    """When the leader and the Orthanc were killed (``time.monotonic``)."""

    @property
    def longest_5xx(self) -> float:
        return max(r.longest_5xx() for r in self.readings)


async def fail_over(
    topology: Topology, token: str, retry: float, ingest_timeout: float = 25.0
) -> Outcome:
    """The scenario: load, kill the leader and Orthanc 0 mid-load, more load, count."""
    leader = await the_leader(topology, topology.replicas, timeout=15)
    studies = [a_study(n) for n in range(STUDIES_BEFORE + STUDIES_AFTER)]
    uids = [s[0].StudyInstanceUID for s in studies]
    stop = asyncio.Event()
    readers = [
        asyncio.create_task(read_worklist(topology.proxy_url, token, stop, timeout=retry + 10))
        for _ in range(READERS)
    ]
    try:
        for n, study in enumerate(studies[:STUDIES_BEFORE]):
            await send_as_a_modality(topology, n % 2, study)
        await until_counted(topology, uids, at_least=1, timeout=ingest_timeout)
        killed_at = time.monotonic()
        await asyncio.gather(topology.kill_replica(leader), topology.kill_orthanc(0))
        for study in studies[STUDIES_BEFORE:]:
            await send_as_a_modality(topology, 1, study)
        survivors = [r for r in topology.replicas if r != leader]
        leader_after = await the_leader(topology, survivors, timeout=15)
        counts = await until_counted(topology, uids, at_least=len(uids), timeout=ingest_timeout)
        await asyncio.sleep(1.0)  # a few more polls and reads: a repeat would show now
        counts = await topology.consultation_counts(uids)
    finally:
        stop.set()
        readings = await asyncio.gather(*readers)
    return Outcome(uids, counts, leader, leader_after, readings, retry, killed_at)
