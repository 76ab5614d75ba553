"""Per-request balancing over a service's endpoints: power of two choices over peak-EWMA cost.

Theory of operation (linkerd2-proxy's balancer): every endpoint's cost is its peak-EWMA
latency estimate times (pending requests + 1). A pick draws two distinct endpoints at random
among those available and takes the cheaper, so slow or busy endpoints get less traffic
without any endpoint being starved of the samples that would show it has recovered.
Failure accrual (optional) takes endpoints that keep failing out of the draw; when an
endpoint's penalty ends, the pick that chooses it carries its one probe.

The handle a pick returns is the endpoint's own state (no allocation per pick), except for a
probe, whose handle is a small object of its own so that only the probe's outcome decides
the probation. Callers report through the handle:

    h = balancer.pick(now)     # None: no endpoint available (none, or all penalised)
    h.start()                  # the request is sent (TCP: the connect begins)
    h.finish(ok, rtt, now)     # the response (TCP: connected, or failed to) or a failure
    h.cancel()                 # abandoned after start, without an outcome

`rtt` is the time to the response headers (TCP: the connect time), or for a failure the
time the attempt took (None if unknown). `ok` is False for 5xx, connect errors and timeouts,
and feeds failure accrual. A failure is a latency sample no better than the estimate held
before it: a fast refusal must not make an endpoint look fast, and an endpoint that only
fails must not look ever cheaper as its estimate decays with no sample (it would draw
traffic until accrual, if configured, stepped in), while a try that timed out counts for
all the time it took.

An opaque TCP connection is its endpoint's load for as long as it is open (Linkerd weighs TCP
endpoints by the connections they hold), not only while it connects. It takes hold of that
load before it reports the connect, and lets it go when it closes:

    load = h.hold()            # connected: one pending for the endpoint until...
    h.finish(True, rtt, now)   # (the connect's outcome and time, as for a request)
    load.release()             # ...the connection closes

A failed connect reports the connect timeout as its `rtt`: an endpoint that refuses holds no
connection, and would otherwise look the least loaded of all. The connection may then go
to another endpoint: `balancer.pick_other(now, h.addr)`.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable

from gossamer.proxy.balance.accrual import AccrualSettings, ConsecutiveFailures
from gossamer.proxy.balance.ewma import PeakEwma


def _failure_sample(ewma: PeakEwma, rtt: float | None, now: float) -> float:
    """A failed attempt's latency sample: what it took, but never less than the estimate
    held before it (not even its decay since: failures alone must not wear it down)."""
    held = ewma.held
    return held if rtt is None or rtt < held else rtt


class EndpointHandle:
    """One endpoint's balancing state; what `EndpointBalancer.pick` returns."""

    __slots__ = ("accrual", "addr", "ewma", "pending")

    def __init__(
        self, addr: Hashable, ewma: PeakEwma, accrual: ConsecutiveFailures | None = None
    ) -> None:
        self.addr = addr
        self.ewma = ewma
        self.accrual = accrual
        self.pending = 0

    def start(self) -> None:
        self.pending += 1

    def finish(self, success: bool, rtt: float | None, now: float) -> None:
        pending = self.pending - 1
        self.pending = pending if pending > 0 else 0
        ewma = self.ewma
        if not success:
            rtt = _failure_sample(ewma, rtt, now)
        if rtt is not None:
            ewma.observe(rtt, now)
        accrual = self.accrual
        if accrual is not None:
            accrual.record(success, now)

    def cancel(self) -> None:
        if self.pending > 0:
            self.pending -= 1

    def hold(self) -> ConnectionLoad:
        """Counts one open connection in this endpoint's load until it is released."""
        return ConnectionLoad(self)

    def cost(self, now: float) -> float:
        return self.ewma.estimate(now) * (self.pending + 1)

    def __repr__(self) -> str:
        return f"EndpointHandle({self.addr!r}, pending={self.pending}, {self.ewma!r})"


class ProbeHandle(EndpointHandle):
    """The handle of the one request that probes an endpoint on probation."""

    __slots__ = ("_endpoint", "_started")

    def __init__(self, endpoint: EndpointHandle) -> None:
        # Not EndpointHandle.__init__: `pending` is the endpoint's, not the probe's.
        self.addr = endpoint.addr
        self.ewma = endpoint.ewma
        self.accrual = endpoint.accrual
        self._endpoint = endpoint
        self._started = False

    @property
    def pending(self) -> int:
        return self._endpoint.pending

    @pending.setter
    def pending(self, value: int) -> None:
        self._endpoint.pending = value

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._endpoint.start()

    def finish(self, success: bool, rtt: float | None, now: float) -> None:
        if self._started:
            self._started = False
            self._endpoint.cancel()
        if not success:
            rtt = _failure_sample(self.ewma, rtt, now)
        if rtt is not None:
            self.ewma.observe(rtt, now)
        if self.accrual is not None:
            self.accrual.end_probe(success, now)

    def cancel(self) -> None:
        if self._started:
            self._started = False
            self._endpoint.cancel()
        if self.accrual is not None:
            self.accrual.abandon_probe()

    def hold(self) -> ConnectionLoad:
        # The load is the endpoint's and outlives the probe, which its connect decides.
        return ConnectionLoad(self._endpoint)


