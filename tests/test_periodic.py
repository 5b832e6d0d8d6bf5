"""The periodic-task helper (service/runtime/periodic.py): rounds every interval, a failing
round logged and survived with a growing wait, woken early on demand, stopped by cancelling."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.runtime.periodic import repeat, running


class Rounds:
    """A round that counts itself and fails when told to."""

    def __init__(self, failing: int = 0) -> None:
        self.count = 0
        self.failing = failing
        self.happened = asyncio.Event()

    async def __call__(self) -> None:
        self.count += 1
        self.happened.set()
        if self.count <= self.failing:
            raise RuntimeError(f"round {self.count} broke")


async def wait_for_count(rounds: Rounds, count: int, timeout: float = 2.0) -> None:
    async def reached() -> None:
        while rounds.count < count:
            rounds.happened.clear()
            await rounds.happened.wait()

    await asyncio.wait_for(reached(), timeout)


async def test_it_runs_a_round_every_interval():
    rounds = Rounds()
    async with running("test rounds", 0.01, rounds):
        await wait_for_count(rounds, 3)
    assert rounds.count >= 3


async def test_a_failing_round_is_logged_and_the_loop_goes_on(caplog):
    """Two rounds raise: each is logged with the task's name, and later rounds still run."""
    rounds = Rounds(failing=2)
    with caplog.at_level(logging.ERROR, logger="service.runtime.periodic"):
        async with running("test rounds", 0.01, rounds, max_backoff=0.05):
            await wait_for_count(rounds, 4)
    failures = [r for r in caplog.records if r.name == "service.runtime.periodic"]
    assert len(failures) == 2
    assert all("test rounds failed" in r.getMessage() and r.exc_info for r in failures)


async def test_the_wait_grows_after_failures_and_is_capped(monkeypatch):
    """Waits after failures double from the interval up to ``max_backoff``; a good round
    brings back the interval."""
    waits: list[float] = []

    async def pause(seconds: float, wake: asyncio.Event | None) -> None:
        waits.append(seconds)
        if len(waits) == 6:
            raise asyncio.CancelledError

    monkeypatch.setattr("service.runtime.periodic._pause", pause)
    rounds = Rounds(failing=5)
    with pytest.raises(asyncio.CancelledError):
        await repeat("test rounds", 1.0, rounds, max_backoff=5.0)
    assert waits == [2.0, 4.0, 5.0, 5.0, 5.0, 1.0]


async def test_a_wake_starts_the_next_round_at_once():
    """Report delivery is woken by a signature instead of waiting out its interval."""
    rounds = Rounds()
    wake = asyncio.Event()
    async with running("test rounds", 3600, rounds, wake=wake):
        await wait_for_count(rounds, 1)
        wake.set()
        await wait_for_count(rounds, 2, timeout=1.0)


async def test_leaving_the_block_cancels_and_awaits_the_task():
    """On app cleanup the task is stopped and finished before the resources it uses close."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow_round() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with running("test rounds", 0.01, slow_round) as task:
        await started.wait()
    assert task.done() and task.cancelled()
    assert cancelled.is_set()


async def test_a_round_that_swallows_a_cancellation_still_stops():
    """A round awaiting something that swallows the cancellation (Python 3.11's wait_for can,
    when its call ends at that moment) goes on running; stopping cancels it again until it
    ends, instead of waiting for ever."""
    swallowed = []

    async def stubborn_round() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if not swallowed:
                swallowed.append(True)  # once, as the library would
                return
            raise

    loop = asyncio.get_running_loop()
    async with running("stubborn", 0.01, stubborn_round) as task:
        await asyncio.sleep(0.05)
        stopping = loop.time()
    assert loop.time() - stopping < 2.5  # one more cancellation a second later, not 30 s
    assert swallowed == [True]
    assert task.done()
