"""`gateway.networking.k8s.io/v1 HTTPRoute`, as a mesh (GAMMA) uses it.

A rule's matches select requests by path (`Exact`, `PathPrefix`, `RegularExpression`),
headers, query parameters and method; any one match selects the rule. Defaults are the API
server's: a route without rules has one rule matching every path, a rule without matches
matches `PathPrefix /`, a match without a path has `PathPrefix /`. `timeouts.request` bounds a
whole request (retries included), `timeouts.backendRequest` one request to a backend; both are
Gateway API durations, and backendRequest may not be longer than a non-zero request timeout.

Path values follow the API server's rules: `Exact` and `PathPrefix` start with "/" and contain
no "//", "/./", "/../", "%2f" or "#"; a regular expression must compile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader
from gossamer.core.resources.formats import check_dns1123_subdomain, check_one_of
from gossamer.core.resources.gateway_durations import duration_ms, duration_problem
from gossamer.core.resources.registry import KindInfo
from gossamer.core.resources.routes import (
    GATEWAY_API_VERSION,
    MAX_BACKEND_REFS,
    MAX_MATCHES,
    MAX_RULES,
    BackendRef,
    ParentRef,
    RouteFilter,
    ValueMatch,
    check_regex,
    filter_parser,
    parse_backend_ref,
    parse_header_match,
    parse_query_match,
    read_filters,
    read_hostnames,
    read_items,
    read_parent_refs,
    read_value_matches,
)
from gossamer.core.resources.traffic_annotations import check_http_route_annotations

PATH_PREFIX = "PathPrefix"
PATH_EXACT = "Exact"
PATH_REGEX = "RegularExpression"
PATH_TYPES = (PATH_PREFIX, PATH_EXACT, PATH_REGEX)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
MAX_TOTAL_MATCHES = 128

_HTTP_FILTERS = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
)


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: str = PATH_PREFIX
    value: str = "/"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True, slots=True)
class HTTPRouteMatch:
    path: PathMatch = field(default_factory=PathMatch)
    headers: tuple[ValueMatch, ...] = ()
    query_params: tuple[ValueMatch, ...] = ()
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path.to_dict()}
        if self.headers:
            data["headers"] = [header.to_dict() for header in self.headers]
        if self.query_params:
            data["queryParams"] = [param.to_dict() for param in self.query_params]
        if self.method is not None:
            data["method"] = self.method
        return data


@dataclass(frozen=True, slots=True)
class HTTPRouteTimeouts:
    """As written (`"10s"`); `request_ms`/`backend_request_ms` read them (None: not set)."""

    request: str | None = None
    backend_request: str | None = None

    @property
    def request_ms(self) -> int | None:
        return None if self.request is None else duration_ms(self.request)

    @property
    def backend_request_ms(self) -> int | None:
        return None if self.backend_request is None else duration_ms(self.backend_request)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.request is not None:
            data["request"] = self.request
        if self.backend_request is not None:
            data["backendRequest"] = self.backend_request
        return data


@dataclass(frozen=True, slots=True)
class HTTPRouteRule:
    matches: tuple[HTTPRouteMatch, ...] = (HTTPRouteMatch(),)
    filters: tuple[RouteFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()
    timeouts: HTTPRouteTimeouts | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"matches": [match.to_dict() for match in self.matches]}
        if self.filters:
            data["filters"] = [route_filter.to_dict() for route_filter in self.filters]
        if self.backend_refs:
            data["backendRefs"] = [ref.to_dict() for ref in self.backend_refs]
        if self.timeouts is not None:
            data["timeouts"] = self.timeouts.to_dict()
        return data


@dataclass(frozen=True, slots=True)
class HTTPRouteSpec:
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[HTTPRouteRule, ...] = (HTTPRouteRule(),)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.parent_refs:
            data["parentRefs"] = [ref.to_dict() for ref in self.parent_refs]
        if self.hostnames:
            data["hostnames"] = list(self.hostnames)
        data["rules"] = [rule.to_dict() for rule in self.rules]
        return data


# -- parsing -----------------------------------------------------------------------------


def check_path_value(value: str) -> str | None:
    """The API server's rules for Exact and PathPrefix values."""
    if not value.startswith("/"):
        return 'must be an absolute path starting with "/"'
    if len(value) > 1024:
        return "must be at most 1024 characters"
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            return f"must not contain {bad!r}"
    if value.endswith(("/..", "/.")):
        return "must not end with '/..' or '/.'"
    return None