class ConnectionLoad:
    """One open connection's share of its endpoint's load (one pending), until `release`.

    Releasing again does nothing, so every path that ends a connection may release it.
    """

    __slots__ = ("_endpoint",)

    def __init__(self, endpoint: EndpointHandle) -> None:
        endpoint.pending += 1
        self._endpoint: EndpointHandle | None = endpoint

    def release(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None and endpoint.pending > 0:
            endpoint.pending -= 1

    def __repr__(self) -> str:
        return f"ConnectionLoad({self._endpoint!r})"


class EndpointBalancer:
    """P2C over peak-EWMA cost among a service's current endpoints."""

    def __init__(
        self,
        rng: random.Random,
        *,
        default_rtt: float = 0.030,
        decay: float = 10.0,
        accrual: AccrualSettings | None = None,
    ) -> None:
        PeakEwma(default_rtt, decay)  # validates
        self._rng = rng
        self._random = rng.random
        self._default_rtt = default_rtt
        self._decay = decay
        self._accrual = accrual
        self._endpoints: list[EndpointHandle] = []
        self._by_addr: dict[Hashable, EndpointHandle] = {}
        # Endpoints added without a clock reading: their default estimate starts to decay
        # at the next pick (Linkerd decays it from the endpoint's creation).
        self._unstarted: list[EndpointHandle] = []

    @property
    def endpoints(self) -> list[EndpointHandle]:
        """The current endpoints, in the order last given to `update` (do not mutate)."""
        return self._endpoints

    def __len__(self) -> int:
        return len(self._endpoints)

    def get(self, addr: Hashable) -> EndpointHandle | None:
        return self._by_addr.get(addr)

    def update(self, addrs: Iterable[Hashable], *, now: float | None = None) -> None:
        """The endpoints are now `addrs`: remaining ones keep their state, gone ones are dropped.

        Handles of dropped endpoints stay usable (their outcomes just no longer matter).
        """
        old = self._by_addr
        by_addr: dict[Hashable, EndpointHandle] = {}
        for addr in addrs:
            if addr in by_addr:
                continue
            endpoint = old.get(addr)
            if endpoint is None:
                endpoint = EndpointHandle(
                    addr,
                    PeakEwma(self._default_rtt, self._decay, now=now),
                    None
                    if self._accrual is None
                    else ConsecutiveFailures.from_settings(self._accrual, self._rng),
                )
                if now is None:
                    self._unstarted.append(endpoint)
            by_addr[addr] = endpoint
        self._by_addr = by_addr
        self._endpoints = list(by_addr.values())
        if self._unstarted:  # bounded even if updates come and no pick does
            self._unstarted = [e for e in self._unstarted if by_addr.get(e.addr) is e]

    def pick(self, now: float) -> EndpointHandle | None:
        """The endpoint for the next request; None when none is available."""
        if self._unstarted:
            self._start_estimates(now)
        endpoints = self._endpoints
        n = len(endpoints)
        if n > 2:
            rand = self._random
            i = int(rand() * n)
            j = int(rand() * (n - 1))
            if j >= i:
                j += 1
            a = endpoints[i]
            b = endpoints[j]
        elif n == 2:
            a, b = endpoints
        elif n == 1:
            a = endpoints[0]
            if a.accrual is not None and a.accrual.penalised:
                return self._pick_gated(now)
            return a
        else:
            return None
        if self._accrual is not None:
            aa = a.accrual
            ba = b.accrual
            if (aa is not None and aa.penalised) or (ba is not None and ba.penalised):
                return self._pick_gated(now)
        cost_a = a.ewma.estimate(now) * (a.pending + 1)
        cost_b = b.ewma.estimate(now) * (b.pending + 1)
        if cost_a < cost_b:
            return a
        if cost_b < cost_a:
            return b
        # A tie (fresh endpoints): a coin, or two endpoints would always start with the first.
        return a if self._random() < 0.5 else b

    def pick_other(self, now: float, addr: Hashable) -> EndpointHandle | None:
        """An endpoint other than `addr`, for a connect to `addr` that failed: P2C among
        the other available endpoints (so a second bad one loses to any good one); None
        when there is no other."""
        if self._unstarted:
            self._start_estimates(now)
        available = [e for e in self._endpoints if e.accrual is None or e.accrual.available(now)]
        return self._draw([e for e in available if e.addr != addr], now)

    def _pick_gated(self, now: float) -> EndpointHandle | None:
        # Some endpoint is penalised or on probation: draw among the available ones only.
        available = [e for e in self._endpoints if e.accrual is None or e.accrual.available(now)]
        return self._draw(available, now)

    def _draw(self, available: list[EndpointHandle], now: float) -> EndpointHandle | None:
        """P2C among `available`; a penalised endpoint's pick is its probe."""
        n = len(available)
        if n == 0:
            return None
        if n == 1:
            chosen = available[0]
        else:
            rand = self._random
            i = int(rand() * n)
            j = int(rand() * (n - 1))
            if j >= i:
                j += 1
            a = available[i]
            b = available[j]
            chosen = a if a.cost(now) <= b.cost(now) else b
        accrual = chosen.accrual
        if accrual is not None and accrual.penalised:
            accrual.begin_probe(now)
            return ProbeHandle(chosen)
        return chosen

    def _start_estimates(self, now: float) -> None:
        for endpoint in self._unstarted:
            endpoint.ewma.start(now)
        self._unstarted.clear()
