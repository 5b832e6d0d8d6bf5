"""After-commit effects: what a state change sets in motion outside the database.

A domain function that runs inside one write transaction returns, with its answer, an
:class:`Effects` value saying what happened: worklist changes for the live pages, a kick for the
report delivery worker, notices to send. It does none of it itself, because none of it may happen
before the transaction commits: a browser told "signed", a clinic paged or a delivery started
about a change that was then rolled back cannot be taken back. :class:`AfterCommit` applies the
value once the write has returned; a write that raised returned nothing, so nothing is applied.

HTTP handlers, the background loops (escalation, stat fan-out, critical-finding sweep, live
feed of ingest) and the demo all go through the one :class:`AfterCommit` of the app, so an
effect is applied the same way whoever caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import sqlite_utils

from ..storage import Database
from .live import LiveUpdates, WorklistChange
from .notifications import Notice, Notifications

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Effects:
    """What one committed change sets in motion; empty by default, combined with ``+``."""

    changes: tuple[WorklistChange, ...] = ()
    """Live worklist changes, published in this order."""
    notices: tuple[Notice, ...] = ()
    """Notices to send (in-app and webhook), after the changes."""
    deliver: bool = False
    """A report version has deliveries to work: wake the delivery worker now, not at its next
    round."""

    def __add__(self, other: Effects) -> Effects:
        return Effects(
            self.changes + other.changes,
            self.notices + other.notices,
            self.deliver or other.deliver,
        )

    def __bool__(self) -> bool:
        return bool(self.changes or self.notices or self.deliver)

    @classmethod
    def merged(cls, many: Iterable[Effects]) -> Effects:
        total = cls()
        for effects in many:
            total = total + effects
        return total


class HasEffects(Protocol):
    """A domain answer that carries what it set in motion."""

    @property
    def effects(self) -> Effects: ...


class Kickable(Protocol):
    """The report delivery worker, as far as effects are concerned."""

    def kick(self) -> None: ...


@dataclass
class AfterCommit:
    """Applies :class:`Effects` of committed writes: one per web process (``app[EFFECTS]``).

    ``delivery`` is attached once the report feature has started (it starts after the
    notifiers); until then a delivery kick is skipped, and the worker's own rounds find the work.
    """

    live: LiveUpdates
    notifications: Notifications
    delivery: Kickable | None = None

    async def write(
        self,
        database: Database,
        fn: Callable[Concatenate[sqlite_utils.Database, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run ``fn`` in one write transaction, then apply the effects of its answer (an
        :class:`Effects`, or anything with an ``effects`` attribute). If the transaction fails
        the exception propagates and nothing is applied."""
        result = await database.write(fn, *args, **kwargs)
        await self.apply(effects_of(result))
        return result

    async def apply(self, effects: Effects) -> None:
        """Publish the changes, wake delivery, send the notices. Never raises: the change is
        committed already, so a failing effect is logged and the others still happen."""
        for change in effects.changes:
            _safely(self.live.publish, change, what="publish a live change")
        if effects.deliver and self.delivery is not None:
            _safely(self.delivery.kick, what="wake report delivery")
        for notice in effects.notices:
            await _safely_async(self.notifications.send, notice, what="send a notice")


def effects_of(result: Effects | HasEffects) -> Effects:
    """The effects a domain answer carries."""
    return result if isinstance(result, Effects) else result.effects


def _safely(fn: Callable[..., None], *args: object, what: str) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("after commit: could not %s", what)


async def _safely_async(fn: Callable[..., Awaitable[None]], *args: object, what: str) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("after commit: could not %s", what)
