"""The ``[peer_review]`` table of this app's worklist rules (read once at start-up)."""

from __future__ import annotations

from worklists.peer_review import PeerReviewPolicy, parse_peer_review

from ..settings import Settings, read_worklist_rules


def load_peer_review_policy(settings: Settings) -> PeerReviewPolicy:
    """The share drawn for peer review from TELEREAD_WORKLIST_RULES (or the shipped defaults);
    a table that cannot be used stops start-up with a message naming the key."""
    return read_worklist_rules(settings, parse_peer_review)
