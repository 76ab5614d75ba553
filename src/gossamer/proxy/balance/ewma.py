"""Peak-EWMA latency estimate of one endpoint, as linkerd2-proxy (tower's PeakEwma) keeps it.

Theory of operation: the estimate jumps up to any sample above it (so one slow response
makes an endpoint look slow at once) and moves down towards faster samples only gradually:
a sample below the estimate is blended in with the old value weighted `exp(-elapsed /
decay)`, `elapsed` being the time since the previous sample. Between samples the estimate
decays towards zero at the same rate, so an endpoint that the balancer has been avoiding
looks cheaper as time passes and is tried again (Linkerd's idle decay): a sample is compared
with, and blended into, that decayed value.

Until its first sample an endpoint is estimated at `default_rtt`. If `now` is given at
construction the default decays from then, as Linkerd's does, so that a new endpoint among
much faster ones is still tried eventually; without it the default holds until the first
sample, which replaces it outright.
"""

from __future__ import annotations

import math

_NO_SAMPLE = math.inf  # `_at` before any sample: `now <= _at` keeps the default, undecayed


class PeakEwma:
    __slots__ = ("_at", "_est", "_k", "decay", "default_rtt")

    def __init__(
        self, default_rtt: float = 0.030, decay: float = 10.0, *, now: float | None = None
    ) -> None:
        if default_rtt < 0 or decay <= 0:
            raise ValueError("default_rtt must be >= 0 and decay > 0")
        self.default_rtt = default_rtt
        self.decay = decay
        self._k = -1.0 / decay
        self._est = default_rtt
        self._at = _NO_SAMPLE if now is None else now

    def start(self, now: float) -> None:
        """Starts decaying the default estimate at `now`, if no sample or start came before."""
        if self._at == _NO_SAMPLE:
            self._at = now

    def estimate(self, now: float) -> float:
        """The estimate at `now`, in seconds (decayed since the last sample; not mutating)."""
        at = self._at
        if now <= at:
            return self._est
        return self._est * math.exp((now - at) * self._k)

    @property
    def held(self) -> float:
        """The estimate as of the last sample (or the default), before any decay since."""
        return self._est

    def observe(self, rtt: float, now: float) -> None:
        """Feeds one latency sample (seconds) taken at `now`."""
        at = self._at
        if at == _NO_SAMPLE:
            # The first sample says more than the configured guess does.
            self._est = rtt
            self._at = now
        elif now > at:
            w = math.exp((now - at) * self._k)
            decayed = self._est * w
            self._est = rtt if rtt > decayed else decayed + rtt * (1.0 - w)
            self._at = now
        elif rtt > self._est:
            # Same instant (or a clock that went back): no time to blend over, only the peak.
            self._est = rtt

    def __repr__(self) -> str:
        return f"PeakEwma(est={self._est:.6f}, at={self._at})"
