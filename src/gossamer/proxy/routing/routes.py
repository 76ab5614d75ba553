"""A service's outbound routes, compiled once per policy; per-request selection only reads.

Theory of operation: routes are tried in the policy's order (the control plane sorts them by
Gateway API precedence; the implicit default comes last). A route whose hostnames do not
include the request's host is skipped. Within a route, every (rule, match) pair was sorted
at compile time by Gateway API match precedence (see matches.py), so the first pair that
matches names the rule; a rule without matches matches every request. Each rule's outcome
(`SelectedRoute`: backends, modifiers, retry condition, timeouts) is built once, so a
selection allocates nothing.

When the first route can only ever be the answer (no hostnames, and its most specific pair is
a catch-all, as with a policy that has just the default route), `select` returns it at once.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.retry import RetryCondition
from gossamer.proxy.routing.matches import (
    CATCH_ALL_PRECEDENCE,
    CompiledMatch,
    InvalidMatch,
    hostname_test,
)
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
    )

    def __init__(
        self, route: pb.Route, rule_index: int, rule: pb.RouteRule, rng: random.Random
    ) -> None:
        self.route_name = route.name
        self.route_namespace = route.namespace
        self.route_kind = route.kind
        self.rule = rule_index
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


_Entry = tuple[CompiledMatch | None, SelectedRoute]  # None: the rule has no matches
_Route = tuple[Callable[[bytes], bool] | None, tuple[_Entry, ...]]


class CompiledRoutes:
    """`OutboundPolicy.routes`, ready for `select`."""

    def __init__(self, policy: pb.OutboundPolicy, rng: random.Random) -> None:
        self.policy = policy
        # Matches that could not be compiled (a bad regex): they never match; listed here.
        self.errors: list[str] = []
        routes: list[_Route] = []
        for route in policy.routes:
            entries: list[tuple[tuple[int, ...], int, _Entry]] = []
            for rule_index, rule in enumerate(route.rules):
                selected = SelectedRoute(route, rule_index, rule, rng)
                if not rule.matches:
                    entries.append(((*CATCH_ALL_PRECEDENCE,), rule_index, (None, selected)))
                for match in rule.matches:
                    try:
                        compiled = CompiledMatch(match)
                    except InvalidMatch as e:
                        self.errors.append(f"{route.kind} {route.name} rule {rule_index}: {e}")
                        continue
                    entries.append((compiled.precedence, rule_index, (compiled, selected)))
            # Most specific first; equal precedence keeps rule (then match) order: sort is stable.
            entries.sort(key=lambda e: (tuple(-k for k in e[0]), e[1]))
            if entries:
                routes.append((hostname_test(route.hostnames), tuple(e[2] for e in entries)))
        self._routes: tuple[_Route, ...] = tuple(routes)
        # Set when every request selects the same rule: a caller may skip building the
        # RequestInfo altogether (`routes.always or routes.select(request_info(...))`).
        self.always: SelectedRoute | None = None
        if routes and routes[0][0] is None and routes[0][1][0][0] is None:
            self.always = routes[0][1][0][1]

    @property
    def routes(self) -> list[SelectedRoute]:
        """Every rule's outcome, in policy order (for metrics and tests)."""
        out: list[SelectedRoute] = []
        for _, entries in self._routes:
            for _, selected in sorted(entries, key=lambda e: e[1].rule):
                if selected not in out:
                    out.append(selected)
        return out

    def select(self, request: RequestInfo) -> SelectedRoute | None:
        """The rule that `request` selects; None when no route matches."""
        always = self.always
        if always is not None:
            return always
        for host_test, entries in self._routes:
            if host_test is not None and not host_test(request.host):
                continue
            for match, selected in entries:
                if match is None or match.matches(request):
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
