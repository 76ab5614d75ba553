"""The policy service: outbound policy (routes, backends, retries, timeouts, failure
accrual) for the Service an address names.

- `index`: `PolicyIndex`, Services and routes as the store watches report them.
- `precedence`: Gateway API precedence across routes, rules and matches.
- `translate`: one Service port's `OutboundPolicy` message (pure).
- `server`: `OutboundPolicyServer`, the `OutboundPolicies.Watch` gRPC service.

Reads Services, HTTPRoutes and GRPCRoutes through the store interface only, so local mode
(SQLite) and Kubernetes mode share it. May import `gossamer.core`, `gossamer.api` and
`gossamer.control.store`.
"""

from gossamer.control.policy.index import PolicyIndex, RouteEntry, ServiceEntry, Target
from gossamer.control.policy.server import OutboundPolicyServer, client_namespace
from gossamer.control.policy.translate import applicable_routes, outbound_policy

__all__ = [
    "OutboundPolicyServer",
    "PolicyIndex",
    "RouteEntry",
    "ServiceEntry",
    "Target",
    "applicable_routes",
    "client_namespace",
    "outbound_policy",
]
