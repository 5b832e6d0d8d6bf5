"""worklists.claims: the lease rules, with time as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worklists.claims import ClaimState, claim_state, lease_until, may_claim

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)


class TestClaimState:
    def test_an_unclaimed_item_is_free(self):
        """Nobody holds it."""
        assert claim_state(None, None, NOW) is ClaimState.FREE

    def test_a_claim_before_its_expiry_is_held(self):
        """The lease is live up to its expiry."""
        assert claim_state(7, LATER, NOW) is ClaimState.HELD

    def test_a_claim_at_or_after_its_expiry_has_expired(self):
        """The expiry moment itself no longer holds the item."""
        assert claim_state(7, LATER, LATER) is ClaimState.EXPIRED
        assert claim_state(7, LATER, LATER + timedelta(seconds=1)) is ClaimState.EXPIRED

    def test_a_holder_without_expiry_counts_as_expired(self):
        """A lease without an end is not a lease: never lock an item forever."""
        assert claim_state(7, None, NOW) is ClaimState.EXPIRED


class TestMayClaim:
    def test_anyone_may_claim_a_free_item(self):
        assert may_claim(None, None, 3, NOW)

    def test_only_the_holder_may_claim_a_held_item(self):
        """The holder's claim is a renewal; anyone else is refused."""
        assert may_claim(7, LATER, 7, NOW)
        assert not may_claim(7, LATER, 3, NOW)

    def test_anyone_may_take_over_an_expired_lease(self):
        assert may_claim(7, NOW, 3, LATER)


class TestLeaseUntil:
    def test_the_lease_runs_for_the_given_minutes(self):
        assert lease_until(NOW, 15) == LATER

    def test_fractional_minutes_are_allowed(self):
        assert lease_until(NOW, 0.5) == NOW + timedelta(seconds=30)

    def test_a_lease_must_last_some_time(self):
        with pytest.raises(ValueError):
            lease_until(NOW, 0)
