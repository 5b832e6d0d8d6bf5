"""Peer review of issued reports, RADPEER-style (issue 20 item 1): the draw, the reviewers'
queue and its claims, scores, and the discrepancies they open."""
