"""The vote-bot's choices and backoff, with a seeded random source."""

from __future__ import annotations

import random
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from gossamer.demo.catalog import CATALOG, FAILING_SHORTCODE, find
from gossamer.demo.traffic import ExponentialBackoff, choose_vote, next_target


def test_failing_share_of_votes() -> None:
    rng = random.Random(1)
    votes = Counter(choose_vote(rng, 0.15) for _ in range(20_000))
    assert 0.13 < votes[FAILING_SHORTCODE] / 20_000 < 0.17
    assert set(votes) == {item.shortcode for item in CATALOG}
    assert FAILING_SHORTCODE not in {choose_vote(rng, 0.0) for _ in range(2_000)}


def test_mix_lands_web_success_clearly_between_0_and_100_percent() -> None:
    rng = random.Random(2)
    targets = [next_target(rng, 0.15) for _ in range(20_000)]
    votes = [urlsplit(t) for t in targets if t.startswith("/api/vote?")]
    choices = [parse_qs(v.query)["choice"][0] for v in votes]
    assert all(find(choice) is not None for choice in choices)
    failing = sum(choice == FAILING_SHORTCODE for choice in choices)
    web_success = 1 - failing / len(targets)
    assert 0.8 < web_success < 0.95
    assert {"/", "/api/list", "/api/leaderboard"} <= set(targets)


def test_backoff_doubles_to_a_ceiling_and_resets() -> None:
    rng = random.Random(3)
    backoff = ExponentialBackoff(initial=0.1, maximum=2.0)
    delays = [backoff.next_delay(rng) for _ in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert 0.4 <= delays[3] <= 0.8
    assert all(1.0 <= delay <= 2.0 for delay in delays[5:])
    backoff.reset()
    assert backoff.next_delay(rng) <= 0.1
