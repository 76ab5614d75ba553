"""Retry budget and retry conditions (pure: the caller's clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.retry import RetryBudget, RetryCondition

# --- RetryBudget -------------------------------------------------------------------------


def withdrawals(budget: RetryBudget, now: float, tries: int = 10_000) -> int:
    return sum(budget.withdraw(now) for _ in range(tries))


def test_a_quiet_service_may_retry_min_per_second_times_ttl() -> None:
    assert withdrawals(RetryBudget(ratio=0.2, min_per_second=10, ttl=10.0), 0.0) == 100


def test_retries_are_capped_at_ratio_of_requests_plus_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=10, ttl=10.0)
    for i in range(1000):
        budget.deposit(i / 100)  # 100 rps for 10 s
    assert withdrawals(budget, 9.99) == 100 + 200


def test_the_floor_can_be_zero() -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0, ttl=10.0)
    assert not budget.withdraw(0.0)
    for _ in range(10):
        budget.deposit(0.0)
    assert withdrawals(budget, 0.0) == 5


def test_requests_and_retries_older_than_ttl_are_forgotten() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=1, ttl=10.0)
    for _ in range(100):
        budget.deposit(0.5)
    assert withdrawals(budget, 0.5) == 10 + 20
    assert withdrawals(budget, 5.0) == 0  # still inside the window
    # Ten buckets later the window is empty again: only the floor.
    assert withdrawals(budget, 10.5) == 10


def test_the_window_slides_bucket_by_bucket() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0, ttl=3.0)
    budget.deposit(0.1)  # bucket 0
    budget.deposit(1.1)  # bucket 1
    budget.deposit(2.1)  # bucket 2
    assert budget.remaining(2.5) == 3
    assert budget.remaining(3.5) == 2  # bucket 0 left the window
    assert budget.remaining(4.5) == 1
    assert budget.remaining(100.0) == 0


def test_a_clock_reading_from_the_past_counts_in_the_current_bucket() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0, ttl=10.0)
    budget.deposit(5.0)
    budget.deposit(4.0)
    assert budget.remaining(5.0) == 2


def test_memory_is_bounded_by_the_number_of_buckets() -> None:
    budget = RetryBudget(ttl=10.0)
    for i in range(100_000):
        budget.deposit(i * 0.001)
        budget.withdraw(i * 0.001)
    assert len(budget._requests) == len(budget._retries) == 10


@pytest.mark.parametrize("kw", [{"ratio": -0.1}, {"min_per_second": -1}, {"ttl": 0.0}])
def test_bad_budget_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryBudget(**kw)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["deposit", "withdraw"]), st.floats(0.0, 3.0)), max_size=300
    ),
    ratio=st.sampled_from([0.0, 0.2, 1.0]),
    floor=st.sampled_from([0, 1, 10]),
)
def test_budget_agrees_with_a_naive_model_of_whole_second_buckets(
    ops: list[tuple[str, float]], ratio: float, floor: int
) -> None:
    ttl = 5
    budget = RetryBudget(ratio=ratio, min_per_second=floor, ttl=float(ttl))
    events: list[tuple[int, str]] = []  # (second, kind) of every counted event
    now = 0.0
    for op, dt in ops:
        now += dt
        second = int(now)
        window = [k for s, k in events if second - ttl < s <= second]
        if op == "deposit":
            budget.deposit(now)
            events.append((second, "req"))
        else:
            allowed = window.count("retry") < floor * ttl + ratio * window.count("req")
            assert budget.withdraw(now) == allowed
            if allowed:
                events.append((second, "retry"))


# --- RetryCondition ----------------------------------------------------------------------


def test_statuses_codes_limit_and_timeout_from_policy() -> None:
    c = RetryCondition.from_policy(
        pb.RetryPolicy(
            http_statuses=[pb.StatusRange(start=500, end=504), pb.StatusRange(start=429)],
            grpc_codes=[14, 4],
            limit=3,
            timeout_ms=250,
        )
    )
    assert [s for s in range(100, 600) if c.retryable_status(s)] == [429, 500, 501, 502, 503, 504]
    assert c.retryable_grpc(14) and c.retryable_grpc(4) and not c.retryable_grpc(2)
    assert c.limit == 3 and c.enabled
    assert c.per_try_timeout == 0.25


def test_wide_ranges_are_clipped_to_real_statuses() -> None:
    c = RetryCondition.from_policy(
        pb.RetryPolicy(http_statuses=[pb.StatusRange(start=0, end=4_000_000_000)], limit=1)
    )
    assert c.retryable_status(500) and c.retryable_status(100) and c.retryable_status(999)
    assert len(c.statuses) == 900


def test_an_inverted_range_retries_nothing() -> None:
    c = RetryCondition.from_policy(
        pb.RetryPolicy(http_statuses=[pb.StatusRange(start=599, end=500)], limit=1)
    )
    assert not c.statuses


def test_nothing_to_retry_is_none() -> None:
    assert RetryCondition.from_policy(pb.RetryPolicy()) is RetryCondition.NONE
    assert RetryCondition.from_policy(None) is RetryCondition.NONE
    none = RetryCondition.NONE
    assert none.limit == 0 and none.per_try_timeout is None and not none.enabled
    assert not none.retryable_status(503) and not none.retryable_grpc(14)


def test_limit_zero_keeps_the_per_try_timeout() -> None:
    c = RetryCondition.from_policy(pb.RetryPolicy(timeout_ms=100))
    assert c is not RetryCondition.NONE
    assert not c.enabled and c.per_try_timeout == 0.1
