"""Retry policy for outbound requests. Pure: no I/O, no asyncio; the caller's clock.

- `RetryBudget`: Linkerd's budget (retries at most `ratio` of requests, plus a floor).
- `RetryCondition`: which outcomes of a route are retried, how often, with what timeout.

The replaying itself belongs to the protocol code, which asks these two.
"""

from gossamer.proxy.retry.budget import RetryBudget
from gossamer.proxy.retry.condition import RetryCondition

__all__ = ["RetryBudget", "RetryCondition"]
