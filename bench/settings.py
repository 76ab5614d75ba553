"""How long and how hard each run drives a scenario, and which CPU each process gets."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Load shape of one benchmark run; the same for every scenario so rows compare."""

    name: str
    rounds: int
    warmup_s: int
    throughput_s: int
    latency_s: int
    # Closed-loop throughput: wrk (HTTP/1.1) and h2load (HTTP/2) keep this many in flight.
    h1_connections: int = 32
    h2_connections: int = 16
    h2_streams: int = 10
    # Open-loop latency: this many requests per second in total, far below every
    # scenario's saturation, spread over `latency_rate / LATENCY_RPS_PER_CONNECTION`
    # connections whose start times are staggered.
    latency_rate: int = 2000


# h2load's --rps timer fires at most every 10 ms, so 100 rps per connection means exactly
# one request per tick; more would send bursts of two back to back on one HTTP/1 connection.
LATENCY_RPS_PER_CONNECTION = 100

QUICK = RunSettings("quick", rounds=1, warmup_s=1, throughput_s=3, latency_s=3)
FULL = RunSettings("full", rounds=3, warmup_s=1, throughput_s=8, latency_s=6)


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """`taskset` CPU lists: load generators and origins on one core, proxies on the other.

    The proxies under test get a core of their own, so a scenario's throughput is what its
    proxies can do on one core (both hops of a chain share it), unless the load side's core
    saturates first; `cpu_busy` in the results shows which one did.
    """

    load: str
    proxy: str
    pinned: bool

    @classmethod
    def for_this_machine(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(load=str(cpus[0]), proxy=str(cpus[0]), pinned=False)
        return cls(load=str(cpus[0]), proxy=str(cpus[1]), pinned=True)

    def taskset(self, role: str) -> list[str]:
        """The argv prefix that pins a process to the CPU of `role` ("load" or "proxy")."""
        return ["taskset", "-c", self.load if role == "load" else self.proxy]
