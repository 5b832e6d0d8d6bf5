"""The recognition list's rules (TOML [recognition]), the decisions they make and the question
a signed report's mark asks: was this facility × exam item on the list at that time?"""

from __future__ import annotations

import pytest

from worklists.recognition import (
    ADDED,
    RESTORED,
    SUSPENDED,
    HistoryEntry,
    RecognitionRules,
    Totals,
    evaluate,
    parse_recognition,
    was_recognised,
)
from worklists.rules import DEFAULT_RULES_PATH, RulesError, parse_rules

KEY = (7, "CT", "HEAD")


class TestParseRecognition:
    def test_a_document_without_the_table_gets_the_defaults(self):
        assert parse_recognition("[sla.targets]\nstat = 30\n") == RecognitionRules()

    def test_the_shipped_rules_file_carries_a_usable_table(self):
        text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
        assert parse_recognition(text).months == 3
        parse_rules(text)  # the worklist's own parser accepts the [recognition] table

    def test_values_are_read(self):
        rules = parse_recognition(
            "[recognition]\nmonths = 6\nmin_studies = 10\nmax_poor_percent = 5\n"
            "retake_window_days = 3\nno_open_significant_discrepancy = false\n"
        )
        assert (rules.months, rules.min_studies, rules.max_poor_percent) == (6, 10, 5.0)
        assert rules.retake_window.days == 3
        assert rules.no_open_significant_discrepancy is False

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[recognition]\nmin_study = 3\n", "unknown key 'min_study'"),
            ("[recognition]\nmin_studies = -1\n", "min_studies must be a whole number >= 0"),
            ("[recognition]\nmonths = 0\n", "months must be a whole number >= 1"),
            ("[recognition]\nmonths = 36\n", "months must be at most 24"),
            ("[recognition]\nmax_poor_percent = 120\n", "max_poor_percent must be a percentage"),
            ("[recognition]\nmax_poor_percent = true\n", "max_poor_percent must be a percentage"),
            ("[recognition]\nretake_window_days = 1.5\n", "retake_window_days must be a whole"),
            ("[recognition]\nno_open_significant_discrepancy = 1\n", "must be true or false"),
            ("recognition = 3\n", "recognition must be a table"),
            ("[recognition\n", "not valid TOML"),
        ],
    )
    def test_unusable_rules_are_refused_with_a_message_naming_the_key(self, text, message):
        with pytest.raises(RulesError, match="my-rules.toml") as refused:
            parse_recognition(text, "my-rules.toml")
        assert message in str(refused.value)


RULES = RecognitionRules(min_studies=20, max_poor_percent=10.0, max_retake_percent=5.0)
GOOD = Totals(studies=40, rated=40, poor=2, retakes=1)


class TestEvaluate:
    def test_a_facility_meeting_the_rules_is_added(self):
        [change] = evaluate(RULES, {}, {KEY: GOOD})
        assert (change.key, change.change) == (KEY, ADDED)
        assert [r.code for r in change.reasons] == ["meets_rules"]

    def test_a_listed_facility_breaking_rules_is_suspended_with_every_reason(self):
        bad = Totals(studies=12, rated=10, poor=3, retakes=2)
        [change] = evaluate(RULES, {KEY: "listed"}, {KEY: bad})
        assert change.change == SUSPENDED
        assert [(r.code, r.figure, r.limit) for r in change.reasons] == [
            ("too_few_studies", 12, 20),
            ("poor_share_above", 30.0, 10.0),
            ("retake_share_above", 16.7, 5.0),
        ]

    def test_a_listed_facility_with_no_studies_left_is_suspended(self):
        [change] = evaluate(RULES, {KEY: "listed"}, {})
        assert (change.change, change.reasons[0].code) == (SUSPENDED, "too_few_studies")

    def test_studies_without_any_rating_are_not_recognised(self):
        """Enough studies but no image-quality rating among them: nothing shows the quality."""
        assert evaluate(RULES, {}, {KEY: Totals(studies=40)}) == []
        [change] = evaluate(RULES, {KEY: "listed"}, {KEY: Totals(studies=40)})
        assert [r.code for r in change.reasons] == ["no_ratings"]

    def test_a_suspended_facility_meeting_the_rules_again_is_restored(self):
        [change] = evaluate(RULES, {KEY: "suspended"}, {KEY: GOOD})
        assert change.change == RESTORED

    def test_no_change_when_the_status_already_fits(self):
        assert evaluate(RULES, {KEY: "listed"}, {KEY: GOOD}) == []
        assert evaluate(RULES, {}, {KEY: Totals(studies=3)}) == []

    def test_an_open_significant_discrepancy_suspends_when_the_rule_is_on(self):
        with_discrepancy = Totals(**{**GOOD.__dict__, "open_significant_discrepancies": 1})
        [change] = evaluate(RULES, {KEY: "listed"}, {KEY: with_discrepancy})
        assert change.reasons[0].code == "open_significant_discrepancy"
        off = RecognitionRules(min_studies=20, no_open_significant_discrepancy=False)
        assert evaluate(off, {KEY: "listed"}, {KEY: with_discrepancy}) == []


class TestWasRecognised:
    HISTORY = [
        HistoryEntry(KEY, ADDED, "2026-02-01T00:00:00.000000Z"),
        HistoryEntry(KEY, SUSPENDED, "2026-05-01T00:00:00.000000Z"),
        HistoryEntry(KEY, RESTORED, "2026-08-01T00:00:00.000000Z"),
        HistoryEntry((8, "CT", "HEAD"), ADDED, "2026-01-01T00:00:00.000000Z"),
    ]

    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            ("2026-01-15T00:00:00.000000Z", False),  # before it was added
            ("2026-02-01T00:00:00.000000Z", True),  # from the moment it was added
            ("2026-04-30T23:59:59.000000Z", True),
            ("2026-05-02T00:00:00.000000Z", False),  # suspended
            ("2026-09-01T00:00:00.000000Z", True),  # restored
        ],
    )
    def test_the_last_change_at_or_before_the_time_decides(self, at, expected):
        assert was_recognised(self.HISTORY, KEY, at) is expected

    def test_another_exam_item_of_the_facility_is_not_recognised(self):
        assert not was_recognised(self.HISTORY, (7, "MR", "HEAD"), "2026-03-01T00:00:00Z")


def test_the_service_refuses_to_start_on_unusable_recognition_rules(tmp_path):
    """The message names the setting, the file and the key, as for the worklist's own rules."""
    from service.quality.background import load_recognition_rules
    from service.settings import Settings, SettingsError

    rules = tmp_path / "rules.toml"
    rules.write_text("[recognition]\nmax_poor_percent = 120\n", encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_recognition_rules(Settings(data_dir=tmp_path, worklist_rules=rules))
    assert str(refused.value).startswith(f"TELEREAD_WORKLIST_RULES: {rules} [recognition]:")
    assert "max_poor_percent must be a percentage from 0 to 100, got 120" in str(refused.value)
