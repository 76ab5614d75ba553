"""Failure accrual: consecutive failures, penalties with backoff, one probe (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.balance import (
    AccrualSettings,
    ConsecutiveFailures,
    EndpointBalancer,
    EndpointHandle,
    ProbeHandle,
)


def failures(n: int, cf: ConsecutiveFailures, now: float) -> None:
    for _ in range(n):
        cf.record(False, now)


def test_seven_consecutive_failures_penalise() -> None:
    cf = ConsecutiveFailures(rng=random.Random(1))
    failures(6, cf, 0.0)
    assert cf.available(0.0) and cf.state(0.0) == "healthy"
    cf.record(False, 0.0)
    assert not cf.available(0.0) and cf.state(0.0) == "penalised"


def test_a_success_resets_the_count() -> None:
    cf = ConsecutiveFailures(rng=random.Random(1))
    for _ in range(10):
        failures(6, cf, 0.0)
        cf.record(True, 0.0)
    assert cf.state(0.0) == "healthy" and cf.failures == 0


def test_penalty_is_min_backoff_plus_jitter() -> None:
    for seed in range(50):
        cf = ConsecutiveFailures(min_penalty=1.0, jitter_ratio=0.5, rng=random.Random(seed))
        failures(7, cf, 10.0)
        assert 11.0 <= cf.unavailable_until <= 11.5


def test_no_jitter_gives_exact_exponential_backoff_capped_at_max() -> None:
    cf = ConsecutiveFailures(min_penalty=1.0, max_penalty=10.0, jitter_ratio=0.0)
    failures(7, cf, 0.0)
    now = 0.0
    penalties = []
    for _ in range(6):
        penalties.append(cf.unavailable_until - now)
        now = cf.unavailable_until
        assert cf.state(now) == "probation"
        cf.record(False, now)  # the probe failed
    assert penalties == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_results_while_penalised_are_ignored() -> None:
    cf = ConsecutiveFailures(jitter_ratio=0.0, rng=random.Random(1))
    failures(7, cf, 0.0)
    cf.record(True, 0.5)  # a response to a request sent before the penalty
    assert cf.state(0.5) == "penalised"
    cf.record(False, 0.5)
    assert cf.unavailable_until == 1.0


def test_probation_allows_exactly_one_probe() -> None:
    cf = ConsecutiveFailures(jitter_ratio=0.0)
    failures(7, cf, 0.0)
    assert not cf.begin_probe(0.5)
    assert cf.available(1.0) and cf.state(1.0) == "probation"
    assert cf.begin_probe(1.0)
    assert not cf.available(1.0) and cf.state(1.0) == "probing"
    assert not cf.begin_probe(1.0)
    cf.record(True, 1.1)  # someone else's (stale) response: not the probe's
    assert cf.state(1.1) == "probing"
    cf.end_probe(True, 1.2)
    assert cf.state(1.2) == "healthy" and cf.available(1.2)


def test_a_failed_probe_penalises_again_for_longer_and_success_resets_the_backoff() -> None:
    cf = ConsecutiveFailures(min_penalty=1.0, max_penalty=60.0, jitter_ratio=0.0)
    failures(7, cf, 0.0)
    assert cf.begin_probe(1.0)
    cf.end_probe(False, 1.0)
    assert cf.unavailable_until == 3.0  # 2 s this time
    assert cf.begin_probe(3.0)
    cf.end_probe(True, 3.0)
    failures(7, cf, 10.0)
    assert cf.unavailable_until == 11.0  # back to the minimum


def test_an_abandoned_probe_puts_the_endpoint_back_on_probation() -> None:
    cf = ConsecutiveFailures(jitter_ratio=0.0)
    failures(7, cf, 0.0)
    assert cf.begin_probe(1.0)
    cf.abandon_probe()
    assert cf.state(1.0) == "probation" and cf.begin_probe(1.0)


def test_a_lost_probe_is_given_up_after_max_penalty() -> None:
    cf = ConsecutiveFailures(max_penalty=60.0, jitter_ratio=0.0)
    failures(7, cf, 0.0)
    assert cf.begin_probe(1.0)
    assert not cf.available(60.0)
    assert cf.available(61.0) and cf.begin_probe(61.0)


def test_without_a_claimed_probe_the_first_result_on_probation_decides() -> None:
    # Linkerd's breaker: the next response after the backoff is the probe's.
    cf = ConsecutiveFailures(jitter_ratio=0.0)
    failures(7, cf, 0.0)
    cf.record(False, 1.0)
    assert cf.state(1.0) == "penalised" and cf.unavailable_until == 3.0
    cf.record(True, 3.0)
    assert cf.state(3.0) == "healthy"


def test_settings_from_policy() -> None:
    assert AccrualSettings.from_policy(pb.FailureAccrual()) is None
    s = AccrualSettings.from_policy(
        pb.FailureAccrual(
            consecutive_failures=5, min_backoff_ms=500, max_backoff_ms=100, jitter_ratio=0.1
        )
    )
    assert s == AccrualSettings(5, 0.5, 0.5, 0.1)
    # Unset backoffs take Linkerd's defaults; the jitter ratio is as given (0: none).
    assert AccrualSettings.from_policy(pb.FailureAccrual(consecutive_failures=3)) == (
        AccrualSettings(3, 1.0, 60.0, 0.0)
    )


@pytest.mark.parametrize(
    "kw", [{"max_failures": 0}, {"min_penalty": 0.0}, {"min_penalty": 5.0, "max_penalty": 1.0}]
)
def test_bad_accrual_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AccrualSettings(**kw)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(st.tuples(st.booleans(), st.floats(0.0, 5.0)), max_size=200),
    seed=st.integers(0, 1000),
)
def test_never_penalised_with_fewer_than_max_failures_in_a_row(
    outcomes: list[tuple[bool, float]], seed: int
) -> None:
    cf = ConsecutiveFailures(max_failures=3, jitter_ratio=0.5, rng=random.Random(seed))
    now = 0.0
    run = 0
    for ok, dt in outcomes:
        now += dt
        was_healthy = cf.state(now) == "healthy"
        cf.record(ok, now)
        if was_healthy:
            run = 0 if ok else run + 1
            assert (cf.state(now) == "healthy") == (run < 3)
            if run >= 3:
                run = 0
        assert cf.unavailable_until <= now + 60.0 + 1e-9


# --- in the balancer ---------------------------------------------------------------------


def accruing(addrs: list[str], seed: int = 1) -> EndpointBalancer:
    """Endpoints that answered in 50 ms, but "a" (the one that will fail) in 5 ms.

    A penalised endpoint competes in P2C like any other once on probation (Linkerd's), so
    the tests make it the cheap one to see its probe picked.
    """
    b = EndpointBalancer(
        random.Random(seed), accrual=AccrualSettings(7, 1.0, 60.0, jitter_ratio=0.0)
    )
    b.update(addrs)  # no clock reading: the first samples replace the default
    for e in b.endpoints:
        e.finish(True, 0.005 if e.addr == "a" else 0.050, 0.0)
    return b


def fail(h: EndpointHandle, n: int, now: float) -> None:
    for _ in range(n):
        h.start()
        h.finish(False, 0.001, now)


def test_a_penalised_endpoint_is_not_picked_then_probed_once_then_recovers() -> None:
    b = accruing(["a", "b", "c"])
    bad = b.get("a")
    assert bad is not None
    fail(bad, 7, 0.5)
    assert all(b.pick(0.6) is not bad for _ in range(500))
    assert all(b.pick(1.4) is not bad for _ in range(500))

    # Probation from 1.5 s: the first pick of it is the probe, and no other pick gets it.
    picks = [b.pick(1.5) for _ in range(500)]
    probes = [p for p in picks if p is not None and p.addr == "a"]
    assert len(probes) == 1 and isinstance(probes[0], ProbeHandle)
    probe = probes[0]
    probe.start()
    assert bad.pending == probe.pending == 1
    probe.start()  # once only
    assert bad.pending == 1
    probe.finish(True, 0.002, 1.6)
    assert bad.pending == 0
    assert bad.accrual is not None and bad.accrual.state(1.6) == "healthy"
    assert any(b.pick(1.6) is bad for _ in range(500))


def test_a_failed_probe_means_a_longer_penalty() -> None:
    b = accruing(["a", "b"])
    bad = b.get("a")
    assert bad is not None and bad.accrual is not None
    fail(bad, 7, 0.0)
    probe = next(p for p in (b.pick(1.0) for _ in range(100)) if p is not None and p.addr == "a")
    probe.start()
    probe.finish(False, None, 1.1)
    assert bad.accrual.unavailable_until == pytest.approx(3.1)
    assert all(b.pick(3.0) is not bad for _ in range(100))


def test_a_cancelled_probe_lets_another_request_probe() -> None:
    b = accruing(["a", "b"])
    bad = b.get("a")
    assert bad is not None
    fail(bad, 7, 0.0)
    probe = next(p for p in (b.pick(1.0) for _ in range(100)) if p is not None and p.addr == "a")
    probe.cancel()  # never sent
    assert bad.pending == 0
    again = next(p for p in (b.pick(1.0) for _ in range(100)) if p is not None and p.addr == "a")
    assert isinstance(again, ProbeHandle)


def test_all_penalised_means_no_pick() -> None:
    b = accruing(["a", "b", "c"])
    for e in list(b.endpoints):
        fail(e, 7, 0.0)
    assert b.pick(0.5) is None
    one = accruing(["a"])
    fail(one.endpoints[0], 7, 0.0)
    assert one.pick(0.5) is None
    assert isinstance(one.pick(1.0), ProbeHandle)
    assert one.pick(1.0) is None  # the probe is out


def test_update_keeps_an_endpoints_penalty() -> None:
    b = accruing(["a", "b"])
    bad = b.get("a")
    assert bad is not None
    fail(bad, 7, 0.0)
    b.update(["a", "b", "c"])
    assert b.get("a") is bad
    assert all(b.pick(0.5) is not bad for _ in range(200))


def test_stale_failures_while_probing_do_not_decide_the_probe() -> None:
    b = accruing(["a", "b"])
    bad = b.get("a")
    assert bad is not None and bad.accrual is not None
    for _ in range(3):
        bad.start()  # slow requests, still in flight when the penalty comes
    fail(bad, 7, 0.0)
    probe = next(p for p in (b.pick(1.0) for _ in range(100)) if p is not None and p.addr == "a")
    probe.start()
    bad.finish(False, 2.0, 1.5)  # an old request's failure
    assert bad.accrual.state(1.5) == "probing"
    probe.finish(True, 0.002, 1.6)
    assert bad.accrual.state(1.6) == "healthy"


def test_a_probe_connection_decides_at_connect_and_holds_the_endpoints_load() -> None:
    b = accruing(["a", "b"])
    bad = b.get("a")
    assert bad is not None and bad.accrual is not None
    fail(bad, 7, 0.0)
    probe = next(p for p in (b.pick(1.0) for _ in range(100)) if p is not None and p.addr == "a")
    assert isinstance(probe, ProbeHandle)
    probe.start()
    load = probe.hold()
    probe.finish(True, 0.002, 1.1)  # connected: the probe succeeded
    assert bad.accrual.state(1.1) == "healthy"
    assert bad.pending == 1  # the open connection is the endpoint's, not the probe's
    load.release()
    assert bad.pending == 0


def test_pick_other_skips_penalised_endpoints_and_carries_a_probe() -> None:
    b = accruing(["a", "b", "c"])
    c = b.get("c")
    assert c is not None
    fail(c, 7, 0.0)
    assert all(b.pick_other(0.5, "a") is b.get("b") for _ in range(100))
    fail(b.endpoints[1], 7, 0.5)  # b penalised too: nothing but a, which failed
    assert b.pick_other(0.6, "a") is None
    probe = b.pick_other(1.5, "a")  # c's penalty is over: its probe
    assert isinstance(probe, ProbeHandle) and probe.addr == "c"
