"""A service's outbound routes, compiled once per policy; per-request selection only reads.

Theory of operation: the control plane has already put every route, rule and match in
Gateway API precedence order (a route may even appear in several pieces to honour it), so
the proxy honours the order as given: the first route whose hostnames admit the request's
host, and within it the first rule with a match that holds (a rule without matches, or
with a catch-all match, takes every request), is the answer. Each rule's outcome
(`SelectedRoute`: backends, modifiers, retry condition, timeouts) is built once, so a
selection allocates nothing.

When the first route can only ever be the answer (no hostnames, and a catch-all first rule,
as with a policy that has just the default route), `select` returns it at once, and
`always` tells a caller it need not even build the `RequestInfo`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.metrics import RouteStats
from gossamer.proxy.retry import RetryCondition
from gossamer.proxy.routing.matches import CompiledMatch, InvalidMatch, hostname_test
from gossamer.proxy.routing.modifiers import HeaderModifiers
from gossamer.proxy.routing.request import RequestInfo


class SelectedRoute:
    """What one rule of one route says to do with a request it matched."""

    __slots__ = (
        "_cumulative",
        "_random",
        "_single",
        "_total",
        "backends",
        "request_modifiers",
        "request_timeout",
        "response_modifiers",
        "response_timeout",
        "retry",
        "route_kind",
        "route_name",
        "route_namespace",
        "rule",
        "stats",
        "target",
    )

    def __init__(
        self, route: pb.Route, rule_index: int, rule: pb.RouteRule, rng: random.Random
    ) -> None:
        self.route_name = route.name
        self.route_namespace = route.namespace
        self.route_kind = route.kind
        self.rule = rule_index
        # This rule's route metrics, found once by the first request that selects it; and
        # with a single backend, that backend's target (the service's `BackendTarget`).
        self.stats: RouteStats | None = None
        self.target: object = None
        self.request_modifiers = HeaderModifiers.compile(rule.request_header_modifiers)
        self.response_modifiers = HeaderModifiers.compile(rule.response_header_modifiers)
        self.retry = RetryCondition.from_policy(rule.retry if rule.HasField("retry") else None)
        timeouts = rule.timeouts
        self.request_timeout = timeouts.request_ms / 1000 if timeouts.request_ms else None
        self.response_timeout = timeouts.response_ms / 1000 if timeouts.response_ms else None
        # Weight 0 takes no traffic (Gateway API); with no weight left, backend() is None.
        self.backends: tuple[pb.Backend, ...] = tuple(b for b in rule.backends if b.weight > 0)
        self._single = self.backends[0] if len(self.backends) == 1 else None
        cumulative: list[int] = []
        total = 0
        for b in self.backends:
            total += b.weight
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total
        self._random = rng.random

    def backend(self) -> pb.Backend | None:
        """A backend chosen at random by weight; None when no backend has any weight."""
        single = self._single
        if single is not None:
            return single
        total = self._total
        if not total:
            return None
        return self.backends[bisect_right(self._cumulative, self._random() * total)]

    def __repr__(self) -> str:
        return (
            f"SelectedRoute({self.route_kind}/{self.route_name} rule {self.rule}, "
            f"backends={[(b.authority, b.weight) for b in self.backends]})"
        )


# A rule: its matches (None: it takes every request) and what it says to do.
_Rule = tuple[tuple[CompiledMatch, ...] | None, SelectedRoute]
_Route = tuple[Callable[[bytes], bool] | None, tuple[_Rule, ...]]


class CompiledRoutes:
    """`OutboundPolicy.routes`, ready for `select`."""

    def __init__(self, policy: pb.OutboundPolicy, rng: random.Random) -> None:
        self.policy = policy
        # Matches that could not be compiled (a bad regex): they never match; listed here.
        self.errors: list[str] = []
        self._selected: list[SelectedRoute] = []
        routes: list[_Route] = []
        for route in policy.routes:
            rules: list[_Rule] = []
            for rule_index, rule in enumerate(route.rules):
                selected = SelectedRoute(route, rule_index, rule, rng)
                self._selected.append(selected)
                matches = self._compile_matches(route, rule_index, rule)
                if matches is None or matches:
                    rules.append((matches, selected))
                # else: every match was invalid, so the rule can match nothing.
            if rules:
                routes.append((hostname_test(route.hostnames), tuple(rules)))
        self._routes: tuple[_Route, ...] = tuple(routes)
        # Set when every request selects the same rule: a caller may skip building the
        # RequestInfo altogether (`routes.always or routes.select(request_info(...))`).
        self.always: SelectedRoute | None = None
        # Whether any rule retries: only then does a request need to pay into the budget.
        self.retries = any(selected.retry.limit > 0 for selected in self._selected)
        if routes and routes[0][0] is None and routes[0][1][0][0] is None:
            self.always = routes[0][1][0][1]

    def _compile_matches(
        self, route: pb.Route, rule_index: int, rule: pb.RouteRule
    ) -> tuple[CompiledMatch, ...] | None:
        """The rule's matches; None when it takes every request."""
        if not rule.matches:
            return None
        compiled: list[CompiledMatch] = []
        for match in rule.matches:
            try:
                m = CompiledMatch(match)
            except InvalidMatch as e:
                self.errors.append(f"{route.kind} {route.name} rule {rule_index}: {e}")
                continue
            if m.catch_all:
                return None
            compiled.append(m)
        return tuple(compiled)

    @property
    def routes(self) -> list[SelectedRoute]:
        """Every rule's outcome, in policy order (for metrics and tests)."""
        return list(self._selected)

    def select(self, request: RequestInfo) -> SelectedRoute | None:
        """The rule that `request` selects; None when no route matches."""
        always = self.always
        if always is not None:
            return always
        for host_test, rules in self._routes:
            if host_test is not None and not host_test(request.host):
                continue
            for matches, selected in rules:
                if matches is None:
                    return selected
                for match in matches:
                    if match.matches(request):
                        return selected
        return None

    def select_grpc(
        self, service: bytes, method: bytes, request: RequestInfo
    ) -> SelectedRoute | None:
        """`select` for a gRPC call whose `/service/method` the caller has already split."""
        always = self.always
        if always is not None:
            return always
        request.set_grpc_method(service, method)
        return self.select(request)
