"""`gateway.networking.k8s.io/v1 GRPCRoute`, as a mesh (GAMMA) uses it.

A match selects calls by gRPC method (`service` and/or `method` of `/service/method`, exact or
as regular expressions) and headers; a rule without matches takes every call, and a route
without rules has one such rule. Exact names follow the API server's patterns: a service is a
dotted name (`grpc.health.v1.Health`), a method an identifier (`Check`). GRPCRoute has no
`timeouts` field in Gateway API v1; timeouts come from annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gossamer.core.resources.errors import FieldError, FieldPath
from gossamer.core.resources.fields import MappingReader
from gossamer.core.resources.formats import StringCheck, check_dns1123_subdomain, check_one_of
from gossamer.core.resources.registry import KindInfo
from gossamer.core.resources.routes import (
    EXACT,
    GATEWAY_API_VERSION,
    MATCH_TYPES,
    MAX_BACKEND_REFS,
    MAX_MATCHES,
    MAX_RULES,
    REGULAR_EXPRESSION,
    BackendRef,
    ParentRef,
    RouteFilter,
    ValueMatch,
    check_regex,
    filter_parser,
    parse_backend_ref,
    parse_header_match,
    read_filters,
    read_hostnames,
    read_items,
    read_parent_refs,
    read_value_matches,
)
from gossamer.core.resources.traffic_annotations import check_grpc_route_annotations

_SERVICE = re.compile(r"^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", re.IGNORECASE)
_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")
_GRPC_FILTERS = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
)


def _pattern_check(pattern: re.Pattern[str], what: str) -> StringCheck:
    def check(value: str) -> str | None:
        if len(value) > 1024 or not pattern.match(value):
            return f"must be {what}, at most 1024 characters"
        return None

    return check


_check_service = _pattern_check(
    _SERVICE, "a gRPC service name: dot-separated identifiers (as grpc.health.v1.Health)"
)
_check_method = _pattern_check(_METHOD, "a gRPC method name: an identifier (as Check)")


@dataclass(frozen=True, slots=True)
class GRPCMethodMatch:
    """`service` and `method` of `/service/method`; None matches any."""

    type: str = EXACT
    service: str | None = None
    method: str | None = None

    @property
    def regex(self) -> bool:
        return self.type == REGULAR_EXPRESSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.service is not None:
            data["service"] = self.service
        if self.method is not None:
            data["method"] = self.method
        return data


@dataclass(frozen=True, slots=True)
class GRPCRouteMatch:
    method: GRPCMethodMatch | None = None
    headers: tuple[ValueMatch, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.method is not None:
            data["method"] = self.method.to_dict()
        if self.headers:
            data["headers"] = [header.to_dict() for header in self.headers]
        return data


@dataclass(frozen=True, slots=True)
class GRPCRouteRule:
    matches: tuple[GRPCRouteMatch, ...] = ()
    filters: tuple[RouteFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.matches:
            data["matches"] = [match.to_dict() for match in self.matches]
        if self.filters:
            data["filters"] = [route_filter.to_dict() for route_filter in self.filters]
        if self.backend_refs:
            data["backendRefs"] = [ref.to_dict() for ref in self.backend_refs]
        return data


@dataclass(frozen=True, slots=True)
class GRPCRouteSpec:
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[GRPCRouteRule, ...] = (GRPCRouteRule(),)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.parent_refs:
            data["parentRefs"] = [ref.to_dict() for ref in self.parent_refs]
        if self.hostnames:
            data["hostnames"] = list(self.hostnames)
        data["rules"] = [rule.to_dict() for rule in self.rules]
        return data


def _parse_method(value: object, path: FieldPath, strict: bool) -> GRPCMethodMatch:
    reader = MappingReader(value, path, ("type", "service", "method"), strict=strict)
    kind = reader.str_or("type", EXACT, check_one_of(MATCH_TYPES))
    regex = kind == REGULAR_EXPRESSION
    match = GRPCMethodMatch(
        type=kind,
        service=reader.optional_str("service", check_regex if regex else _check_service),
        method=reader.optional_str("method", check_regex if regex else _check_method),
    )
    if match.service is None and match.method is None:
        raise FieldError(path, "must set service, method or both")
    return match


def _parse_match(value: object, path: FieldPath, strict: bool) -> GRPCRouteMatch:
    reader = MappingReader(value, path, ("method", "headers"), strict=strict)
    raw_method = reader.get("method")
    return GRPCRouteMatch(
        method=None
        if raw_method is None
        else _parse_method(raw_method, reader.path("method"), strict),
        headers=read_value_matches(reader, "headers", parse_header_match, fold_case=True),
    )


_parse_filter = filter_parser(_GRPC_FILTERS)


def _parse_rule(value: object, path: FieldPath, strict: bool) -> GRPCRouteRule:
    reader = MappingReader(value, path, ("matches", "filters", "backendRefs"), strict=strict)
    return GRPCRouteRule(
        matches=read_items(reader, "matches", MAX_MATCHES, _parse_match),
        filters=read_filters(reader, _parse_filter),
        backend_refs=read_items(reader, "backendRefs", MAX_BACKEND_REFS, parse_backend_ref),
    )


def parse_grpc_route_spec(value: object, path: FieldPath, strict: bool) -> GRPCRouteSpec:
    reader = MappingReader(value, path, ("parentRefs", "hostnames", "rules"), strict=strict)
    return GRPCRouteSpec(
        parent_refs=read_parent_refs(reader),
        hostnames=read_hostnames(reader),
        rules=read_items(reader, "rules", MAX_RULES, _parse_rule) or (GRPCRouteRule(),),
    )


GRPC_ROUTE = KindInfo(
    api_version=GATEWAY_API_VERSION,
    kind="GRPCRoute",
    name_check=check_dns1123_subdomain,
    parse_spec=parse_grpc_route_spec,
    plural="grpcroutes",
    check_annotations=check_grpc_route_annotations,
)