def _parse_path(value: object, path: FieldPath, strict: bool) -> PathMatch:
    reader = MappingReader(value, path, ("type", "value"), strict=strict)
    kind = reader.str_or("type", PATH_PREFIX, check_one_of(PATH_TYPES))
    if kind == PATH_REGEX:
        text = reader.require_str("value", check_regex)
    else:
        text = reader.str_or("value", "/", check_path_value)
    return PathMatch(kind, text)


def _parse_match(value: object, path: FieldPath, strict: bool) -> HTTPRouteMatch:
    reader = MappingReader(value, path, ("path", "headers", "queryParams", "method"), strict=strict)
    raw_path = reader.get("path")
    return HTTPRouteMatch(
        path=PathMatch()
        if raw_path is None
        else _parse_path(raw_path, reader.path("path"), strict),
        headers=read_value_matches(reader, "headers", parse_header_match, fold_case=True),
        query_params=read_value_matches(reader, "queryParams", parse_query_match, fold_case=False),
        method=reader.optional_str("method", check_one_of(METHODS)),
    )


def _parse_timeouts(value: object, path: FieldPath, strict: bool) -> HTTPRouteTimeouts:
    reader = MappingReader(value, path, ("request", "backendRequest"), strict=strict)
    timeouts = HTTPRouteTimeouts(
        request=reader.optional_str("request", duration_problem),
        backend_request=reader.optional_str("backendRequest", duration_problem),
    )
    request, backend = timeouts.request_ms, timeouts.backend_request_ms
    if request and backend is not None and backend > request:
        raise FieldError(
            reader.path("backendRequest"),
            f"must not be longer than the request timeout ({timeouts.request})",
        )
    return timeouts


_parse_filter = filter_parser(_HTTP_FILTERS)


def _parse_rule(value: object, path: FieldPath, strict: bool) -> HTTPRouteRule:
    reader = MappingReader(
        value, path, ("matches", "filters", "backendRefs", "timeouts"), strict=strict
    )
    matches = read_items(reader, "matches", MAX_MATCHES, _parse_match) or (HTTPRouteMatch(),)
    raw_timeouts = reader.get("timeouts")
    return HTTPRouteRule(
        matches=matches,
        filters=read_filters(reader, _parse_filter),
        backend_refs=read_items(reader, "backendRefs", MAX_BACKEND_REFS, parse_backend_ref),
        timeouts=None
        if raw_timeouts is None
        else _parse_timeouts(raw_timeouts, reader.path("timeouts"), strict),
    )


def parse_http_route_spec(value: object, path: FieldPath, strict: bool) -> HTTPRouteSpec:
    reader = MappingReader(value, path, ("parentRefs", "hostnames", "rules"), strict=strict)
    rules = read_items(reader, "rules", MAX_RULES, _parse_rule) or (HTTPRouteRule(),)
    total = sum(len(rule.matches) for rule in rules)
    if total > MAX_TOTAL_MATCHES:
        raise FieldError(
            reader.path("rules"),
            f"must have at most {MAX_TOTAL_MATCHES} matches across all rules (got {total})",
        )
    return HTTPRouteSpec(
        parent_refs=read_parent_refs(reader),
        hostnames=read_hostnames(reader),
        rules=rules,
    )


HTTP_ROUTE = KindInfo(
    api_version=GATEWAY_API_VERSION,
    kind="HTTPRoute",
    name_check=check_dns1123_subdomain,
    parse_spec=parse_http_route_spec,
    plural="httproutes",
    check_annotations=check_http_route_annotations,
)
