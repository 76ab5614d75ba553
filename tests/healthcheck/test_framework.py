"""The check runner: order, fatal checks, warnings, retries within a budget, broken checks."""

from __future__ import annotations

import time

from gossamer.healthcheck.framework import Category, Check, CheckFailure, CheckResult, run_checks


class Ctx:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]


async def passes(ctx: Ctx) -> str | None:
    ctx.count("passes")
    return "fine"


async def fails(ctx: Ctx) -> str | None:
    ctx.count("fails")
    raise CheckFailure("broken", hint="fix it")


async def raises(ctx: Ctx) -> str | None:
    raise KeyError("oops")


async def third_time_lucky(ctx: Ctx) -> str | None:
    if ctx.count("lucky") < 3:
        raise CheckFailure("not yet")
    return None


async def collect(categories: list[Category[Ctx]], ctx: Ctx, **kw: float) -> list[CheckResult]:
    return [result async for result in run_checks(categories, ctx, **kw)]


async def test_results_in_order_with_hints() -> None:
    ctx = Ctx()
    results = await collect(
        [
            Category("a", (Check("one", passes), Check("two", fails, "default hint"))),
            Category("b", (Check("three", raises, "look here"),)),
        ],
        ctx,
    )
    assert [(r.category, r.description, r.ok) for r in results] == [
        ("a", "one", True),
        ("a", "two", False),
        ("b", "three", False),
    ]
    assert results[0].detail == "fine" and results[0].hint is None
    assert (results[1].detail, results[1].hint) == ("broken", "fix it")  # the failure's own hint
    assert (results[2].detail, results[2].hint) == ("KeyError: 'oops'", "look here")
    assert all(r.failed for r in results[1:])


async def test_a_fatal_failure_ends_the_run() -> None:
    ctx = Ctx()
    results = await collect(
        [Category("a", (Check("x", fails, fatal=True), Check("y", passes))), Category("b", ())],
        ctx,
    )
    assert [r.description for r in results] == ["x"]
    assert "passes" not in ctx.calls


async def test_warnings_do_not_fail_and_are_not_retried() -> None:
    ctx = Ctx()
    [result] = await collect(
        [Category("a", (Check("w", fails, warning=True),))], ctx, wait_s=5, retry_interval_s=0.01
    )
    assert not result.ok and result.warning and not result.failed
    assert ctx.calls["fails"] == 1


async def test_retries_until_success_within_the_budget() -> None:
    ctx = Ctx()
    [result] = await collect(
        [Category("a", (Check("l", third_time_lucky),))], ctx, wait_s=5, retry_interval_s=0.01
    )
    assert result.ok and ctx.calls["lucky"] == 3


async def test_retries_stop_at_the_deadline() -> None:
    ctx = Ctx()
    started = time.monotonic()
    [result] = await collect(
        [Category("a", (Check("f", fails),))], ctx, wait_s=0.3, retry_interval_s=0.05
    )
    assert not result.ok
    assert time.monotonic() - started < 1.0
    assert 3 <= ctx.calls["fails"] <= 8
