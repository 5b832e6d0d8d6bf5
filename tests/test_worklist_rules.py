"""Pure worklist rules: priorities, SLA deadlines, intake status, keyset cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worklists.ordering import WorklistKey
from worklists.priorities import Priority
from worklists.sla import SlaPolicy, time_left
from worklists.status import ConsultationStatus, intake_status

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class TestPriority:
    def test_stat_ranks_before_urgent_before_routine(self):
        """Ranks sort the most urgent first."""
        ranks = sorted(Priority, key=lambda p: p.rank)
        assert ranks == [Priority.STAT, Priority.URGENT, Priority.ROUTINE]


class TestSlaPolicy:
    @pytest.mark.parametrize(
        ("priority", "target"),
        [
            (Priority.STAT, timedelta(minutes=30)),
            (Priority.URGENT, timedelta(hours=2)),
            (Priority.ROUTINE, timedelta(hours=24)),
        ],
    )
    def test_default_targets(self, priority, target):
        """Defaults: stat 30 min, urgent 2 h, routine 24 h from the clock start."""
        assert SlaPolicy().due_at(priority, T0, None) == T0 + target

    def test_clock_starts_when_the_later_half_arrives(self):
        """Images at 08:00 and the request at 09:00 start the clock at 09:00."""
        due = SlaPolicy().due_at(Priority.STAT, T0, T0 + timedelta(hours=1))
        assert due == T0 + timedelta(hours=1, minutes=30)

    def test_request_alone_starts_the_clock(self):
        """A request filed before its images still has a deadline."""
        assert SlaPolicy().due_at(Priority.URGENT, None, T0) == T0 + timedelta(hours=2)

    def test_nothing_arrived_has_no_deadline(self):
        """A consultation cannot exist without images or a request."""
        with pytest.raises(ValueError):
            SlaPolicy().due_at(Priority.ROUTINE, None, None)

    def test_time_left_is_negative_when_overdue(self):
        """Overdue is computed, never stored."""
        assert time_left(T0, T0 + timedelta(minutes=5)) == timedelta(minutes=-5)


class TestIntakeStatus:
    def test_request_without_images_awaits_images(self):
        """The clinic asked; the study has not arrived."""
        assert intake_status(False, True) is ConsultationStatus.AWAITING_IMAGES

    def test_images_without_request_await_request(self):
        """The modality sent; nobody filed the clinical question yet."""
        assert intake_status(True, False) is ConsultationStatus.AWAITING_REQUEST

    def test_both_halves_make_it_ready(self):
        """Images and request: ready to read."""
        assert intake_status(True, True) is ConsultationStatus.READY

    def test_neither_half_is_an_error(self):
        """Nothing arrived means no consultation."""
        with pytest.raises(ValueError):
            intake_status(False, False)


class TestWorklistKey:
    def test_cursor_round_trips(self):
        """A cursor decodes to the key it was made from."""
        key = WorklistKey("2026-11-23T08:30:00.000000Z", 0, "2026-11-23T08:00:00.000000Z", 42)
        assert WorklistKey.decode(key.encode()) == key

    @pytest.mark.parametrize("cursor", ["", "not-base64!!", "WzEsMiwzXQ", "eyJhIjogMX0"])
    def test_foreign_cursors_are_refused(self, cursor):
        """Anything not made by encode() raises ValueError (answered as 400)."""
        with pytest.raises(ValueError):
            WorklistKey.decode(cursor)
