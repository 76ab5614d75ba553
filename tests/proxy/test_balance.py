"""Peak-EWMA and the P2C endpoint balancer (pure: simulated clock, seeded randomness)."""

from __future__ import annotations

import heapq
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.proxy.balance import ConnectionLoad, EndpointBalancer, EndpointHandle, PeakEwma

# --- PeakEwma ---------------------------------------------------------------------------


def test_default_estimate_holds_until_the_first_sample_which_replaces_it() -> None:
    ewma = PeakEwma(default_rtt=0.030, decay=10.0)
    assert ewma.estimate(0.0) == 0.030
    assert ewma.estimate(1000.0) == 0.030  # no clock reading yet: nothing to decay from
    ewma.observe(0.002, 5.0)
    assert ewma.estimate(5.0) == 0.002


def test_a_sample_above_the_estimate_replaces_it_at_once() -> None:
    ewma = PeakEwma()
    ewma.observe(0.010, 0.0)
    ewma.observe(0.200, 0.001)
    assert ewma.estimate(0.001) == 0.200


def test_a_sample_below_the_estimate_is_blended_in_with_weight_exp_minus_elapsed_over_decay() -> (
    None
):
    ewma = PeakEwma(decay=10.0)
    ewma.observe(0.100, 0.0)
    ewma.observe(0.010, 5.0)
    w = math.exp(-5.0 / 10.0)
    assert ewma.estimate(5.0) == pytest.approx(0.100 * w + 0.010 * (1 - w))


def test_samples_below_the_estimate_bring_it_down_gradually() -> None:
    ewma = PeakEwma(decay=10.0)
    ewma.observe(0.100, 0.0)
    t = 0.0
    for _ in range(100):  # 10 s of 10 ms responses every 100 ms
        t += 0.1
        ewma.observe(0.010, t)
    assert 0.010 < ewma.estimate(t) < 0.100 * math.exp(-1.0) + 0.01


def test_the_estimate_decays_towards_zero_while_idle() -> None:
    ewma = PeakEwma(decay=10.0)
    ewma.observe(0.080, 0.0)
    assert ewma.estimate(10.0) == pytest.approx(0.080 * math.exp(-1.0))
    assert ewma.estimate(100.0) < 0.0001
    # Asking does not change anything.
    assert ewma.estimate(10.0) == pytest.approx(0.080 * math.exp(-1.0))


def test_with_a_start_time_the_default_decays_like_linkerds() -> None:
    ewma = PeakEwma(default_rtt=0.030, decay=10.0, now=100.0)
    assert ewma.estimate(110.0) == pytest.approx(0.030 * math.exp(-1.0))
    ewma.observe(0.001, 100.001)  # first sample: blended into the default, not a replacement
    assert ewma.estimate(100.001) > 0.029


def test_same_instant_samples_only_raise_the_estimate() -> None:
    ewma = PeakEwma()
    ewma.observe(0.050, 1.0)
    ewma.observe(0.010, 1.0)
    assert ewma.estimate(1.0) == 0.050
    ewma.observe(0.010, 0.5)  # a clock reading from the past
    assert ewma.estimate(1.0) == 0.050
    ewma.observe(0.070, 1.0)
    assert ewma.estimate(1.0) == 0.070


