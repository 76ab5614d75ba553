"""Gateway API precedence: which route rule a request takes when several match.

Gateway API ranks *matches*, not routes: `/api/users` exactly in a newer route beats a
`PathPrefix /` in an older one. The policy contract, though, is a list of routes in which
"the first route with a matching rule wins". So the routes are cut into their matches, every
match is ranked, and runs of consecutive matches from the same route (and rule) are joined
back together: the common case (one route, rules already in order) comes out as it went in,
and the rest comes out as as many pieces as precedence demands.

Ranking, highest first, as Gateway API specifies:

- HTTPRoute: an `Exact` path; then a regular expression (longest pattern first, Gateway API
  leaves its place to implementations: Linkerd puts it here); then the longest `PathPrefix`;
  then a match with a method; then more header matches; then more query parameter matches.
- GRPCRoute: the longest service; then the longest method (an exact name before a
  regular expression of the same length); then more header matches. A rule without matches
  takes every call and ranks last.
- Ties: the older route (creationTimestamp), then `namespace/name` alphabetically, then the
  rule's and the match's position in the route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gossamer.control.policy.index import RouteEntry
from gossamer.core.resources.grpcroute import GRPCRouteMatch
from gossamer.core.resources.httproute import (
    PATH_EXACT,
    PATH_REGEX,
    HTTPRouteMatch,
    HTTPRouteSpec,
)

RankKey = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class RankedMatch:
    """One match of one rule of one route; `match` None is a rule without matches."""

    route: RouteEntry
    rule_index: int
    match: HTTPRouteMatch | GRPCRouteMatch | None


@dataclass(frozen=True, slots=True)
class RuleSlice:
    """Some matches of one rule, consecutive in precedence order."""

    rule_index: int
    matches: tuple[HTTPRouteMatch | GRPCRouteMatch, ...]


@dataclass(frozen=True, slots=True)
class RouteSlice:
    """Consecutive rule slices of one route: one entry of the ordered policy."""

    route: RouteEntry
    rules: tuple[RuleSlice, ...]


def _http_rank(match: HTTPRouteMatch) -> tuple[int, ...]:
    path = match.path
    if path.type == PATH_EXACT:
        path_rank = (0, 0)
    elif path.type == PATH_REGEX:
        path_rank = (1, -len(path.value))
    else:
        path_rank = (2, -len(path.value))
    return (
        *path_rank,
        0 if match.method is not None else 1,
        -len(match.headers),
        -len(match.query_params),
    )


def _grpc_rank(match: GRPCRouteMatch | None) -> tuple[int, ...]:
    if match is None:
        return (0, 0, 0, 0)
    method = match.method
    service = (method.service or "") if method is not None else ""
    name = (method.method or "") if method is not None else ""
    regex = 1 if method is not None and method.regex else 0
    return (-len(service), -len(name), regex, -len(match.headers))


def _tie_break(route: RouteEntry) -> tuple[int | str, ...]:
    meta = route.resource.metadata
    # Every stored object has a creation time; one without sorts after those with one.
    return (0 if meta.creation_timestamp else 1, meta.creation_timestamp, meta.namespace, meta.name)


def ranked_matches(routes: Iterable[RouteEntry]) -> list[RankedMatch]:
    """Every match of every route, highest precedence first."""
    keyed: list[tuple[RankKey, RankedMatch]] = []
    for route in routes:
        tie = _tie_break(route)
        spec = route.spec
        if isinstance(spec, HTTPRouteSpec):
            for rule_index, http_rule in enumerate(spec.rules):
                for match_index, match in enumerate(http_rule.matches):
                    key = (*_http_rank(match), *tie, rule_index, match_index)
                    keyed.append((key, RankedMatch(route, rule_index, match)))
            continue
        for rule_index, grpc_rule in enumerate(spec.rules):
            grpc_matches: tuple[GRPCRouteMatch | None, ...] = grpc_rule.matches or (None,)
            for match_index, grpc_match in enumerate(grpc_matches):
                key = (*_grpc_rank(grpc_match), *tie, rule_index, match_index)
                keyed.append((key, RankedMatch(route, rule_index, grpc_match)))
    keyed.sort(key=lambda pair: pair[0])
    return [ranked for _, ranked in keyed]


def in_precedence_order(routes: Iterable[RouteEntry]) -> list[RouteSlice]:
    """The routes cut and re-joined so that "first route with a matching rule" is Gateway
    API's choice (see the module docstring)."""
    slices: list[RouteSlice] = []
    for ranked in ranked_matches(routes):
        matches = () if ranked.match is None else (ranked.match,)
        last = slices[-1] if slices else None
        if last is None or last.route is not ranked.route:
            slices.append(RouteSlice(ranked.route, (RuleSlice(ranked.rule_index, matches),)))
            continue
        last_rule = last.rules[-1]
        if last_rule.rule_index == ranked.rule_index and matches:
            joined = RuleSlice(last_rule.rule_index, (*last_rule.matches, *matches))
            slices[-1] = RouteSlice(last.route, (*last.rules[:-1], joined))
        else:
            rule = RuleSlice(ranked.rule_index, matches)
            slices[-1] = RouteSlice(last.route, (*last.rules, rule))
    return slices
