"""SLA rules and the TOML rules document: targets, first-match precedence, validation errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worklists.priorities import Priority
from worklists.rules import DEFAULT_RULES_PATH, RulesError, WorklistRules, parse_rules
from worklists.sla import SlaPolicy, SlaRule

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> WorklistRules:
    return parse_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8"), "default_rules.toml")


class TestShippedSla:
    def test_stat_head_ct_from_a_county_hospital_is_due_in_20_minutes(self, shipped):
        """The stroke protocol tightens stat head CT/CTA from county hospitals to 20 min."""
        due = shipped.due_at(
            Priority.STAT, None, T0, facility_kind="county", modality="CT", body_part="HEAD"
        )
        assert due == T0 + timedelta(minutes=20)

    def test_the_stroke_rule_is_recorded_by_name(self, shipped):
        """The rule that applied can be named in the consultation's events."""
        rule = shipped.matching_rule(
            Priority.STAT, facility_kind="county", modality="CT", body_part="BRAIN"
        )
        assert rule is not None and rule.name == "stroke protocol"

    def test_stat_head_ct_from_a_township_keeps_30_minutes(self, shipped):
        """The stroke rule is for county hospitals; a township's stat head CT is due in 30."""
        due = shipped.due_at(
            Priority.STAT, None, T0, facility_kind="township", modality="CT", body_part="HEAD"
        )
        assert due == T0 + timedelta(minutes=30)

    def test_urgent_head_ct_from_a_county_hospital_is_due_in_2_hours(self, shipped):
        """Only stat head CT is the stroke protocol; urgent keeps its 2 h."""
        due = shipped.due_at(
            Priority.URGENT, None, T0, facility_kind="county", modality="CT", body_part="HEAD"
        )
        assert due == T0 + timedelta(hours=2)

    def test_stat_chest_ct_from_a_county_hospital_keeps_30_minutes(self, shipped):
        """The stroke rule is for the head, not any stat CT."""
        assert shipped.target(
            Priority.STAT, facility_kind="county", modality="CT", body_part="CHEST"
        ) == (timedelta(minutes=30), "default")

    def test_body_part_matches_case_insensitively(self, shipped):
        """Devices send 'Head' or 'head ' as often as 'HEAD'."""
        due = shipped.due_at(
            Priority.STAT, None, T0, facility_kind="county", modality="ct", body_part=" Head"
        )
        assert due == T0 + timedelta(minutes=20)

    def test_positional_signature_still_works(self, shipped):
        """Callers that pass only priority and the two moments get the priority's default."""
        assert shipped.due_at(Priority.ROUTINE, T0, None) == T0 + timedelta(hours=24)

    def test_it_is_an_sla_policy(self, shipped):
        """The loaded rules go wherever an SlaPolicy is expected."""
        assert isinstance(shipped, SlaPolicy)
        assert shipped.sla.rules == shipped.rules


class TestPrecedence:
    def test_first_matching_rule_wins(self):
        """Rules are tried in file order; a broad early rule hides a narrower later one."""
        policy = SlaPolicy(
            rules=(
                SlaRule("any stat CT", timedelta(minutes=25), priorities=frozenset({"stat"})),
                SlaRule(
                    "head",
                    timedelta(minutes=10),
                    priorities=frozenset({"stat"}),
                    body_parts=frozenset({"HEAD"}),
                ),
            )
        )
        assert policy.target(Priority.STAT, modality="CT", body_part="HEAD") == (
            timedelta(minutes=25),
            "any stat CT",
        )

    def test_omitted_keys_match_anything(self):
        """A rule with only a facility kind applies to every priority, modality and body part."""
        policy = parse_rules(
            '[[sla.rules]]\nname = "county"\nfacility_kind = "county"\nminutes = 5'
        )
        assert policy.target(Priority.ROUTINE, facility_kind="county") == (
            timedelta(minutes=5),
            "county",
        )
        assert policy.target(Priority.ROUTINE, facility_kind="township")[1] == "default"

    def test_targets_override_defaults_and_keep_the_rest(self):
        """A partial [sla.targets] changes only the priorities it names."""
        policy = parse_rules("[sla.targets]\nurgent = 90")
        assert policy.targets[Priority.URGENT] == timedelta(minutes=90)
        assert policy.targets[Priority.STAT] == timedelta(minutes=30)

    def test_an_empty_document_gives_the_defaults(self):
        """No rules: stat 30 min, urgent 2 h, routine 24 h, every consultation in general."""
        policy = parse_rules("")
        assert policy.due_at(Priority.STAT, T0, None) == T0 + timedelta(minutes=30)
        assert policy.routing.queue_for("CT", "HEAD") == "general"


class TestInvalidRules:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[sla.targets]\nasap = 10", "unknown priority 'asap'"),
            ("[sla.targets]\nstat = -5", "minutes must be a positive whole number"),
            ('[sla.targets]\nstat = "30m"', "minutes must be a positive whole number"),
            (
                '[[sla.rules]]\nname = "fast"\npriority = "now"\nminutes = 5',
                "[[sla.rules]] #1 ('fast'): unknown priority 'now'",
            ),
            (
                '[[sla.rules]]\nname = "fast"\nminutes = 0',
                "[[sla.rules]] #1 ('fast'): minutes must be a positive whole number, got 0",
            ),
            (
                '[[sla.rules]]\nname = "fast"\nminutes = 1.5',
                "('fast'): minutes must be a positive whole number",
            ),
            ('[[sla.rules]]\nname = "fast"', "('fast'): minutes is required"),
            (
                '[[sla.rules]]\nname = "fast"\nminutes = 5\nmodalty = "CT"',
                "('fast'): unknown key 'modalty'",
            ),
            (
                '[[sla.rules]]\nname = "fast"\nminutes = 5\nfacility_kind = "city"',
                "unknown facility_kind 'city'",
            ),
            ("[[sla.rules]]\nminutes = 5", "[[sla.rules]] #1: every rule needs a name"),
            (
                '[[sla.rules]]\nname = "fast"\nminutes = 5\nmodality = 7',
                "modality must be a string or a list of non-empty strings",
            ),
            ("[sla]\ntarget = 5", "[sla]: unknown key 'target'"),
            ("[slas]\nstat = 5", "unknown key 'slas'"),
            ("[sla.targets\nstat = 5", "not valid TOML"),
        ],
    )
    def test_error_names_the_offending_rule(self, text, message):
        """Every error says where the problem is and what is wrong."""
        with pytest.raises(RulesError) as raised:
            parse_rules(text, "my-rules.toml")
        assert message in str(raised.value)
        assert str(raised.value).startswith("my-rules.toml")