@pytest.mark.parametrize("args", [(-0.1, 10.0), (0.03, 0.0), (0.03, -1.0)])
def test_bad_ewma_settings_are_refused(args: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        PeakEwma(*args)


# --- EndpointBalancer ------------------------------------------------------------------


def balancer(addrs: list[str], seed: int = 1, **kw: object) -> EndpointBalancer:
    b = EndpointBalancer(random.Random(seed), **kw)  # type: ignore[arg-type]
    b.update(addrs, now=0.0)
    return b


def test_no_endpoints_no_pick() -> None:
    assert balancer([]).pick(0.0) is None


def test_one_endpoint_is_always_the_pick() -> None:
    b = balancer(["a"])
    h = b.pick(0.0)
    assert h is not None and h.addr == "a"
    h.start()
    assert b.pick(0.0) is h  # however loaded


def simulate(
    latencies: dict[str, float], *, rps: float, seconds: float, seed: int = 7
) -> dict[str, int]:
    """Poisson arrivals; each request completes after its endpoint's latency (+-20% noise)."""
    rng = random.Random(seed)  # the workload's; the balancer's draws are its own
    b = balancer(list(latencies), seed=seed + 1000)
    picks = dict.fromkeys(latencies, 0)
    done: list[tuple[float, int, EndpointHandle, float]] = []
    t = 0.0
    n = 0
    while t < seconds:
        t += rng.expovariate(rps)
        while done and done[0][0] <= t:
            at, _, h, rtt = heapq.heappop(done)
            h.finish(True, rtt, at)
        h = b.pick(t)
        assert h is not None
        h.start()
        picks[h.addr] += 1  # type: ignore[index]
        rtt = latencies[h.addr] * rng.uniform(0.8, 1.2)  # type: ignore[index]
        n += 1
        heapq.heappush(done, (t + rtt, n, h, rtt))
    return picks


def test_an_endpoint_50ms_slower_gets_clearly_less_than_a_third_of_the_picks() -> None:
    picks = simulate({"fast1": 0.010, "fast2": 0.010, "slow": 0.060}, rps=200, seconds=60)
    total = sum(picks.values())
    assert picks["slow"] / total < 0.15, picks
    # The fast ones share the rest about evenly.
    assert abs(picks["fast1"] - picks["fast2"]) / total < 0.1, picks


def test_the_slow_endpoint_still_gets_some_traffic_to_show_if_it_recovered() -> None:
    picks = simulate({"fast1": 0.010, "fast2": 0.010, "slow": 0.060}, rps=200, seconds=60)
    assert picks["slow"] > 0


def test_equal_endpoints_share_the_load_evenly() -> None:
    picks = simulate({"a": 0.020, "b": 0.020, "c": 0.020}, rps=300, seconds=30)
    total = sum(picks.values())
    for count in picks.values():
        assert abs(count / total - 1 / 3) < 0.05, picks


def test_pending_requests_shift_picks_away() -> None:
    b = balancer(["a", "b", "c"])
    for h in (b.get("a"), b.get("b"), b.get("c")):
        assert h is not None
        h.finish(True, 0.010, 0.0)
    busy = b.get("a")
    assert busy is not None
    for _ in range(5):
        busy.start()
    picks = [b.pick(0.0) for _ in range(3000)]
    assert busy not in picks  # 6x the cost: the other candidate always wins
    assert {p.addr for p in picks if p is not None} == {"b", "c"}


def test_cancel_drops_pending_without_a_sample() -> None:
    b = balancer(["a"])
    h = b.pick(0.0)
    assert h is not None
    h.start()
    h.cancel()
    assert h.pending == 0
    assert h.ewma.estimate(0.0) == 0.030
    h.cancel()  # never below zero: a negative count would make the endpoint look free
    h.finish(True, 0.01, 1.0)
    assert h.pending == 0


def test_a_failure_never_makes_an_endpoint_look_faster() -> None:
    b = balancer(["a"])
    h = b.pick(0.0)
    assert h is not None
    h.finish(True, 0.050, 1.0)
    # Refused in 0.1 ms, or with no time at all: the estimate held before stays.
    h.finish(False, 0.0001, 5.0)
    assert h.ewma.estimate(5.0) == pytest.approx(0.050)
    h.finish(False, None, 9.0)
    assert h.ewma.estimate(9.0) == pytest.approx(0.050)
    # A try that timed out after 200 ms counts for all of it.
    h.finish(False, 0.200, 9.5)
    assert h.ewma.estimate(9.5) == pytest.approx(0.200)


def test_an_endpoint_that_only_fails_stays_expensive_while_others_answer() -> None:
    """Failures keep an endpoint's estimate from decaying toward zero, so P2C does not
    come to prefer the one endpoint that never answers."""
    b = balancer(["ok1", "ok2", "bad"], seed=5)
    now, first_tries_on_bad = 0.0, 0
    for i in range(600):
        now += 0.01
        h = b.pick(now)
        assert h is not None
        h.start()
        if h.addr == "bad":
            first_tries_on_bad += i >= 100
            h.finish(False, 0.0002, now)
        else:
            h.finish(True, 0.001, now)
    assert first_tries_on_bad < 10, first_tries_on_bad


def test_two_endpoints_the_cheaper_wins_every_time() -> None:
    b = balancer(["a", "b"])
    a, bb = b.get("a"), b.get("b")
    assert a is not None and bb is not None
    a.finish(True, 0.050, 1.0)
    bb.finish(True, 0.005, 1.0)
    assert all(b.pick(1.0) is bb for _ in range(100))


def test_update_keeps_remaining_endpoints_state_adds_new_and_drops_gone() -> None:
    b = balancer(["a", "b", "c"])
    a = b.get("a")
    assert a is not None
    a.start()
    a.finish(True, 0.080, 1.0)
    a.start()
    b.update(["a", "c", "d", "a"])
    assert [e.addr for e in b.endpoints] == ["a", "c", "d"]
    assert b.get("a") is a and a.pending == 1 and a.ewma.estimate(1.0) == 0.080
    assert b.get("b") is None
    assert len(b) == 3
    new = b.get("d")
    assert new is not None and new.pending == 0
    b.update([])
    assert b.pick(2.0) is None
    a.finish(True, 0.01, 3.0)  # a dropped endpoint's handle still works


def test_new_endpoints_without_a_clock_start_decaying_at_the_next_pick() -> None:
    b = EndpointBalancer(random.Random(1))
    b.update(["a", "b"])
    b.pick(100.0)
    a = b.get("a")
    assert a is not None
    assert a.ewma.estimate(110.0) == pytest.approx(0.030 * math.exp(-1.0))


def test_a_newly_added_endpoint_gets_traffic_within_linkerds_decay() -> None:
    # An old endpoint at 2 ms and a new one at the 30 ms default, one request at a time:
    # the default decays, so the new endpoint is tried within about decay*ln(30/2) s.
    b = EndpointBalancer(random.Random(3))
    b.update(["old"], now=0.0)
    t = 0.0
    for _ in range(100):
        h = b.pick(t)
        assert h is not None
        h.start()
        h.finish(True, 0.002, t + 0.002)
        t += 0.01
    b.update(["old", "new"], now=t)
    seen_new_at = None
    while t < 120.0:
        h = b.pick(t)
        assert h is not None
        h.start()
        if h.addr == "new" and seen_new_at is None:
            seen_new_at = t
        h.finish(True, 0.002, t + 0.002)
        t += 0.05
    assert seen_new_at is not None and seen_new_at < 60.0


@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(st.tuples(st.floats(0.0001, 1.0), st.integers(0, 20)), min_size=2, max_size=8),
    seed=st.integers(0, 2**32),
)
def test_p2c_never_picks_the_single_most_expensive_endpoint(
    costs: list[tuple[float, int]], seed: int
) -> None:
    b = balancer([str(i) for i in range(len(costs))], seed=seed)
    for e, (rtt, pending) in zip(b.endpoints, costs, strict=True):
        e.finish(True, rtt, 0.0)
        e.pending = pending
    by_cost = sorted(b.endpoints, key=lambda e: e.cost(0.0))
    worst = by_cost[-1]
    unique_worst = worst.cost(0.0) > by_cost[-2].cost(0.0)
    for _ in range(20):
        h = b.pick(0.0)
        assert h is not None
        if unique_worst:
            assert h is not worst


