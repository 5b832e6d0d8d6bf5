"""The review rule (two-level sign-off) the app runs with: the ``[review]`` table of the worklist
rules loaded at start-up (``SLA`` holds the whole :class:`WorklistRules`)."""

from __future__ import annotations

from aiohttp import web

from worklists.review import ReviewPolicy
from worklists.rules import WorklistRules

from .keys import SLA


def review_policy(app: web.Application) -> ReviewPolicy:
    rules = app[SLA]
    return rules.review if isinstance(rules, WorklistRules) else ReviewPolicy()
