"""QC score arithmetic on a hand-made month (worklists/quality.py): shares, reasons, retakes,
flagged studies, exam items normalised as routing matches them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worklists.quality import StudyRow, exam_item, monthly_scores, retakes, share


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def row(patient: str, day: str, quality: str | None = None, reason: str = "", **kw) -> StudyRow:
    values = {"facility_id": 1, "modality": "CT", "body_part": "HEAD", **kw}
    return StudyRow(patient_id=patient, received_at=at(day), quality=quality,
                    quality_reason=reason, **values)  # fmt: skip


MONTH = [
    row("P0", "2026-03-30T10:00", "good"),  # March: only the retake look-back
    row("P0", "2026-04-02T09:00", "poor", "motion"),  # retake of March 30th
    row("P1", "2026-04-03T09:00", "good", modality=" ct", body_part="head "),
    row("P2", "2026-04-05T09:00", "acceptable", "positioning"),
    row("P3", "2026-04-06T09:00", "poor", "motion", technical_flagged=True),
    row("P4", "2026-04-07T09:00"),  # not rated yet
    row("P5", "2026-04-08T09:00", "good", modality="DX", body_part="CHEST"),
    row("P1", "2026-04-20T09:00", "good"),  # 17 days after: not a retake
    row("P2", "2026-04-05T10:00", "good", facility_id=2),  # same patient id, other facility
]


class TestExamItem:
    def test_is_modality_and_body_part_stripped_and_upper_case(self):
        """As routing compares them: " ct" / "head " is the exam item CT HEAD."""
        assert exam_item(" ct", "head ") == ("CT", "HEAD")
        assert exam_item(None, None) == ("", "")


class TestMonthlyScores:
    def test_counts_the_months_studies_per_facility_and_exam_item(self):
        """March's study is only looked back on; facility 2 and DX CHEST have rows of their own."""
        scores = {s.key: s for s in monthly_scores(MONTH, "2026-04")}
        assert set(scores) == {
            (1, "CT", "HEAD", "2026-04"),
            (1, "DX", "CHEST", "2026-04"),
            (2, "CT", "HEAD", "2026-04"),
        }
        head = scores[(1, "CT", "HEAD", "2026-04")]
        assert (head.studies, head.rated) == (6, 5)
        assert (head.good, head.acceptable, head.poor) == (2, 1, 2)
        assert head.reasons == {"motion": 2, "positioning": 1}
        assert (head.retakes, head.flagged) == (1, 1)
        assert head.peer_agreement is None and head.peer_reviewed is None

    def test_shares_are_percent_of_rated_or_of_studies(self):
        """Poor: 2 of 5 rated = 40 %; retakes 1 of 6 studies = 16.7 %; nothing to share: None."""
        head = monthly_scores(MONTH, "2026-04")[0]
        assert share(head.poor, head.rated) == 40.0
        assert share(head.retakes, head.studies) == 16.7
        assert share(0, 0) is None

    def test_a_month_without_studies_has_no_scores(self):
        assert monthly_scores(MONTH, "2026-05") == []


class TestRetakes:
    def test_a_repeat_within_the_window_is_a_retake(self):
        rows = [row("P1", "2026-04-01T08:00"), row("P1", "2026-04-03T08:00")]
        assert retakes(rows, timedelta(days=7)) == {1}

    def test_the_window_is_configurable(self):
        rows = [row("P1", "2026-04-01T08:00"), row("P1", "2026-04-03T08:00")]
        assert retakes(rows, timedelta(days=1)) == set()

    def test_order_given_does_not_matter_the_later_study_is_the_retake(self):
        rows = [row("P1", "2026-04-03T08:00"), row("P1", "2026-04-01T08:00")]
        assert retakes(rows) == {0}

    def test_other_exam_item_facility_or_an_empty_patient_id_is_no_retake(self):
        rows = [
            row("P1", "2026-04-01T08:00"),
            row("P1", "2026-04-01T09:00", body_part="CHEST"),
            row("P1", "2026-04-01T10:00", facility_id=2),
            row("", "2026-04-01T11:00"),
            row(" ", "2026-04-01T12:00"),
        ]
        assert retakes(rows) == set()

    def test_each_repeat_of_a_series_counts(self):
        """Three studies in three days: the second and third repeat the one before them."""
        rows = [row("P1", f"2026-04-0{d}T08:00") for d in (1, 2, 3)]
        assert retakes(rows) == {1, 2}


class TestMonthBounds:
    def test_december_ends_at_the_next_new_year(self):
        from worklists.quality import month_bounds

        assert month_bounds("2026-12") == (at("2026-12-01T00:00"), at("2027-01-01T00:00"))
        assert month_bounds("2026-04")[1] == at("2026-05-01T00:00")

    def test_a_time_in_another_zone_counts_in_its_utc_month(self):
        """00:30 on May 1st in Beijing is still April in UTC."""
        from datetime import timezone

        from worklists.quality import month_of

        beijing = datetime(2026, 5, 1, 0, 30, tzinfo=timezone(timedelta(hours=8)))
        assert month_of(beijing) == "2026-04"
        row_ = StudyRow(1, "P9", "CT", "HEAD", beijing, "good")
        assert [s.month for s in monthly_scores([row_], "2026-04")] == ["2026-04"]