def test_a_tie_between_two_fresh_endpoints_is_a_coin_toss() -> None:
    b = balancer(["a", "b"])
    picks = [h.addr for h in (b.pick(0.0) for _ in range(2000)) if h is not None]
    assert 800 < picks.count("a") < 1200


def test_endpoints_churned_before_any_pick_are_not_kept() -> None:
    b = EndpointBalancer(random.Random(1))
    for i in range(100):
        b.update([f"10.0.0.{i}", "stable"])
    assert len(b._unstarted) == 2


# --- TCP connections: the load is held until the connection closes ---------------------


def connected(h: EndpointHandle, connect_time: float, now: float) -> ConnectionLoad:
    """What the TCP handler does once a connect succeeds."""
    load = h.hold()
    h.finish(True, connect_time, now)
    return load


def test_an_open_connection_stays_pending_after_its_connect_finished() -> None:
    b = EndpointBalancer(random.Random(1))
    b.update(["a"])  # no clock: the first sample replaces the default
    a = b.get("a")
    assert a is not None
    a.start()
    assert a.pending == 1  # connecting
    load = connected(a, 0.001, 0.1)
    assert a.pending == 1  # connected: still the endpoint's load
    assert a.ewma.estimate(0.1) == 0.001  # the connect time is the latency sample
    load.release()  # closed
    assert a.pending == 0
    load.release()  # every path that ends a connection may release it
    assert a.pending == 0


def test_open_connections_shift_new_connections_away() -> None:
    b = balancer(["a", "b"])
    for e in b.endpoints:
        e.start()
        connected(e, 0.001, 0.0).release()
    first = b.pick(0.0)
    assert first is not None
    first.start()
    held = connected(first, 0.001, 0.0)
    # Two endpoints with equal estimates: the one holding a connection is never the pick.
    assert all(b.pick(0.0) is not first for _ in range(100))
    held.release()
    picks = {h.addr for h in (b.pick(0.0) for _ in range(100)) if h is not None}
    assert picks == {"a", "b"}


