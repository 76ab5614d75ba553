"""Per-request load balancing over a service's endpoints. Pure: no I/O, no asyncio.

Clocks (`now`, seconds, monotonic) and randomness (`random.Random`) come from the caller, so
tests drive the balancer with a simulated clock and a seeded generator.

- `PeakEwma`: one endpoint's peak-EWMA latency estimate (linkerd2-proxy's).
- `ConsecutiveFailures`, `AccrualSettings`: failure accrual with backoff and one probe.
- `EndpointBalancer`, `EndpointHandle`: power of two choices over estimate x (pending + 1).
- `ConnectionLoad`: an open TCP connection counted in its endpoint's pending until it closes.
"""

from gossamer.proxy.balance.accrual import AccrualSettings, AccrualState, ConsecutiveFailures
from gossamer.proxy.balance.ewma import PeakEwma
from gossamer.proxy.balance.p2c import (
    ConnectionLoad,
    EndpointBalancer,
    EndpointHandle,
    ProbeHandle,
)

__all__ = [
    "AccrualSettings",
    "AccrualState",
    "ConnectionLoad",
    "ConsecutiveFailures",
    "EndpointBalancer",
    "EndpointHandle",
    "PeakEwma",
    "ProbeHandle",
]
