"""Finding the likely matches of a local identity for the review list (never linking them).

Two identities of different persons whose birth date and sex agree and whose names agree
(ideographically or phonetically, :mod:`service.patients.names`) may be one person registered at
two facilities, or twice at one: a person must decide, so the pair is proposed, not linked. A
pair an administrator separated is not proposed again, nor is a pair already on the list in any
status. Runs inside the caller's write transaction.
"""

from __future__ import annotations

import sqlite_utils

from ..storage import patient_candidates as store
from .names import name_agreement

SCORES = {"ideographic_name": 0.9, "phonetic_name": 0.7}
"""How much a name agreement says (with birth date and sex agreeing): the same Han characters
more than the same sound, which many names share."""


def propose_matches(db: sqlite_utils.Database, identity_id: int, name: str, now: str) -> list[int]:
    """Propose every identity that matches this one; the new candidates' ids."""
    if not name.strip():
        return []
    proposed = []
    for other in store.same_birth_and_sex(db, identity_id):
        agreement = name_agreement(name, other["name"] or "")
        if agreement is None or store.separated(db, identity_id, other["id"]):
            continue
        reasons = ["birth_date", "sex", agreement]
        found = store.propose(db, identity_id, other["id"], SCORES[agreement], reasons, now)
        if found is not None:
            proposed.append(found)
    return proposed