def test_a_released_load_never_takes_the_count_below_zero() -> None:
    b = balancer(["a"])
    a = b.get("a")
    assert a is not None
    load = a.hold()
    a.pending = 0  # the count was reset under it (say, by a cancel too many)
    load.release()
    assert a.pending == 0


def simulate_connections(
    lifetimes: dict[str, float], *, cps: float, seconds: float, seed: int = 11
) -> dict[str, int]:
    """Poisson connection arrivals; each connects in 1 ms (every endpoint alike) and stays
    open for its endpoint's lifetime (+-20%)."""
    rng = random.Random(seed)
    b = balancer(list(lifetimes), seed=seed + 1000)
    picks = dict.fromkeys(lifetimes, 0)
    closes: list[tuple[float, int, ConnectionLoad]] = []
    t = 0.0
    n = 0
    while t < seconds:
        t += rng.expovariate(cps)
        while closes and closes[0][0] <= t:
            heapq.heappop(closes)[2].release()
        h = b.pick(t)
        assert h is not None
        h.start()
        picks[h.addr] += 1  # type: ignore[index]
        load = connected(h, 0.001, t + 0.001)
        n += 1
        lifetime = lifetimes[h.addr] * rng.uniform(0.8, 1.2)  # type: ignore[index]
        heapq.heappush(closes, (t + lifetime, n, load))
    return picks


def test_an_endpoint_holding_its_connections_longer_gets_fewer_new_ones() -> None:
    # Same connect latency everywhere: only the open connections tell the endpoints apart.
    picks = simulate_connections({"a": 0.010, "b": 0.010, "slow": 0.200}, cps=200, seconds=30)
    total = sum(picks.values())
    assert picks["slow"] / total < 0.15, picks  # round robin would give it a third
    assert picks["slow"] > 0, picks
    assert abs(picks["a"] - picks["b"]) / total < 0.1, picks


def test_pick_other_never_gives_the_endpoint_that_failed() -> None:
    b = balancer(["a", "b", "c"])
    for _ in range(300):
        h = b.pick_other(0.0, "a")
        assert h is not None and h.addr != "a"
    assert balancer(["a"]).pick_other(0.0, "a") is None
    assert balancer([]).pick_other(0.0, "a") is None
    only = balancer(["a", "b"]).pick_other(0.0, "a")
    assert only is not None and only.addr == "b"


def test_pick_other_takes_the_cheaper_of_the_rest() -> None:
    # A second bad endpoint is never handed over while it loses to every other one.
    b = balancer(["a", "b", "c"])
    for e, rtt in zip(b.endpoints, (0.001, 0.050, 0.002), strict=True):
        e.finish(True, rtt, 0.0)
    assert all(b.pick_other(0.0, "a") is b.get("c") for _ in range(100))


def refusing_picks(failure_rtt: float | None, seconds: float = 30.0) -> tuple[int, int]:
    """Connections to two live endpoints and one refusing every connect, the refused ones
    tried again elsewhere (as tcp.py does); (connects tried on the refusing one, total)."""
    rng = random.Random(3)
    b = balancer(["a", "b", "dead"], seed=4)
    closes: list[tuple[float, int, ConnectionLoad]] = []
    t, n, refused = 0.0, 0, 0
    while t < seconds:
        t += rng.expovariate(100)
        while closes and closes[0][0] <= t:
            heapq.heappop(closes)[2].release()
        h = b.pick(t)
        assert h is not None
        h.start()
        if h.addr == "dead":
            refused += 1
            h.finish(False, failure_rtt, t + 0.0005)
            h = b.pick_other(t, "dead")
            assert h is not None and h.addr != "dead"
            h.start()
        n += 1
        heapq.heappush(closes, (t + 0.050, n, connected(h, 0.001, t + 0.001)))
    return refused, n


def test_an_endpoint_that_refuses_is_avoided_when_a_refusal_costs_a_connect_timeout() -> None:
    refused, total = refusing_picks(failure_rtt=1.0)
    assert refused <= 3, (refused, total)
    # Without one, the refusal keeps only the estimate held before (a failure never lowers
    # it), while the live endpoints' estimates are still coming down from the default: the
    # refusing one, holding no connection, is tried far more often.
    refused_untimed, total = refusing_picks(failure_rtt=None)
    assert refused_untimed > 20 * max(refused, 1), (refused_untimed, total)
