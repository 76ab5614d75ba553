"""HTTPRoute and GRPCRoute: every validation error names the object and the exact field;
defaults are the API server's; canonical forms round-trip."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gossamer.core.resources import Resource, ResourceError, ValidationError, load_documents
from gossamer.core.resources.grpcroute import GRPCRouteSpec
from gossamer.core.resources.httproute import HTTPRouteMatch, HTTPRouteSpec, PathMatch
from gossamer.core.resources.routes import BackendRef, ValueMatch
from tests.core.manifests import DELETE, mutated

GATEWAY = "gateway.networking.k8s.io/v1"

HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": GATEWAY,
    "kind": "HTTPRoute",
    "metadata": {"name": "web-split", "namespace": "demo"},
    "spec": {
        "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 80}],
        "hostnames": ["web.demo.svc.cluster.local"],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/api"},
                        "headers": [{"name": "x-canary", "value": "1"}],
                        "queryParams": [
                            {"type": "RegularExpression", "name": "user", "value": "^a.*"}
                        ],
                        "method": "GET",
                    }
                ],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": "x-route", "value": "canary"}],
                            "add": [{"name": "x-hop", "value": "1"}],
                            "remove": ["x-debug"],
                        },
                    }
                ],
                "backendRefs": [
                    {"name": "web-v2", "port": 80, "weight": 90},
                    {"name": "web-v1", "port": 80, "weight": 10},
                ],
                "timeouts": {"request": "10s", "backendRequest": "2s"},
            }
        ],
    },
}

GRPC_ROUTE: dict[str, Any] = {
    "apiVersion": GATEWAY,
    "kind": "GRPCRoute",
    "metadata": {"name": "emoji", "namespace": "demo"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "emoji-svc", "port": 8080}],
        "rules": [
            {
                "matches": [
                    {
                        "method": {"service": "emojivoto.v1.EmojiService", "method": "ListAll"},
                        "headers": [{"name": "x-user", "value": "a"}],
                    }
                ],
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "v2"}]},
                    }
                ],
                "backendRefs": [{"name": "emoji-v2", "port": 8080}],
            }
        ],
    },
}

HTTP = "HTTPRoute demo/web-split: "
GRPC = "GRPCRoute demo/emoji: "
RULE = "spec.rules[0]"
MATCH = f"{RULE}.matches[0]"
MODIFIER = f"{RULE}.filters[0].requestHeaderModifier"
HEADER_NAME = "must be an HTTP header name"


def _many(item: object, count: int) -> list[object]:
    return [copy.deepcopy(item) for _ in range(count)]


def _distinct_headers(count: int) -> list[dict[str, str]]:
    return [{"name": f"x-h{index}", "value": "v"} for index in range(count)]


PARENT = HTTP_ROUTE["spec"]["parentRefs"][0]
RULE_0 = HTTP_ROUTE["spec"]["rules"][0]

CASES: list[tuple[dict[str, Any], str | tuple[str | int, ...], object, str]] = [
    # metadata
    (HTTP_ROUTE, "metadata.name", "Web_Split", "HTTPRoute demo/Web_Split: metadata.name: must be"),
    # parentRefs
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.kind",
        DELETE,
        HTTP + "spec.parentRefs[0].kind: required: Gossamer routes attach to Services "
        "(kind: Service, group: core); Gateway API would default it to Gateway",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.kind",
        "Gateway",
        HTTP + "spec.parentRefs[0].kind: kind Gateway is not supported: Gossamer routes attach "
        "to Services (kind: Service, group: core)",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.group",
        DELETE,
        HTTP + 'spec.parentRefs[0].group: required for kind Service: write group: core (or ""); '
        "Gateway API would default it to gateway.networking.k8s.io",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.group",
        "apps",
        HTTP + 'spec.parentRefs[0].group: must be "core" or "" for kind Service (got \'apps\')',
    ),
    (HTTP_ROUTE, "spec.parentRefs.0.name", DELETE, HTTP + "spec.parentRefs[0].name: required"),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.name",
        "Web",
        HTTP + "spec.parentRefs[0].name: must be a DNS-1035 label",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.namespace",
        "Demo",
        HTTP + "spec.parentRefs[0].namespace: must be a DNS-1123 label",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.port",
        0,
        HTTP + "spec.parentRefs[0].port: must be an integer from 1 to 65535 (got 0)",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.port",
        "80",
        HTTP + 'spec.parentRefs[0].port: must be an integer from 1 to 65535 (got string "80")',
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.sectionName",
        "HTTP",
        HTTP + "spec.parentRefs[0].sectionName: must be a DNS-1123 label",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.0.sectionNme",
        "http",
        HTTP + 'spec.parentRefs[0].sectionNme: unknown field (did you mean "sectionName"?)',
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.1",
        PARENT,
        HTTP + "spec.parentRefs[1]: refers to the same Service as parentRefs[0]; several "
        "references to one Service must each set a different port or sectionName",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs.1",
        {"group": "core", "kind": "Service", "name": "web"},
        HTTP + "spec.parentRefs[1]: refers to the same Service as parentRefs[0]",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs",
        [{"group": "core", "kind": "Service", "name": f"s{i}"} for i in range(33)],
        HTTP + "spec.parentRefs: must have at most 32 entries (got 33)",
    ),
    (
        HTTP_ROUTE,
        "spec.parentRefs",
        {"name": "web"},
        HTTP + "spec.parentRefs: must be a list (got a mapping)",
    ),
    # hostnames
    (HTTP_ROUTE, "spec.hostnames.0", "10.0.0.1", HTTP + "spec.hostnames[0]: must be a hostname"),
    (HTTP_ROUTE, "spec.hostnames.0", "*.*.example", HTTP + "spec.hostnames[0]: must be a hostname"),
    (HTTP_ROUTE, "spec.hostnames.0", "Web.Demo", HTTP + "spec.hostnames[0]: must be a hostname"),
    (
        HTTP_ROUTE,
        "spec.hostnames",
        [f"h{i}.example" for i in range(17)],
        HTTP + "spec.hostnames: must have at most 16 entries (got 17)",
    ),
    # rules and matches
    (
        HTTP_ROUTE,
        "spec.rules",
        _many(RULE_0, 17),
        HTTP + "spec.rules: must have at most 16 entries (got 17)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules",
        _many({"matches": _many({"path": {"value": "/a"}}, 16)}, 9),
        HTTP + "spec.rules: must have at most 128 matches across all rules (got 144)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches",
        _many({"path": {"value": "/a"}}, 17),
        HTTP + f"{RULE}.matches: must have at most 16 entries (got 17)",
    ),
    (HTTP_ROUTE, "spec.rules.0", "all", HTTP + f'{RULE}: must be a mapping (got string "all")'),
    (
        HTTP_ROUTE,
        "spec.rules.0.retry",
        {"attempts": 2},
        HTTP + f"{RULE}.retry: unknown field",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.type",
        "Prefix",
        HTTP + f"{MATCH}.path.type: must be one of PathPrefix, Exact, RegularExpression",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "api",
        HTTP + f'{MATCH}.path.value: must be an absolute path starting with "/"',
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a//b",
        HTTP + f"{MATCH}.path.value: must not contain '//'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a/../b",
        HTTP + f"{MATCH}.path.value: must not contain '/../'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a/./b",
        HTTP + f"{MATCH}.path.value: must not contain '/./'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a%2Fb",
        HTTP + f"{MATCH}.path.value: must not contain '%2F'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a#top",
        HTTP + f"{MATCH}.path.value: must not contain '#'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/a/..",
        HTTP + f"{MATCH}.path.value: must not end with '/..' or '/.'",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path.value",
        "/" + "a" * 1024,
        HTTP + f"{MATCH}.path.value: must be at most 1024 characters",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path",
        {"type": "RegularExpression", "value": "/(users"},
        HTTP + f"{MATCH}.path.value: must be a valid regular expression (missing ), unterminated "
        "subpattern at position 1)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.path",
        {"type": "RegularExpression"},
        HTTP + f"{MATCH}.path.value: required",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.method",
        "get",
        HTTP + f"{MATCH}.method: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, "
        "TRACE, PATCH",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.verb",
        "GET",
        HTTP
        + f"{MATCH}.verb: unknown field; known fields here: headers, method, path, queryParams",
    ),
    # header and query parameter matches
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.0.name",
        "x canary",
        HTTP + f"{MATCH}.headers[0].name: {HEADER_NAME}",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.0.name",
        DELETE,
        HTTP + f"{MATCH}.headers[0].name: required",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.0.value",
        "",
        HTTP + f'{MATCH}.headers[0].value: must not be empty (got string "")',
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.0.value",
        "v" * 4097,
        HTTP + f"{MATCH}.headers[0].value: must be at most 4096 characters",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.0.type",
        "Prefix",
        HTTP + f"{MATCH}.headers[0].type: must be one of Exact, RegularExpression",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers.1",
        {"name": "X-Canary", "value": "2"},
        HTTP + f"{MATCH}.headers[1].name: duplicate name 'X-Canary' (also entry [0])",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.headers",
        _distinct_headers(17),
        HTTP + f"{MATCH}.headers: must have at most 16 entries (got 17)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.queryParams.0.value",
        "(",
        HTTP + f"{MATCH}.queryParams[0].value: must be a valid regular expression",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.queryParams.0",
        {"name": "user", "value": "u" * 1025},
        HTTP + f"{MATCH}.queryParams[0].value: must be at most 1024 characters",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.matches.0.queryParams.1",
        {"name": "user", "value": "b"},
        HTTP + f"{MATCH}.queryParams[1].name: duplicate name 'user' (also entry [0])",
    ),
    # filters
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0",
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}}},
        HTTP + f"{RULE}.filters[0].type: filter RequestMirror is not supported; supported: "
        "RequestHeaderModifier, ResponseHeaderModifier",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0",
        {"type": "URLRewrite", "urlRewrite": {"hostname": "x"}},
        HTTP + f"{RULE}.filters[0].type: filter URLRewrite is not supported",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.type",
        "Rewrite",
        HTTP + f"{RULE}.filters[0].type: must be one of RequestHeaderModifier, "
        "ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, ExtensionRef",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier",
        DELETE,
        HTTP + f"{RULE}.filters[0].requestHeaderModifier: required when type is "
        "RequestHeaderModifier",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.responseHeaderModifier",
        {"set": [{"name": "a", "value": "b"}]},
        HTTP + f"{RULE}.filters[0].responseHeaderModifier: must not be set when type is "
        "RequestHeaderModifier",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.1",
        RULE_0["filters"][0],
        HTTP + f"{RULE}.filters[1]: RequestHeaderModifier cannot be repeated (also filters[0])",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier",
        {},
        HTTP + f"{MODIFIER}: must set, add or remove at least one header",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.set.1",
        {"name": "X-Route", "value": "other"},
        HTTP + f"{MODIFIER}.set[1].name: duplicate header 'X-Route' (also entry [0])",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.remove.1",
        "X-DEBUG",
        HTTP + f"{MODIFIER}.remove[1]: duplicate header 'X-DEBUG' (also entry [0])",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.set.0.name",
        "bad header",
        HTTP + f"{MODIFIER}.set[0].name: {HEADER_NAME}",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.add.0.value",
        DELETE,
        HTTP + f"{MODIFIER}.add[0].value: required",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.remove.0",
        "x:y",
        HTTP + f"{MODIFIER}.remove[0]: {HEADER_NAME}",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.set",
        _distinct_headers(17),
        HTTP + f"{MODIFIER}.set: must have at most 16 entries (got 17)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.filters.0.requestHeaderModifier.remove",
        [f"x-{i}" for i in range(17)],
        HTTP + f"{MODIFIER}.remove: must have at most 16 entries (got 17)",
    ),
    # backendRefs
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.weight",
        1_000_001,
        HTTP + f"{RULE}.backendRefs[0].weight: must be an integer from 0 to 1000000 (got 1000001)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.weight",
        -1,
        HTTP + f"{RULE}.backendRefs[0].weight: must be an integer from 0 to 1000000 (got -1)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.kind",
        "Deployment",
        HTTP + f"{RULE}.backendRefs[0].kind: kind Deployment is not supported: backends are "
        "Services",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.group",
        "apps",
        HTTP + f'{RULE}.backendRefs[0].group: must be "core" or "" for kind Service',
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.filters",
        [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["a"]}}],
        HTTP + f"{RULE}.backendRefs[0].filters: filters on a single backendRef are not "
        "supported; put them on the rule",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.name",
        DELETE,
        HTTP + f"{RULE}.backendRefs[0].name: required",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs.0.port",
        70000,
        HTTP + f"{RULE}.backendRefs[0].port: must be an integer from 1 to 65535 (got 70000)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.backendRefs",
        _many({"name": "web", "port": 80}, 17),
        HTTP + f"{RULE}.backendRefs: must have at most 16 entries (got 17)",
    ),
    # timeouts
    (
        HTTP_ROUTE,
        "spec.rules.0.timeouts.request",
        "10",
        HTTP + f'{RULE}.timeouts.request: must be a duration such as "10s", "500ms" or "1m30s" '
        '(units h, m, s, ms) (got string "10")',
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.timeouts.request",
        "1.5s",
        HTTP + f"{RULE}.timeouts.request: must be a duration such as",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.timeouts.request",
        "99999h",
        HTTP + f"{RULE}.timeouts.request: must be at most 4294967295ms (about 49 days)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.timeouts.backendRequest",
        "20s",
        HTTP + f"{RULE}.timeouts.backendRequest: must not be longer than the request timeout (10s)",
    ),
    (
        HTTP_ROUTE,
        "spec.rules.0.timeouts.idle",
        "20s",
        HTTP + f"{RULE}.timeouts.idle: unknown field; known fields here: backendRequest, request",
    ),
    # GRPCRoute
    (
        GRPC_ROUTE,
        "spec.parentRefs.0.kind",
        "Gateway",
        GRPC + "spec.parentRefs[0].kind: kind Gateway is not supported",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.method.service",
        "emoji service",
        GRPC + f"{MATCH}.method.service: must be a gRPC service name: dot-separated identifiers",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.method.method",
        "List-All",
        GRPC + f"{MATCH}.method.method: must be a gRPC method name: an identifier (as Check)",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.method",
        {"type": "Exact"},
        GRPC + f"{MATCH}.method: must set service, method or both",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.method",
        {"type": "RegularExpression", "service": "emoji(("},
        GRPC + f"{MATCH}.method.service: must be a valid regular expression",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.method.type",
        "Prefix",
        GRPC + f"{MATCH}.method.type: must be one of Exact, RegularExpression",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.headers.0",
        {"type": "RegularExpression", "name": "x-user", "value": "["},
        GRPC + f"{MATCH}.headers[0].value: must be a valid regular expression",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.matches.0.path",
        {"value": "/x"},
        GRPC + f"{MATCH}.path: unknown field; known fields here: headers, method",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.filters.0.type",
        "RequestRedirect",
        GRPC + f"{RULE}.filters[0].type: must be one of RequestHeaderModifier, "
        "ResponseHeaderModifier, RequestMirror, ExtensionRef",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.filters.0",
        {"type": "RequestMirror", "requestMirror": {}},
        GRPC + f"{RULE}.filters[0].type: filter RequestMirror is not supported",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.timeouts",
        {"request": "1s"},
        GRPC + f"{RULE}.timeouts: unknown field; known fields here: backendRefs, filters, matches",
    ),
    (
        GRPC_ROUTE,
        "spec.rules.0.backendRefs.0.weight",
        True,
        GRPC + f"{RULE}.backendRefs[0].weight: must be an integer from 0 to 1000000 (got true)",
    ),
]


@pytest.mark.parametrize(
    ("base", "path", "value", "expected"),
    CASES,
    ids=[f"{case[0]['kind']}:{case[1]}={case[2]!r}"[:80] for case in CASES],
)
def test_validation_error_names_the_field(
    base: dict[str, Any], path: str | tuple[str | int, ...], value: object, expected: str
) -> None:
    with pytest.raises(ResourceError) as raised:
        Resource.from_dict(mutated(base, path, value))
    assert str(raised.value).startswith(expected), str(raised.value)


@pytest.mark.parametrize("base", [HTTP_ROUTE, GRPC_ROUTE], ids=lambda b: b["kind"])
def test_examples_are_valid_and_round_trip(base: dict[str, Any]) -> None:
    resource = Resource.from_dict(base)
    canonical = resource.to_dict()
    assert Resource.from_dict(canonical) == resource
    assert Resource.from_dict(canonical).to_dict() == canonical


def test_http_route_defaults_are_the_api_servers() -> None:
    route = Resource.from_dict(
        {
            "apiVersion": GATEWAY,
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "web"}],
                "rules": [
                    {"backendRefs": [{"name": "web-v2"}]},
                    {"matches": [{"headers": [{"name": "x-a", "value": "1"}]}]},
                ],
            },
        }
    )
    spec = route.spec_as(HTTPRouteSpec)
    assert route.namespace == "default"
    assert spec.rules[0].matches == (HTTPRouteMatch(path=PathMatch("PathPrefix", "/")),)
    assert spec.rules[0].backend_refs == (BackendRef("web-v2", weight=1),)
    assert spec.rules[1].matches[0].path == PathMatch("PathPrefix", "/")
    assert spec.rules[1].matches[0].headers == (ValueMatch("x-a", "1", "Exact"),)
    # A route without rules takes every request.
    bare = mutated(route.to_dict(), "spec.rules", DELETE)
    assert Resource.from_dict(bare).spec_as(HTTPRouteSpec).rules[0].matches == (HTTPRouteMatch(),)


def test_grpc_route_without_rules_or_matches_takes_every_call() -> None:
    bare = mutated(GRPC_ROUTE, "spec.rules", DELETE)
    spec = Resource.from_dict(bare).spec_as(GRPCRouteSpec)
    assert len(spec.rules) == 1 and spec.rules[0].matches == ()


def test_values_at_the_limits_are_accepted() -> None:
    accepted = [
        ("spec.rules.0.backendRefs.0.weight", 0),
        ("spec.rules.0.backendRefs.0.weight", 1_000_000),
        ("spec.rules.0.backendRefs.0.port", DELETE),  # the parent's port
        ("spec.rules.0.timeouts", {"request": "0s", "backendRequest": "1h"}),  # 0s: none
        ("spec.rules.0.timeouts", {"request": "1h30m15s500ms"}),
        ("spec.hostnames", ["*.demo.example", "web"]),
        ("spec.parentRefs.0.group", ""),
        ("spec.parentRefs.1", {"group": "core", "kind": "Service", "name": "web", "port": 81}),
        ("spec.rules.0.matches.0.path", {"type": "Exact", "value": "/"}),
        ("spec.rules.0.matches.0.headers", _distinct_headers(16)),
        ("spec.rules.0.matches", _many({"path": {"value": "/a"}}, 16)),
        ("spec.rules", _many({"matches": _many({"path": {"value": "/a"}}, 8)}, 16)),
    ]
    for path, value in accepted:
        Resource.from_dict(mutated(HTTP_ROUTE, path, value))


def test_lenient_parsing_ignores_unknown_fields_and_annotations() -> None:
    # As read from a Kubernetes API server: a status, newer fields, foreign annotations.
    document = mutated(HTTP_ROUTE, "status", {"parents": []})
    document = mutated(document, "spec.rules.0.sessionPersistence", {"type": "Cookie"})
    document = mutated(
        document, ("metadata", "annotations"), {"retry.gossamer.dev/http": "nonsense"}
    )
    route = Resource.from_dict(document, strict=False)
    assert route.spec_as(HTTPRouteSpec).rules[0].backend_refs[0].weight == 90
    with pytest.raises(ValidationError):
        Resource.from_dict(document)


def test_a_yaml_error_points_at_the_annotation() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  annotations:
    retry.gossamer.dev/limit: "3"
    retry.gossamer.dev/http: 5xx,7xx
spec:
  ports: [{port: 80}]
"""
    with pytest.raises(ResourceError) as raised:
        load_documents(text, "web.yaml")
    assert str(raised.value) == (
        "web.yaml:8:5 (document 1): Service demo/web: "
        "metadata.annotations[\"retry.gossamer.dev/http\"]: '7xx' is not a status: use 5xx, "
        'gateway-error, a status (504) or a range (500-504) (got string "5xx,7xx")'
    )
