"""Checks as data: each is a description, an async function over a context, and a hint.

A check function returns an optional detail (shown after a success) or raises `CheckFailure`
with what is wrong (and, optionally, a more precise hint than the check's own). Anything
else it raises is a failure too, named by its type: one broken check never ends the run.
A `fatal` check that fails ends the run, because nothing after it can work (no state
directory: no store, no runtime). With a `wait_s` budget, a failing check is tried again
every `retry_interval_s` until the budget is spent (`gossamer check --wait 60s` right after
`gossamer up`); warnings are not retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

ContextT = TypeVar("ContextT")


class CheckFailure(Exception):
    """What a failing check found; `hint` overrides the check's own hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Check(Generic[ContextT]):
    description: str
    run: Callable[[ContextT], Awaitable[str | None]]
    hint: str = ""
    fatal: bool = False
    warning: bool = False  # a failure is reported, but does not fail `gossamer check`


@dataclass(frozen=True, slots=True)
class Category(Generic[ContextT]):
    name: str
    checks: tuple[Check[ContextT], ...]


@dataclass(frozen=True, slots=True)
class CheckResult:
    category: str
    description: str
    ok: bool
    warning: bool = False
    detail: str | None = None  # the success detail, or what failed
    hint: str | None = None

    @property
    def failed(self) -> bool:
        """A failure that makes the whole check fail (warnings do not)."""
        return not self.ok and not self.warning


async def _attempt(check: Check[ContextT], context: ContextT) -> tuple[bool, str | None, str]:
    try:
        return True, await check.run(context), ""
    except CheckFailure as failure:
        return False, failure.message, failure.hint or check.hint
    except Exception as error:  # a check's own bug must not end the run
        return False, f"{type(error).__name__}: {error}", check.hint


async def run_checks(
    categories: Sequence[Category[ContextT]],
    context: ContextT,
    *,
    wait_s: float = 0.0,
    retry_interval_s: float = 1.0,
) -> AsyncIterator[CheckResult]:
    """Run every check in order, yielding each result as soon as it is known."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    for category in categories:
        for check in category.checks:
            ok, detail, hint = await _attempt(check, context)
            while not ok and not check.warning and loop.time() + retry_interval_s <= deadline:
                await asyncio.sleep(retry_interval_s)
                ok, detail, hint = await _attempt(check, context)
            yield CheckResult(
                category=category.name,
                description=check.description,
                ok=ok,
                warning=check.warning,
                detail=detail,
                hint=None if ok else (hint or None),
            )
            if not ok and check.fatal:
                return
