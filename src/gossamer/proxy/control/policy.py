"""Outbound policy: the routes, retries, timeouts and failure accrual of a target, kept current.

One `PolicyWatch` per original destination, followed as watches.py describes. Each new
policy is compiled once (routing.CompiledRoutes) so that per-request routing only reads it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.control.watches import Addr, Watch, WatchClient

WATCH_PATH = "/gossamer.policy.v1.OutboundPolicies/Watch"


class PolicyWatch(Watch):
    def __init__(self, target: Addr) -> None:
        super().__init__(target)
        self.policy: pb.OutboundPolicy | None = None
        self.version = 0

    def apply(self, message: bytes, *, replace: bool) -> None:
        # Every message is a whole policy.
        self.policy = pb.OutboundPolicy.FromString(message)
        self.exists = self.policy.exists
        self.version += 1


class PolicyClient(WatchClient[PolicyWatch]):
    kind = "policy"
    path = WATCH_PATH

    def __init__(
        self,
        addr: Addr,
        context: Mapping[str, str] | None = None,
        *,
        rng: random.Random | None = None,
        first_answer_timeout: float = 3.0,
        idle_timeout: float = 60.0,
        connect_timeout: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        super().__init__(
            addr,
            first_answer_timeout=first_answer_timeout,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            backoff=backoff,
        )
        self._context = json.dumps(dict(context or {}), sort_keys=True)
        self.rng = rng or random.Random()

    def new_watch(self, key: Addr) -> PolicyWatch:
        return PolicyWatch(key)

    def request(self, watch: PolicyWatch) -> bytes:
        return pb.OutboundPolicyRequest(
            target=f"{watch.key[0]}:{watch.key[1]}", context_token=self._context
        ).SerializeToString()
