"""What a route retries: response statuses, gRPC codes, how many times, per-try timeout.

Compiled once from the policy's `RetryPolicy` into sets, so the per-response question is one
membership test. The mechanism that replays requests lives with the protocol code; this only
answers whether an outcome is retryable. An attempt that outlives `per_try_timeout` is
retryable too (Linkerd's retry timeout), within `limit` retries and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gossamer.api.gen import policy_pb2 as pb

# Statuses a range may name; wider ranges in a policy are clipped to these.
_MIN_STATUS = 100
_MAX_STATUS = 999


@dataclass(frozen=True, slots=True)
class RetryCondition:
    statuses: frozenset[int] = frozenset()
    grpc_codes: frozenset[int] = frozenset()
    limit: int = 0
    per_try_timeout: float | None = None

    NONE: ClassVar[RetryCondition]

    @property
    def enabled(self) -> bool:
        """Whether any request is ever retried."""
        return self.limit > 0

    def retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def retryable_grpc(self, code: int) -> bool:
        return code in self.grpc_codes

    @classmethod
    def from_policy(cls, policy: pb.RetryPolicy | None) -> RetryCondition:
        """The condition a rule's `RetryPolicy` describes; NONE when it describes nothing."""
        if policy is None:
            return cls.NONE
        statuses: set[int] = set()
        for r in policy.http_statuses:
            lo = max(r.start, _MIN_STATUS)
            hi = min(r.end if r.end else r.start, _MAX_STATUS)  # end 0: a single status
            statuses.update(range(lo, hi + 1))
        condition = cls(
            statuses=frozenset(statuses),
            grpc_codes=frozenset(policy.grpc_codes),
            limit=policy.limit,
            per_try_timeout=policy.timeout_ms / 1000 if policy.timeout_ms else None,
        )
        return cls.NONE if condition == cls.NONE else condition


RetryCondition.NONE = RetryCondition()
