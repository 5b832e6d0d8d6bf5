"""worklists.peer_review: the draw, the [peer_review] table, RADPEER scores, who may review."""

from __future__ import annotations

import os

import pytest

from worklists.peer_review import (
    PeerRefusal,
    PeerReviewPolicy,
    ScoreError,
    agreement,
    drawn,
    parse_peer_review,
    peer_refusal,
    radpeer_score,
)
from worklists.rules import RulesError, parse_rules


def test_the_drawn_share_holds_over_many_signatures():
    """2,000 issued versions at 5 %: about 100 drawn (binomial sd ≈ 9.7; 4 sd either side)."""
    secret = os.urandom(32)
    count = sum(drawn(secret, version_id, 0.05) for version_id in range(1, 2001))
    assert 61 <= count <= 139


def test_a_queue_share_overrides_the_default_over_many_signatures():
    """20 % on a queue: about 400 of 2,000 (sd ≈ 17.9)."""
    policy = PeerReviewPolicy(5.0, {"neuro": 20.0})
    secret = os.urandom(32)
    count = sum(drawn(secret, v, policy.share_for("Neuro")) for v in range(1, 2001))
    assert 328 <= count <= 472
    assert policy.share_for("chest") == 0.05


def test_the_draw_is_the_same_for_a_version_and_differs_between_installs():
    """Deterministic per (secret, version) so a retry never draws twice; another install's
    secret draws other versions, so nobody predicts which."""
    one, other = b"a" * 32, b"b" * 32
    first = [v for v in range(1, 2001) if drawn(one, v, 0.05)]
    assert first == [v for v in range(1, 2001) if drawn(one, v, 0.05)]
    assert first != [v for v in range(1, 2001) if drawn(other, v, 0.05)]


def test_nothing_is_drawn_at_zero_and_everything_at_one_hundred():
    assert not any(drawn(b"s", v, 0.0) for v in range(500))
    assert all(drawn(b"s", v, 1.0) for v in range(500))


def test_the_table_defaults_to_five_percent():
    assert parse_peer_review("").share_percent == 5.0


def test_the_table_reads_a_share_and_queue_overrides():
    policy = parse_peer_review("[peer_review]\nshare_percent = 2.5\nqueues = { Neuro = 10 }\n")
    assert policy.share_percent == 2.5 and policy.queues == {"neuro": 10.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[peer_review]\nshare = 5\n", "unknown key 'share'"),
        ("[peer_review]\nshare_percent = 150\n", "share_percent must be a percentage"),
        ("[peer_review]\nshare_percent = true\n", "share_percent must be a percentage"),
        ("[peer_review]\nqueues = 3\n", "queues must be a table"),
        ("[peer_review]\nqueues = { neuro = -1 }\n", "queues.neuro must be a percentage"),
        ("peer_review = 3\n", "peer_review must be a table"),
    ],
)
def test_a_table_that_cannot_be_used_is_refused_with_its_key(text, message):
    with pytest.raises(RulesError, match="peer_review"):
        parse_peer_review(text, "rules.toml")
    with pytest.raises(RulesError) as caught:
        parse_peer_review(text, "rules.toml")
    assert message in str(caught.value)


def test_the_worklist_rules_accept_the_peer_review_table():
    parse_rules("[peer_review]\nshare_percent = 5\n")


def test_score_one_agrees_and_opens_nothing():
    score = radpeer_score(1, None, "")
    assert score.agrees and not score.opens_discrepancy and score.code == "1"


@pytest.mark.parametrize(
    ("level", "significance", "opens"),
    [(2, "a", False), (2, "b", True), (3, "a", True), (4, "a", True), (4, "b", True)],
)
def test_scores_three_four_and_any_b_open_a_discrepancy(level, significance, opens):
    assert radpeer_score(level, significance, "missed it").opens_discrepancy is opens


@pytest.mark.parametrize(
    ("level", "significance", "comment", "code"),
    [
        (2, "a", " ", "comment_required"),
        (3, None, "missed", "significance_required"),
        (1, "a", "", "invalid_score"),
        (5, "a", "x", "invalid_score"),
    ],
)
def test_a_score_that_cannot_be_recorded_is_refused(level, significance, comment, code):
    with pytest.raises(ScoreError) as caught:
        radpeer_score(level, significance, comment)
    assert caught.value.code == code


def test_nobody_reviews_a_report_they_signed_or_co_signed():
    assert peer_refusal(7, {7}, set()) is PeerRefusal.OWN_REPORT
    assert peer_refusal(8, {7}, {8}) is PeerRefusal.CO_SIGNED
    assert peer_refusal(9, {7}, {8}) is None


def test_agreement_is_the_share_of_score_one():
    assert agreement([1, 1, 2, 3]) == 0.5
    assert agreement([]) is None
