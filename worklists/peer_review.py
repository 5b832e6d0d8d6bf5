"""Peer review of issued reports, RADPEER-style (issue 20 item 1): which reports are drawn, who
may review them, what a score means.

A share of issued reports (``[peer_review]`` of the worklist TOML, default 5 %, per queue
overridable) is drawn for a blind second look by another specialist. The draw is an HMAC of the
version id under a per-install secret: the same version always gets the same answer (a retry or
a second process never draws twice), nobody can tell in advance which report will be drawn, and
over many signatures the drawn share approaches the configured one. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .rules import RulesError, top_table

DEFAULT_SHARE_PERCENT = 5.0
_KEYS = {"share_percent", "queues"}


@dataclass(frozen=True)
class PeerReviewPolicy:
    """The share of issued reports drawn for peer review, overall and per queue."""

    share_percent: float = DEFAULT_SHARE_PERCENT
    queues: dict[str, float] = field(default_factory=dict)

    def share_for(self, queue: str) -> float:
        """The share (0–1) of ``queue``'s issued reports that are drawn."""
        return self.queues.get(queue.strip().lower(), self.share_percent) / 100.0


def drawn(secret: bytes, version_id: int, share: float) -> bool:
    """Whether the issued version ``version_id`` is drawn at ``share`` (0–1): the HMAC-SHA256
    of its id under ``secret``, read as a number in [0, 1), falls below the share."""
    if share <= 0:
        return False
    digest = hmac.new(secret, str(version_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def parse_peer_review(text: str, source: str = "rules") -> PeerReviewPolicy:
    """The ``[peer_review]`` table of a rules document (defaults where absent)::

        [peer_review]
        share_percent = 5
        queues = { neuro = 10, chest = 2 }

    A :class:`~worklists.rules.RulesError` naming the key when a value cannot be used."""
    table = top_table(text, "peer_review", source, _KEYS)
    where = f"{source} [peer_review]"
    share = _percent(table.get("share_percent", DEFAULT_SHARE_PERCENT), "share_percent", where)
    queues = table.get("queues", {})
    if not isinstance(queues, dict):
        raise RulesError(f"{where}: queues must be a table of queue = percentage")
    per_queue = {}
    for name, value in queues.items():
        if not name.strip():
            raise RulesError(f"{where}: a queue name must not be empty")
        per_queue[name.strip().lower()] = _percent(value, f"queues.{name}", where)
    return PeerReviewPolicy(share, per_queue)


def _percent(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise RulesError(f"{where}: {key} must be a percentage from 0 to 100, got {value!r}")
    return float(value)


class Significance(StrEnum):
    """RADPEER's a/b: whether the discrepancy is likely to matter to the patient."""

    UNLIKELY = "a"
    LIKELY = "b"


class ScoreError(ValueError):
    """A RADPEER score that cannot be recorded; ``code`` for the JSON answer."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class RadpeerScore:
    """1: agree. 2: a discrepancy not ordinarily expected to be made; 3: should be made most of
    the time; 4: should be made almost every time. 2–4 carry a (unlikely) or b (likely
    clinically significant) and a comment."""

    level: int
    significance: Significance | None = None
    comment: str = ""

    @property
    def agrees(self) -> bool:
        return self.level == 1

    @property
    def opens_discrepancy(self) -> bool:
        """Scores 3–4 and any "b" open a discrepancy the first reader answers."""
        return self.level >= 3 or self.significance is Significance.LIKELY

    @property
    def clinically_significant(self) -> bool:
        return self.significance is Significance.LIKELY

    @property
    def code(self) -> str:
        return f"{self.level}{self.significance.value if self.significance else ''}"


def radpeer_score(level: int, significance: str | None, comment: str) -> RadpeerScore:
    """A validated score: 1 without a/b; 2–4 with a/b and a comment."""
    comment = comment.strip()
    if level not in (1, 2, 3, 4):
        raise ScoreError("invalid_score", "the RADPEER score is 1, 2, 3 or 4")
    if level == 1:
        if significance:
            raise ScoreError("invalid_score", "score 1 (agree) takes no a/b")
        return RadpeerScore(1, None, comment)
    if significance not in ("a", "b"):
        raise ScoreError(
            "significance_required", "scores 2–4 need a (unlikely) or b (likely significant)"
        )
    if not comment:
        raise ScoreError("comment_required", "scores 2–4 need a comment saying what was missed")
    return RadpeerScore(level, Significance(significance), comment)


class PeerRefusal(StrEnum):
    """Why a user may not review an issued report."""

    OWN_REPORT = "own_report"
    """They signed it (or a version of it)."""
    CO_SIGNED = "co_signed"
    """They reviewed and co-signed it as 审核医师."""


def peer_refusal(user_id: int, signers: set[int], co_signers: set[int]) -> PeerRefusal | None:
    """None when ``user_id`` may review a report signed by ``signers`` and co-signed by
    ``co_signers``; else the reason."""
    if user_id in signers:
        return PeerRefusal.OWN_REPORT
    if user_id in co_signers:
        return PeerRefusal.CO_SIGNED
    return None


def agreement(scores: list[int]) -> float | None:
    """The share (0–1) of scores that agree (level 1); None when nothing was scored."""
    if not scores:
        return None
    return sum(1 for s in scores if s == 1) / len(scores)
