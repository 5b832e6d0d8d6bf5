"""The ``[peer_review]`` table of this app's worklist rules (read once at start-up)."""

from __future__ import annotations

from worklists.peer_review import PeerReviewPolicy, parse_peer_review
from worklists.rules import DEFAULT_RULES_PATH, RulesError

from ..settings import Settings, SettingsError


def load_peer_review_policy(settings: Settings) -> PeerReviewPolicy:
    """The share drawn for peer review from TELEREAD_WORKLIST_RULES (or the shipped defaults);
    a table that cannot be used stops start-up with a message naming the key."""
    path = settings.worklist_rules or DEFAULT_RULES_PATH
    try:
        return parse_peer_review(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: cannot read {path}: {exc}") from exc
    except RulesError as exc:
        raise SettingsError(f"TELEREAD_WORKLIST_RULES: {exc}") from exc
