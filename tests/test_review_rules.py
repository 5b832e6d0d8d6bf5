"""The two-level sign-off rule (worklists/review.py) and its ``[review]`` table in the TOML."""

from __future__ import annotations

import pytest

from worklists.review import Grade, ReviewPolicy, ReviewRefusal, grade_of
from worklists.rules import DEFAULT_RULES_PATH, RulesError, parse_rules


def rules(text: str):
    return parse_rules(text, "test.toml").review


class TestNeedsReview:
    def test_residents_reports_are_reviewed_by_default(self):
        """The shipped default: a resident's report always goes to a reviewer."""
        assert ReviewPolicy().needs_review("resident", "general", "routine")

    def test_an_attendings_report_is_issued_alone_by_default(self):
        """Today's readers (attendings unless told otherwise) keep reporting alone."""
        assert not ReviewPolicy().needs_review("attending", "neuro", "stat")

    def test_a_listed_queue_is_reviewed_whoever_writes(self):
        policy = rules('[review]\nqueues = ["Neuro"]\n')
        assert policy.needs_review("chief", "neuro", "routine")
        assert not policy.needs_review("chief", "chest", "routine")

    def test_a_listed_priority_is_reviewed(self):
        policy = rules('[review]\ngrades = []\npriorities = ["routine"]\n')
        assert policy.needs_review("attending", "chest", "routine")
        assert not policy.needs_review("resident", "chest", "stat")

    def test_an_unknown_stored_grade_counts_as_attending(self):
        assert grade_of("professor") is Grade.ATTENDING
        assert grade_of(None) is Grade.ATTENDING


class TestWhoMayReview:
    def test_nobody_reviews_their_own_report(self):
        assert ReviewPolicy().refusal(7, "chief", 7) is ReviewRefusal.OWN_REPORT

    def test_a_grade_below_the_minimum_is_refused(self):
        policy = rules('[review]\nreviewer_min_grade = "associate_chief"\n')
        assert policy.refusal(1, "attending", 2) is ReviewRefusal.GRADE_TOO_LOW
        assert policy.refusal(1, "chief", 2) is None

    def test_a_resident_may_not_review_by_default(self):
        assert ReviewPolicy().refusal(1, "resident", 2) is ReviewRefusal.GRADE_TOO_LOW


class TestPreliminary:
    def test_stat_and_urgent_may_be_released_before_review_by_default(self):
        policy = ReviewPolicy()
        assert policy.may_release_preliminary("stat")
        assert policy.may_release_preliminary("urgent")
        assert not policy.may_release_preliminary("routine")

    def test_the_table_narrows_preliminary_release(self):
        assert not rules('[review]\npreliminary_priorities = ["stat"]\n').may_release_preliminary(
            "urgent"
        )


class TestReviewTable:
    def test_the_shipped_rules_review_residents_by_attendings(self):
        policy = parse_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8")).review
        assert policy == ReviewPolicy()

    def test_a_document_without_the_table_keeps_the_defaults(self):
        assert rules("") == ReviewPolicy()

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('[review]\ngrades = ["intern"]\n', "unknown grade 'intern'"),
            ('[review]\nreviewer_min_grade = "boss"\n', "unknown grade 'boss'"),
            ('[review]\npriorities = ["soon"]\n', "unknown priority 'soon'"),
            ("[review]\nqueues = 3\n", "queues must be a string or a list"),
            ("[review]\nreviewers = []\n", "unknown key 'reviewers'"),
            ('review = "yes"\n', "review must be a table"),
        ],
    )
    def test_bad_review_settings_are_refused_naming_the_table(self, text, message):
        with pytest.raises(RulesError) as caught:
            parse_rules(text, "test.toml")
        assert message in str(caught.value)
        assert "test.toml" in str(caught.value)


class TestTurnaroundStages:
    def test_written_and_reviewed_are_milestones_and_stages(self):
        """The two-level sign-off's stages come from its events like every other stage."""
        from worklists.turnaround import REVIEW_STAGES, milestones, stage_seconds

        events = [
            {"type": "images_received", "at": "2026-03-01T08:00:00Z"},
            {"type": "claimed", "at": "2026-03-01T08:10:00Z", "actor_user_id": 2},
            {"type": "written", "at": "2026-03-01T08:40:00Z", "actor_user_id": 2},
            {"type": "claimed", "at": "2026-03-01T09:00:00Z", "actor_user_id": 3},
            {"type": "reviewed", "at": "2026-03-01T09:30:00Z", "actor_user_id": 3},
            {"type": "signed", "at": "2026-03-01T09:30:00Z", "actor_user_id": 3},
        ]
        found = milestones(events)
        assert (found.written_at, found.reviewed_at) == (
            "2026-03-01T08:40:00Z",
            "2026-03-01T09:30:00Z",
        )
        seconds = {stage.name: stage_seconds(found, stage) for stage in REVIEW_STAGES}
        assert seconds == {"claimed_to_written": 1800.0, "written_to_reviewed": 3000.0}
