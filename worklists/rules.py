"""Worklist rules from one TOML document: SLA targets and rules, routing queues, review.

The format is documented in docs/worklists.md; the shipped defaults are in
``worklists/default_rules.toml``. Parsing takes text (the caller reads the file), and every
error names the offending table or rule so an operator can fix the file from the message.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .priorities import Priority
from .repeat_exams import RepeatWindowError, RepeatWindows, parse_repeat_exams
from .review import Grade, ReviewPolicy
from .routing import GENERAL_QUEUE, QueueRule, RoutingPolicy
from .sla import DEFAULT_TARGETS, SlaPolicy, SlaRule

_TOP_KEYS = {"sla", "routing", "review", "recognition", "peer_review", "repeat_exams"}
_REVIEW_KEYS = {"grades", "queues", "priorities", "reviewer_min_grade", "preliminary_priorities"}
_SLA_KEYS = {"targets", "rules"}
_SLA_RULE_KEYS = {"name", "priority", "facility_kind", "modality", "body_part", "minutes"}
_ROUTING_KEYS = {"default_queue", "queues"}
_QUEUE_KEYS = {"name", "modality", "body_part", "max_age_years"}
FACILITY_KINDS = ("township", "county", "regional")

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.toml")
"""The shipped rules (read by the service at start-up unless TELEREAD_WORKLIST_RULES is set)."""


class RulesError(ValueError):
    """The rules document cannot be used; the message says where and why."""


@dataclass(frozen=True)
class WorklistRules(SlaPolicy):
    """A loaded rules document: the SLA policy, with the routing policy that came with it.

    It *is* an :class:`SlaPolicy`, so it goes wherever one is expected; intake also reads
    ``routing`` from it to put each consultation on its queue.
    """

    routing: RoutingPolicy = field(default_factory=RoutingPolicy)
    review: ReviewPolicy = field(default_factory=ReviewPolicy)
    repeat_exams: RepeatWindows = field(default_factory=RepeatWindows)

    @property
    def sla(self) -> SlaPolicy:
        return SlaPolicy(self.targets, self.rules)


def parse_rules(text: str, source: str = "rules") -> WorklistRules:
    """Parse and validate a TOML rules document."""
    document = _document(text, source)
    _no_unknown_keys(document, _TOP_KEYS, source)
    sla = _table(document, "sla", source)
    routing = _table(document, "routing", source)
    _no_unknown_keys(sla, _SLA_KEYS, f"{source} [sla]")
    _no_unknown_keys(routing, _ROUTING_KEYS, f"{source} [routing]")
    targets = _targets(_table(sla, "targets", f"{source} [sla]"), f"{source} [sla.targets]")
    sla_rules = tuple(
        _sla_rule(rule, f"{source} [[sla.rules]] #{i}")
        for i, rule in enumerate(_array(sla, "rules", f"{source} [sla]"), start=1)
    )
    queues = tuple(
        _queue_rule(rule, f"{source} [[routing.queues]] #{i}")
        for i, rule in enumerate(_array(routing, "queues", f"{source} [routing]"), start=1)
    )
    default_queue = routing.get("default_queue", GENERAL_QUEUE)
    if not isinstance(default_queue, str) or not default_queue.strip():
        raise RulesError(f"{source} [routing]: default_queue must be a non-empty string")
    return WorklistRules(
        targets=targets,
        rules=sla_rules,
        routing=RoutingPolicy(queues, default_queue.strip().lower()),
        review=_review(_table(document, "review", source), f"{source} [review]"),
        repeat_exams=_repeat_exams(document, source),
    )


def _repeat_exams(document: dict[str, Any], source: str) -> RepeatWindows:
    """The ``[repeat_exams]`` windows (worklists/repeat_exams.py), errors as RulesError."""
    try:
        return parse_repeat_exams(document.get("repeat_exams"), f"{source} [repeat_exams]")
    except RepeatWindowError as exc:
        raise RulesError(str(exc)) from exc


def _review(table: dict[str, Any], where: str) -> ReviewPolicy:
    """The ``[review]`` table; an omitted key keeps the default (residents reviewed)."""
    _no_unknown_keys(table, _REVIEW_KEYS, where)
    defaults = ReviewPolicy()
    grades = defaults.grades
    if "grades" in table:
        grades = frozenset(_grade(g, where) for g in _lower(table, "grades", where))
    queues = _lower(table, "queues", where)
    priorities = frozenset(_priority(p, where) for p in _lower(table, "priorities", where))
    minimum = defaults.reviewer_min_grade
    if "reviewer_min_grade" in table:
        value = table["reviewer_min_grade"]
        if not isinstance(value, str):
            raise RulesError(f"{where}: reviewer_min_grade must be a string, got {value!r}")
        minimum = _grade(value.strip().lower(), where)
    preliminary = defaults.preliminary_priorities
    if "preliminary_priorities" in table:
        preliminary = frozenset(
            _priority(p, where) for p in _lower(table, "preliminary_priorities", where)
        )
    return ReviewPolicy(grades, queues, priorities, minimum, preliminary)


def _lower(table: dict[str, Any], key: str, where: str) -> frozenset[str]:
    """A list of strings (a single string allowed), lower-cased; omitted means none."""
    return frozenset(v.lower() for v in _values(table, key, where))


def _grade(value: str, where: str) -> Grade:
    try:
        return Grade(value)
    except ValueError:
        allowed = ", ".join(g.value for g in Grade)
        raise RulesError(f"{where}: unknown grade {value!r} (use {allowed})") from None


def _document(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: not valid TOML: {exc}") from exc


def top_table(text: str, key: str, source: str, allowed: set[str]) -> dict[str, Any]:
    """One top-level table of a rules document (empty when absent) with its keys checked, for
    the tables parsed on their own (``[recognition]``, ``[peer_review]``)."""
    table = _table(_document(text, source), key, source)
    _no_unknown_keys(table, allowed, f"{source} [{key}]")
    return table


def _no_unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RulesError(
            f"{where}: unknown key {', '.join(map(repr, unknown))}"
            f" (allowed: {', '.join(sorted(allowed))})"
        )


def _table(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise RulesError(f"{where}: {key} must be a table")
    return value


def _array(parent: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = parent.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RulesError(f"{where}: {key} must be an array of tables ([[...]])")
    return value


def _priority(value: Any, where: str) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        allowed = ", ".join(p.value for p in Priority)
        raise RulesError(f"{where}: unknown priority {value!r} (use {allowed})") from None


def _minutes(value: Any, where: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulesError(f"{where}: minutes must be a positive whole number, got {value!r}")
    return timedelta(minutes=value)


def _targets(table: dict[str, Any], where: str) -> dict[Priority, timedelta]:
    targets = dict(DEFAULT_TARGETS)
    for key, minutes in table.items():
        targets[_priority(key, where)] = _minutes(minutes, f"{where} {key}")
    return targets


def _values(rule: dict[str, Any], key: str, where: str) -> frozenset[str]:
    """A string or a list of strings, upper-cased; omitted means "anything" (empty set)."""
    value = rule.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RulesError(f"{where}: {key} must be a string or a list of non-empty strings")
    return frozenset(v.strip().upper() for v in value)


def _name(rule: dict[str, Any], where: str) -> str:
    name = rule.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{where}: every rule needs a name")
    return name.strip()


def _sla_rule(rule: dict[str, Any], where: str) -> SlaRule:
    name = _name(rule, where)
    where = f"{where} ({name!r})"
    _no_unknown_keys(rule, _SLA_RULE_KEYS, where)
    if "minutes" not in rule:
        raise RulesError(f"{where}: minutes is required")
    priorities = _values(rule, "priority", where)
    for value in priorities:
        _priority(value.lower(), where)
    kinds = _values(rule, "facility_kind", where)
    for kind in kinds:
        if kind.lower() not in FACILITY_KINDS:
            raise RulesError(
                f"{where}: unknown facility_kind {kind.lower()!r} (use {', '.join(FACILITY_KINDS)})"
            )
    return SlaRule(
        name=name,
        target=_minutes(rule["minutes"], where),
        priorities=priorities,
        facility_kinds=kinds,
        modalities=_values(rule, "modality", where),
        body_parts=_values(rule, "body_part", where),
    )


def _queue_rule(rule: dict[str, Any], where: str) -> QueueRule:
    name = _name(rule, where)
    where = f"{where} ({name!r})"
    _no_unknown_keys(rule, _QUEUE_KEYS, where)
    max_age = rule.get("max_age_years")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
    ):
        raise RulesError(f"{where}: max_age_years must be a whole number >= 0, got {max_age!r}")
    return QueueRule(
        name=name.lower(),
        modalities=_values(rule, "modality", where),
        body_parts=_values(rule, "body_part", where),
        max_age_years=max_age,
    )
