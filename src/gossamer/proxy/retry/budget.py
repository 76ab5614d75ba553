"""Retry budget: retries may add at most a fixed share of traffic, plus a small floor.

Theory of operation (Linkerd's default budget): every original request deposits; every retry
withdraws. A retry is allowed while the retries of the last `ttl` seconds stay below
`min_per_second * ttl + ratio * requests of the last ttl seconds`, so a failing service sees
at most (1 + ratio) times its normal load, and a quiet one can still retry a few requests.

Counts are kept per time bucket (about a second each, `ttl` of them) in a ring with running
totals, so memory is bounded whatever the rate and both calls are O(1) while time advances
a bucket at a time. The window is whole buckets: it covers between ttl - 1 and ttl seconds.
"""

from __future__ import annotations

import math


class RetryBudget:
    __slots__ = (
        "_bucket",
        "_inv_width",
        "_n",
        "_requests",
        "_retries",
        "_slot",
        "_total_requests",
        "_total_retries",
        "min_per_second",
        "ratio",
        "reserve",
        "ttl",
    )

    def __init__(self, ratio: float = 0.2, min_per_second: float = 10, ttl: float = 10.0) -> None:
        if ratio < 0 or min_per_second < 0 or ttl <= 0:
            raise ValueError("need ratio >= 0, min_per_second >= 0 and ttl > 0")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.ttl = ttl
        self.reserve = min_per_second * ttl
        self._n = max(1, math.ceil(ttl))
        self._inv_width = self._n / ttl
        self._requests = [0] * self._n
        self._retries = [0] * self._n
        self._total_requests = 0
        self._total_retries = 0
        self._bucket: int | None = None  # absolute index of the current bucket
        self._slot = 0  # its place in the ring

    def deposit(self, now: float) -> None:
        """An original request (not a retry) was sent."""
        if int(now * self._inv_width) != self._bucket:
            self._advance(now)
        self._requests[self._slot] += 1
        self._total_requests += 1

    def withdraw(self, now: float) -> bool:
        """Asks for one retry; True (and counted) when the budget allows it."""
        if int(now * self._inv_width) != self._bucket:
            self._advance(now)
        if self._total_retries >= self.reserve + self.ratio * self._total_requests:
            return False
        self._retries[self._slot] += 1
        self._total_retries += 1
        return True

    def remaining(self, now: float) -> float:
        """How many retries the budget would allow now (for metrics and tests)."""
        if int(now * self._inv_width) != self._bucket:
            self._advance(now)
        return max(0.0, self.reserve + self.ratio * self._total_requests - self._total_retries)

    def _advance(self, now: float) -> None:
        bucket = int(now * self._inv_width)
        current = self._bucket
        n = self._n
        if current is None or bucket - current >= n:
            for i in range(n):
                self._requests[i] = 0
                self._retries[i] = 0
            self._total_requests = 0
            self._total_retries = 0
        elif bucket < current:
            return  # a clock reading from the past counts in the current bucket
        else:
            for b in range(current + 1, bucket + 1):
                slot = b % n
                self._total_requests -= self._requests[slot]
                self._total_retries -= self._retries[slot]
                self._requests[slot] = 0
                self._retries[slot] = 0
        self._bucket = bucket
        self._slot = bucket % n

    def __repr__(self) -> str:
        return (
            f"RetryBudget(requests={self._total_requests}, retries={self._total_retries}, "
            f"ratio={self.ratio}, reserve={self.reserve})"
        )
