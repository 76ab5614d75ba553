"""Failure accrual: an endpoint that keeps failing is taken out of balancing for a while.

Theory of operation (linkerd2-proxy's consecutive-failures breaker):

    healthy --(max_failures failures in a row)--> penalised until now + backoff
    penalised --(backoff over)--> probation: exactly one request may probe the endpoint
    probation --(a probe is sent)--> probing: nothing else is sent
    probing --(probe succeeds)--> healthy, backoff reset
    probing --(probe fails)--> penalised again, with the next (longer) backoff

The backoff grows exponentially from `min_penalty` to `max_penalty`, each one lengthened by
up to `jitter_ratio` of itself (capped at `max_penalty`) so that endpoints penalised together
do not come back together. Results that arrive while penalised are ignored, as Linkerd's
breaker ignores responses while shut. A caller that claims the probe (`begin_probe`) reports
its result with `end_probe`, and other results during probing are ignored (they come from
requests sent before the penalty); a caller that never claims one gets Linkerd's behaviour:
the first result recorded on probation decides. A claimed probe whose result never comes is
given up after `max_penalty`, so a lost handle cannot shut an endpoint out for good.

Time is the caller's (`now`, seconds); randomness is injected. Transitions out of the
penalty happen lazily, when `available` or `record` is asked at a later `now`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gossamer.api.gen import policy_pb2 as pb

AccrualState = Literal["healthy", "penalised", "probation", "probing"]

DEFAULT_MAX_FAILURES = 7
DEFAULT_MIN_PENALTY = 1.0
DEFAULT_MAX_PENALTY = 60.0
DEFAULT_JITTER_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class AccrualSettings:
    """Failure accrual of one service's endpoints (Linkerd's defaults)."""

    max_failures: int = DEFAULT_MAX_FAILURES
    min_penalty: float = DEFAULT_MIN_PENALTY
    max_penalty: float = DEFAULT_MAX_PENALTY
    jitter_ratio: float = DEFAULT_JITTER_RATIO

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be >= 1 (no accrual: no AccrualSettings)")
        if not 0 < self.min_penalty <= self.max_penalty:
            raise ValueError("need 0 < min_penalty <= max_penalty")
        if self.jitter_ratio < 0:
            raise ValueError("jitter_ratio must be >= 0")

    @classmethod
    def from_policy(cls, accrual: pb.FailureAccrual) -> AccrualSettings | None:
        """The settings a policy asks for; None when it turns accrual off (0 failures).

        Unset backoffs take the defaults; a maximum below the minimum is raised to it.
        """
        if accrual.consecutive_failures == 0:
            return None
        lo = accrual.min_backoff_ms / 1000 if accrual.min_backoff_ms else DEFAULT_MIN_PENALTY
        hi = accrual.max_backoff_ms / 1000 if accrual.max_backoff_ms else DEFAULT_MAX_PENALTY
        return cls(
            max_failures=accrual.consecutive_failures,
            min_penalty=lo,
            max_penalty=max(lo, hi),
            jitter_ratio=max(0.0, accrual.jitter_ratio),
        )


class ConsecutiveFailures:
    """The failure-accrual state of one endpoint."""

    __slots__ = (
        "_failures",
        "_penalties",
        "_probing",
        "_rng",
        "_until",
        "jitter_ratio",
        "max_failures",
        "max_penalty",
        "min_penalty",
        "penalised",
    )

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        min_penalty: float = DEFAULT_MIN_PENALTY,
        max_penalty: float = DEFAULT_MAX_PENALTY,
        jitter_ratio: float = DEFAULT_JITTER_RATIO,
        rng: random.Random | None = None,
    ) -> None:
        AccrualSettings(max_failures, min_penalty, max_penalty, jitter_ratio)  # validates
        self.max_failures = max_failures
        self.min_penalty = min_penalty
        self.max_penalty = max_penalty
        self.jitter_ratio = jitter_ratio
        self._rng = rng if rng is not None else random.Random()
        # True from the penalty until a probe succeeds (penalised, probation or probing):
        # the balancer's one-attribute check for "anything but healthy".
        self.penalised = False
        self._failures = 0
        self._penalties = 0  # in a row, for the backoff's exponent
        self._until = 0.0
        self._probing = False

    @classmethod
    def from_settings(
        cls, settings: AccrualSettings, rng: random.Random | None = None
    ) -> ConsecutiveFailures:
        return cls(
            settings.max_failures,
            settings.min_penalty,
            settings.max_penalty,
            settings.jitter_ratio,
            rng,
        )

    def available(self, now: float) -> bool:
        """Whether a request may be sent: healthy, or on probation with no probe in flight."""
        return not self.penalised or now >= self._until

    def state(self, now: float) -> AccrualState:
        if not self.penalised:
            return "healthy"
        if now >= self._until:
            return "probation"
        return "probing" if self._probing else "penalised"

    @property
    def unavailable_until(self) -> float:
        """When the penalty (or the wait for a probe's result) ends; 0 when healthy."""
        return self._until if self.penalised else 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far while healthy."""
        return self._failures

    def record(self, success: bool, now: float) -> None:
        """The outcome of one request (a response or a failure to get one)."""
        if not self.penalised:
            if success:
                self._failures = 0
            else:
                self._failures += 1
                if self._failures >= self.max_failures:
                    self._penalise(now)
        elif now >= self._until:
            # On probation and nobody claimed the probe: this result is the probe's.
            self._resolve(success, now)
        # Otherwise penalised, or a claimed probe is in flight: not this request's to decide.

    def begin_probe(self, now: float) -> bool:
        """Claims the one probe of a probation; False when there is none to claim.

        A probe whose result never comes is given up after `max_penalty`, and the endpoint
        is on probation again: a lost probe must not shut an endpoint out for good.
        """
        if self.penalised and now >= self._until:
            self._probing = True
            self._until = now + self.max_penalty
            return True
        return False

    def end_probe(self, success: bool, now: float) -> None:
        """The claimed probe's outcome."""
        if self._probing:
            self._resolve(success, now)

    def abandon_probe(self) -> None:
        """The claimed probe was never sent: on probation again, at once."""
        if self._probing:
            self._probing = False
            self._until = 0.0

    def _resolve(self, success: bool, now: float) -> None:
        self._probing = False
        if success:
            self.penalised = False
            self._failures = 0
            self._penalties = 0
        else:
            self._penalise(now)

    def _penalise(self, now: float) -> None:
        base = min(self.min_penalty * 2.0**self._penalties, self.max_penalty)
        penalty = min(base * (1.0 + self.jitter_ratio * self._rng.random()), self.max_penalty)
        self._penalties = min(self._penalties + 1, 64)
        self._until = now + penalty
        self.penalised = True
        self._failures = 0

    def __repr__(self) -> str:
        return (
            f"ConsecutiveFailures(penalised={self.penalised}, failures={self._failures}, "
            f"until={self._until:.3f}, probing={self._probing})"
        )
