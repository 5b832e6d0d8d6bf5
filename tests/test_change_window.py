"""The follower's window over Orthanc's change feed (service/intake/change_window.py): seqs that
come late or never, as Orthancs sharing a PostgreSQL index can give them."""

from __future__ import annotations

from service.intake.change_window import WIDEST_GAP, ChangeWindow
from service.runtime.orthanc.client import Change


def changes(*seqs: int) -> list[Change]:
    return [Change(seq, "NewInstance", "Instance", f"i{seq}", "") for seq in seqs]


def seqs(taken: list[Change]) -> list[int]:
    return [c.seq for c in taken]


def process(window: ChangeWindow, taken: list[Change]) -> None:
    for change in taken:
        window.done(change.seq)


class TestTake:
    def test_changes_in_order_move_the_cursor_to_the_last(self):
        """Without holes the window is the old cursor: everything read and done is covered."""
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 2, 3), now=0))
        assert (window.low, window.head, window.gaps()) == (3, 3, [])

    def test_a_change_read_before_is_not_taken_again(self):
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 2), now=0))
        assert seqs(window.take(changes(1, 2, 3), now=1)) == [3]

    def test_changes_come_out_in_seq_order(self):
        window = ChangeWindow(0)
        assert seqs(window.take(changes(3, 1, 2), now=0)) == [1, 2, 3]


class TestGaps:
    def test_a_skipped_seq_holds_the_cursor_below_it(self):
        """102 read while 101 is not committed yet: the stored cursor stays at 100, so that a
        restart reads 101 when it comes."""
        window = ChangeWindow(100)
        process(window, window.take(changes(102, 103), now=0))
        assert window.gaps() == [(101, 101)]
        assert (window.low, window.head) == (100, 103)

    def test_the_late_change_is_taken_once_and_frees_the_cursor(self):
        window = ChangeWindow(100)
        process(window, window.take(changes(102, 103), now=0))
        late = window.take(changes(101, 102, 103), now=1)
        assert seqs(late) == [101]
        assert window.late == 1
        process(window, late)
        assert (window.low, window.gaps()) == (103, [])

    def test_gaps_close_together_are_read_as_one_range_and_far_ones_apart(self):
        window = ChangeWindow(0)
        window.take(changes(1, 3, *range(5, 400), 401), now=0)
        assert window.gaps(join_within=1) == [(2, 2), (4, 4), (400, 400)]
        assert window.gaps(join_within=100) == [(2, 4), (400, 400)]

    def test_changes_read_again_with_a_joined_range_are_not_taken_twice(self):
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 3, 5), now=0))
        assert seqs(window.take(changes(2, 3, 4), now=1)) == [2, 4]

    def test_a_gap_is_given_up_after_the_patience(self):
        """A seq of a rolled-back transaction never comes: after ``patience`` the cursor passes
        it."""
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 3), now=0))
        assert window.give_up(now=29, patience=30) == []
        assert window.low == 1
        assert window.give_up(now=30, patience=30) == [2]
        assert (window.low, window.gaps()) == (3, [])

    def test_a_change_that_comes_after_being_given_up_is_not_taken(self):
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 3), now=0))
        window.give_up(now=30, patience=30)
        assert window.take(changes(2), now=31) == []

    def test_a_jump_wider_than_any_gap_is_not_waited_for(self):
        """A cursor far behind the feed (a cleared change log): no million gaps."""
        window = ChangeWindow(0)
        process(window, window.take(changes(WIDEST_GAP + 10), now=0))
        assert (window.low, window.gaps()) == (WIDEST_GAP + 10, [])


class TestCursorAfter:
    def test_the_cursor_stored_with_a_change_never_passes_an_open_gap(self):
        window = ChangeWindow(0)
        taken = window.take(changes(1, 3, 4), now=0)
        assert [window.cursor_after(c.seq) for c in taken[:1]] == [1]
        window.done(1)
        assert window.cursor_after(3) == 1

    def test_a_late_change_stores_the_cursor_up_to_what_was_done_after_it(self):
        window = ChangeWindow(0)
        process(window, window.take(changes(1, 3, 4), now=0))
        [late] = window.take(changes(2), now=1)
        assert window.cursor_after(late.seq) == 4
