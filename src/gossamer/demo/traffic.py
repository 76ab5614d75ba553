"""The vote-bot's decisions, kept pure: which request to send next, how long to back off.

The mix is mostly votes, with a share of them for the failing item, plus some page and API
reads, so every edge of the demo (web → emoji, web → voting) carries traffic. With the
defaults (15% of votes failing, 80% votes) web answers about 88% of requests with success and
voting about 87%: clearly below 100%, well above 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlencode

from gossamer.demo.catalog import CATALOG, FAILING_SHORTCODE

# (weight, kind) of each request the bot sends; kinds other than "vote" are paths.
TRAFFIC_MIX: tuple[tuple[float, str], ...] = (
    (0.80, "vote"),
    (0.10, "/api/list"),
    (0.05, "/api/leaderboard"),
    (0.05, "/"),
)

_WORKING_SHORTCODES = tuple(
    item.shortcode for item in CATALOG if item.shortcode != FAILING_SHORTCODE
)


def choose_vote(rng: random.Random, failing_share: float) -> str:
    """The failing item with probability `failing_share`, else any other item uniformly."""
    if rng.random() < failing_share:
        return FAILING_SHORTCODE
    return rng.choice(_WORKING_SHORTCODES)


def next_target(rng: random.Random, failing_share: float) -> str:
    """The request target (path and query) of the bot's next request."""
    weights = [weight for weight, _ in TRAFFIC_MIX]
    kinds = [kind for _, kind in TRAFFIC_MIX]
    kind = rng.choices(kinds, weights)[0]
    if kind == "vote":
        return "/api/vote?" + urlencode({"choice": choose_vote(rng, failing_share)})
    return kind


@dataclass
class ExponentialBackoff:
    """Delays that double from `initial` up to `maximum`, jittered, until `reset()`.

    Each delay is drawn from the upper half of its ceiling: the jitter keeps retrying clients
    from moving in lock-step against a server that is coming back, the floor keeps them from
    hammering it.
    """

    initial: float = 0.1
    maximum: float = 5.0
    _failures: int = 0

    def next_delay(self, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(self._failures, 32)))
        self._failures += 1
        return rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0
