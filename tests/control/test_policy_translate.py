"""Outbound policy without sockets: which routes apply, in what order, and what each becomes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gossamer.api.gen import policy_pb2 as pb
from gossamer.control.policy import PolicyIndex, outbound_policy
from gossamer.core.resources import Resource

GATEWAY = "gateway.networking.k8s.io/v1"
T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:01Z"


def service(
    name: str = "web",
    ns: str = "demo",
    *,
    vip: str | None = "10.78.0.5",
    ports: Sequence[Mapping[str, Any]] = ({"name": "http", "port": 80, "targetPort": 8080},),
    annotations: Mapping[str, str] | None = None,
) -> Resource:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [dict(p) for p in ports]}
    if vip is not None:
        spec["clusterIP"] = vip
    return Resource.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "annotations": dict(annotations or {})},
            "spec": spec,
        }
    )


def parent(name: str = "web", port: int | None = 80, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "core", "kind": "Service", "name": name, **extra}
    if port is not None:
        ref["port"] = port
    return ref


def prefix(value: str, **extra: Any) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}, **extra}


def exact(value: str, **extra: Any) -> dict[str, Any]:
    return {"path": {"type": "Exact", "value": value}, **extra}


def route(
    name: str,
    rules: Sequence[Mapping[str, Any]],
    *,
    ns: str = "demo",
    kind: str = "HTTPRoute",
    parents: Sequence[Mapping[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str = T0,
    hostnames: Sequence[str] = (),
) -> Resource:
    spec: dict[str, Any] = {
        "parentRefs": [dict(p) for p in (parents if parents is not None else [parent()])],
        "rules": [dict(r) for r in rules],
    }
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return Resource.from_dict(
        {
            "apiVersion": GATEWAY,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": ns,
                "annotations": dict(annotations or {}),
                "creationTimestamp": created,
            },
            "spec": spec,
        }
    )


def to(*backends: str | tuple[str, int]) -> list[dict[str, Any]]:
    """backendRefs: `"web-v2"` (parent's port, weight 1) or `("web-v2", weight)`."""
    refs = []
    for backend in backends:
        name, weight = backend if isinstance(backend, tuple) else (backend, 1)
        refs.append({"name": name, "weight": weight})
    return refs


def policy_of(
    resources: Sequence[Resource],
    target: str = "web.demo.svc.cluster.local:80",
    client_namespace: str | None = None,
) -> pb.OutboundPolicy:
    index = PolicyIndex()
    for resource in resources:
        if resource.kind == "Service":
            index.set_service(resource)
        else:
            index.set_route(resource)
    resolved = index.resolve(target)
    assert resolved is not None and resolved.service is not None
    entry = index.service(resolved.service)
    assert entry is not None
    port = next(p for p in entry.spec.ports if p.port == resolved.port)
    return outbound_policy(
        entry, port, index.routes_for(resolved.service), client_namespace=client_namespace
    )


def shape(policy: pb.OutboundPolicy) -> list[tuple[str, list[list[str]]]]:
    """Routes as (name, [[match, ...] per rule]) with matches written `=/x`, `/x`, `~re`,
    plus ` GET`, ` h2` (header count) and ` q1` (query count) when present."""
    kinds = {pb.PathMatch.EXACT: "=", pb.PathMatch.PREFIX: "", pb.PathMatch.REGEX: "~"}
    out = []
    for r in policy.routes:
        rules = []
        for rule in r.rules:
            matches = []
            for m in rule.matches:
                if m.HasField("grpc"):
                    text = f"{m.grpc.service}/{m.grpc.method}"
                else:
                    text = kinds[m.path.kind] + m.path.value
                text += f" {m.method}" if m.method else ""
                text += f" h{len(m.headers)}" if m.headers else ""
                text += f" q{len(m.query_params)}" if m.query_params else ""
                matches.append(text)
            rules.append(matches)
        out.append((r.name, rules))
    return out


def backends(rule: pb.RouteRule) -> list[tuple[str, int]]:
    return [(b.authority, b.weight) for b in rule.backends]


# -- precedence -------------------------------------------------------------------------------


def test_an_exact_path_in_a_newer_route_beats_an_older_prefix() -> None:
    policy = policy_of(
        [
            service(),
            route("catch-all", [{"matches": [prefix("/")]}], created=T0),
            route("login", [{"matches": [exact("/login")]}], created=T1),
        ]
    )
    assert shape(policy) == [("login", [["=/login"]]), ("catch-all", [["/"]]), ("default", [[]])]


def test_gateway_api_precedence_across_and_within_routes() -> None:
    header = [{"name": "x-a", "value": "1"}]
    two_headers = [*header, {"name": "x-b", "value": "2"}]
    query = [{"name": "q", "value": "1"}]
    policy = policy_of(
        [
            service(),
            route(
                "a",
                [
                    {"matches": [prefix("/api")]},
                    {"matches": [prefix("/api", headers=two_headers)]},
                    {"matches": [prefix("/api/v1")]},
                ],
            ),
            route(
                "b",
                [
                    {"matches": [prefix("/api", method="GET")]},
                    {"matches": [prefix("/api", headers=header, queryParams=query)]},
                    {"matches": [prefix("/api", headers=header)]},
                    {"matches": [exact("/api/v1/users")]},
                    {"matches": [{"path": {"type": "RegularExpression", "value": "/api/.*/x"}}]},
                ],
            ),
        ]
    )
    assert shape(policy) == [
        ("b", [["=/api/v1/users"], ["~/api/.*/x"]]),  # exact, then a regex
        ("a", [["/api/v1"]]),  # the longest prefix
        ("b", [["/api GET"]]),  # a method
        ("a", [["/api h2"]]),  # more headers
        ("b", [["/api h1 q1"], ["/api h1"]]),  # then more query parameters
        ("a", [["/api"]]),
        ("default", [[]]),
    ]


def test_ties_go_to_the_older_route_then_by_name_then_by_position() -> None:
    same = [{"matches": [prefix("/x")]}]
    policy = policy_of(
        [
            service(),
            route("zeta", same, created=T0),
            route("beta", same, created=T1),
            route("alpha", same, created=T1),
            route("multi", [{"matches": [prefix("/y")]}, {"matches": [prefix("/y")]}], created=T1),
        ]
    )
    names = [name for name, _ in shape(policy)]
    assert names == ["zeta", "alpha", "beta", "multi", "default"]
    # Both rules of `multi` are kept, in their order, in one route.
    assert shape(policy)[3] == ("multi", [["/y"], ["/y"]])


def test_one_route_in_order_comes_out_whole() -> None:
    rules = [
        {"matches": [exact("/a"), exact("/b")], "backendRefs": to("a")},
        {"matches": [prefix("/static")], "backendRefs": to("static")},
        {"backendRefs": to("web")},
    ]
    policy = policy_of([service(), route("site", rules)])
    assert shape(policy) == [("site", [["=/a", "=/b"], ["/static"], ["/"]]), ("default", [[]])]


def test_matches_of_one_rule_are_ranked_separately() -> None:
    policy = policy_of(
        [
            service(),
            route("a", [{"matches": [exact("/a"), prefix("/")], "backendRefs": to("a")}]),
            route("b", [{"matches": [prefix("/b")], "backendRefs": to("b")}]),
        ]
    )
    assert shape(policy) == [
        ("a", [["=/a"]]),
        ("b", [["/b"]]),
        ("a", [["/"]]),
        ("default", [[]]),
    ]
    # Both pieces of route a keep the rule's backends.
    assert backends(policy.routes[0].rules[0]) == backends(policy.routes[2].rules[0])


def test_grpc_precedence_longest_service_then_method_then_headers() -> None:
    def method(service: str | None = None, name: str | None = None, **extra: Any) -> dict:
        match: dict[str, Any] = {}
        if service is not None:
            match["service"] = service
        if name is not None:
            match["method"] = name
        return {"method": {**match, **extra}}

    policy = policy_of(
        [
            service(),
            route(
                "g",
                [
                    {},  # every call
                    {"matches": [method("emoji.v1.Emoji")]},
                    {"matches": [method("emoji.v1.Emoji", "List")]},
                    {"matches": [method(name="List")]},
                    {"matches": [{"headers": [{"name": "x-a", "value": "1"}]}]},
                ],
                kind="GRPCRoute",
            ),
        ]
    )
    assert shape(policy) == [
        ("g", [["emoji.v1.Emoji/List"], ["emoji.v1.Emoji/"], ["/List"], [" h1"], []]),
        ("default", [[]]),
    ]


# -- which routes apply -----------------------------------------------------------------------


def test_parent_ports_and_section_names_select_ports() -> None:
    ports = (
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "admin", "port": 9990},
    )
    resources = [
        service(ports=ports),
        route("on-80", [{"matches": [prefix("/a")]}], parents=[parent(port=80)]),
        route(
            "on-admin",
            [{"matches": [prefix("/b")]}],
            parents=[parent(port=None, sectionName="admin")],
        ),
        route("on-all", [{"matches": [prefix("/c")]}], parents=[parent(port=None)]),
        route("elsewhere", [{"matches": [prefix("/d")]}], parents=[parent("api")]),
    ]
    on_80 = [name for name, _ in shape(policy_of(resources, "web.demo:80"))]
    on_admin = [name for name, _ in shape(policy_of(resources, "web.demo:9990"))]
    assert on_80 == ["on-80", "on-all", "default"]
    assert on_admin == ["on-admin", "on-all", "default"]


def test_consumer_routes_apply_to_their_namespace_only_and_replace_producer_routes() -> None:
    resources = [
        service(),
        route("producer", [{"matches": [prefix("/p")]}]),
        route(
            "consumer", [{"matches": [prefix("/c")]}], ns="shop", parents=[parent(namespace="demo")]
        ),
        route(
            "stranger",
            [{"matches": [prefix("/s")]}],
            ns="other",
            parents=[parent(namespace="demo")],
        ),
    ]

    def names(client: str | None) -> list[str]:
        return [name for name, _ in shape(policy_of(resources, client_namespace=client))]

    assert names(None) == ["producer", "default"]
    assert names("demo") == ["producer", "default"]
    assert names("shop") == ["consumer", "default"]
    assert names("elsewhere") == ["producer", "default"]


def test_a_parent_in_the_routes_namespace_by_default() -> None:
    resources = [
        service(),
        service("web", "shop", vip="10.78.0.6"),
        route("shop-web", [{"matches": [prefix("/x")]}], ns="shop"),  # parent: shop/web
    ]
    assert [n for n, _ in shape(policy_of(resources))] == ["default"]
    shop = policy_of(resources, "web.shop.svc.cluster.local:80")
    assert [n for n, _ in shape(shop)] == ["shop-web", "default"]


def test_grpc_routes_win_over_http_routes() -> None:
    resources = [
        service(),
        route("http", [{"matches": [prefix("/x")]}]),
        route("grpc", [{"matches": [{"method": {"service": "a.B"}}]}], kind="GRPCRoute"),
    ]
    policy = policy_of(resources)
    assert [(r.name, r.kind) for r in policy.routes] == [
        ("grpc", "GRPCRoute"),
        ("default", "default"),
    ]
    grpc_match = policy.routes[0].rules[0].matches[0].grpc
    assert (grpc_match.service, grpc_match.method, grpc_match.regex) == ("a.B", "", False)


# -- what a rule becomes ----------------------------------------------------------------------


def test_backends_weights_and_the_parents_port() -> None:
    ports = ({"name": "http", "port": 8080},)
    resources = [
        service(ports=ports),
        route(
            "split",
            [
                {
                    "matches": [prefix("/")],
                    "backendRefs": [
                        {"name": "web-v2", "weight": 90},
                        {"name": "web-v1", "port": 9000, "weight": 10},
                        {"name": "web-v0", "namespace": "legacy", "weight": 0},
                    ],
                },
                {"matches": [prefix("/self")]},
            ],
            parents=[parent(port=None)],
        ),
    ]
    policy = policy_of(resources, "10.78.0.5:8080")
    split = policy.routes[0]
    assert backends(split.rules[0]) == [  # /self is longer: it comes first
        ("web.demo.svc.cluster.local:8080", 1)
    ]
    assert backends(split.rules[1]) == [
        ("web-v2.demo.svc.cluster.local:8080", 90),
        ("web-v1.demo.svc.cluster.local:9000", 10),
        ("web-v0.legacy.svc.cluster.local:8080", 0),
    ]
    v0 = split.rules[1].backends[2]
    assert (v0.service, v0.namespace, v0.port) == ("web-v0", "legacy", 8080)
    default = policy.routes[-1]
    assert (default.name, default.kind, default.namespace) == ("default", "default", "demo")
    assert backends(default.rules[0]) == [("web.demo.svc.cluster.local:8080", 1)]
    assert list(default.rules[0].matches) == []


def test_header_modifiers_and_hostnames() -> None:
    rule = {
        "matches": [prefix("/")],
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "x-route", "value": "canary"}],
                    "add": [{"name": "x-hop", "value": "1"}],
                    "remove": ["x-debug"],
                },
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"remove": ["server"]},
            },
        ],
    }
    policy = policy_of([service(), route("r", [rule], hostnames=["web.example"])])
    translated = policy.routes[0]
    assert list(translated.hostnames) == ["web.example"]
    request = translated.rules[0].request_header_modifiers
    assert [(h.name, h.value) for h in request[0].set] == [("x-route", "canary")]
    assert [(h.name, h.value) for h in request[0].add] == [("x-hop", "1")]
    assert list(request[0].remove) == ["x-debug"]
    response = translated.rules[0].response_header_modifiers
    assert len(response) == 1 and list(response[0].remove) == ["server"]
    assert not policy.routes[-1].rules[0].request_header_modifiers


def test_matches_carry_headers_query_parameters_and_methods() -> None:
    match = {
        "path": {"type": "RegularExpression", "value": "/u/[0-9]+"},
        "headers": [
            {"name": "x-a", "value": "1"},
            {"type": "RegularExpression", "name": "x-b", "value": "b.*"},
        ],
        "queryParams": [{"name": "page", "value": "2"}],
        "method": "POST",
    }
    translated = policy_of([service(), route("r", [{"matches": [match]}])]).routes[0]
    m = translated.rules[0].matches[0]
    assert (m.path.kind, m.path.value, m.method) == (pb.PathMatch.REGEX, "/u/[0-9]+", "POST")
    assert [(h.name, h.value, h.regex) for h in m.headers] == [
        ("x-a", "1", False),
        ("x-b", "b.*", True),
    ]
    assert [(q.name, q.value, q.regex) for q in m.query_params] == [("page", "2", False)]


RETRYING = {
    "retry.gossamer.dev/http": "5xx",
    "retry.gossamer.dev/limit": "3",
    "retry.gossamer.dev/timeout": "300ms",
    "timeout.gossamer.dev/request": "10s",
    "timeout.gossamer.dev/response": "2s",
}


def test_the_services_retries_and_timeouts_reach_every_route() -> None:
    policy = policy_of([service(annotations=RETRYING), route("r", [{"matches": [prefix("/x")]}])])
    for translated in policy.routes:
        rule = translated.rules[0]
        assert [(s.start, s.end) for s in rule.retry.http_statuses] == [(500, 599)]
        assert (rule.retry.limit, rule.retry.timeout_ms) == (3, 300)
        assert (rule.timeouts.request_ms, rule.timeouts.response_ms) == (10_000, 2_000)


def test_a_routes_annotations_override_the_services_by_group() -> None:
    overriding = {"retry.gossamer.dev/http": "gateway-error", "timeout.gossamer.dev/request": "0s"}
    policy = policy_of(
        [
            service(annotations=RETRYING),
            route("r", [{"matches": [prefix("/x")]}], annotations=overriding),
        ]
    )
    rule = policy.routes[0].rules[0]
    # The route's retry group replaces the Service's whole: limit back to 1, no per-try timeout.
    assert [(s.start, s.end) for s in rule.retry.http_statuses] == [(502, 504)]
    assert (rule.retry.limit, rule.retry.timeout_ms) == (1, 0)
    # Its timeout group too: no request timeout, and the Service's response timeout is gone.
    assert (rule.timeouts.request_ms, rule.timeouts.response_ms) == (0, 0)
    # The default route keeps the Service's.
    default = policy.routes[-1].rules[0]
    assert (default.retry.limit, default.timeouts.request_ms) == (3, 10_000)


def test_rule_timeouts_against_annotations() -> None:
    timeouts = {"timeouts": {"request": "5s", "backendRequest": "1s"}}
    # Rule fields are more specific than the Service's annotations...
    plain = policy_of(
        [service(annotations=RETRYING), route("r", [{"matches": [prefix("/x")], **timeouts}])]
    )
    rule = plain.routes[0].rules[0]
    assert (rule.timeouts.request_ms, rule.timeouts.response_ms) == (5_000, 1_000)
    # ...but an annotation on the route itself wins over its fields (as Linkerd documents).
    annotated = policy_of(
        [
            service(annotations=RETRYING),
            route(
                "r",
                [{"matches": [prefix("/x")], **timeouts}],
                annotations={"timeout.gossamer.dev/request": "7s"},
            ),
        ]
    )
    rule = annotated.routes[0].rules[0]
    assert (rule.timeouts.request_ms, rule.timeouts.response_ms) == (7_000, 1_000)


def test_no_retries_or_timeouts_unless_configured() -> None:
    policy = policy_of([service(), route("r", [{"matches": [prefix("/x")]}])])
    for translated in policy.routes:
        assert not translated.rules[0].HasField("retry")
        assert not translated.rules[0].HasField("timeouts")
    assert not policy.HasField("failure_accrual")


def test_grpc_retries_on_a_grpc_route() -> None:
    policy = policy_of(
        [
            service(),
            route(
                "g",
                [{"matches": [{"method": {"service": "a.B"}}]}],
                kind="GRPCRoute",
                annotations={"retry.gossamer.dev/grpc": "unavailable,cancelled"},
            ),
        ]
    )
    assert list(policy.routes[0].rules[0].retry.grpc_codes) == [1, 14]
    assert policy.routes[0].rules[0].retry.limit == 1


def test_failure_accrual_from_the_services_annotations() -> None:
    policy = policy_of(
        [
            service(
                annotations={
                    "balancer.gossamer.dev/failure-accrual": "consecutive",
                    "balancer.gossamer.dev/failure-accrual-consecutive-max-failures": "3",
                }
            )
        ]
    )
    accrual = policy.failure_accrual
    assert (accrual.consecutive_failures, accrual.min_backoff_ms, accrual.max_backoff_ms) == (
        3,
        1_000,
        60_000,
    )
    assert accrual.jitter_ratio == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("app_protocol", "annotations", "opaque"),
    [
        ("linkerd.io/opaque", {}, True),
        ("gossamer.dev/opaque", {}, True),
        ("http", {}, False),
        (None, {"config.gossamer.dev/opaque-ports": "3306,80"}, True),
        (None, {"config.gossamer.dev/opaque-ports": "70-79,81-90"}, False),
    ],
)
def test_opaque_ports_get_the_default_route_only(
    app_protocol: str | None, annotations: dict[str, str], opaque: bool
) -> None:
    port: dict[str, Any] = {"name": "http", "port": 80}
    if app_protocol is not None:
        port["appProtocol"] = app_protocol
    policy = policy_of(
        [
            service(ports=(port,), annotations=annotations),
            route("r", [{"matches": [prefix("/x")]}]),
        ]
    )
    assert policy.opaque is opaque
    assert [r.name for r in policy.routes] == (["default"] if opaque else ["r", "default"])


def test_the_policy_names_its_service_and_port() -> None:
    policy = policy_of([service()], "10.78.0.5:80")
    assert (policy.exists, policy.service, policy.namespace, policy.port) == (
        True,
        "web",
        "demo",
        80,
    )


@pytest.mark.parametrize(
    ("target", "found"),
    [
        ("web.demo.svc.cluster.local:80", ("demo", "web")),
        ("web.demo.svc.cluster.local.:80", ("demo", "web")),
        ("web.demo.svc:80", ("demo", "web")),
        ("web.demo:80", ("demo", "web")),
        ("10.78.0.5:80", ("demo", "web")),
        ("10.78.0.9:80", None),
        ("web.demo.svc.other.domain:80", None),
        ("web:80", None),
    ],
)
def test_targets_resolve_to_services(target: str, found: tuple[str, str] | None) -> None:
    index = PolicyIndex()
    index.set_service(service())
    resolved = index.resolve(target)
    assert resolved is not None and resolved.service == found and resolved.port == 80


@pytest.mark.parametrize(
    "target", ["web.demo", "web.demo:http", "web.demo:0", "web.demo:65536", ""]
)
def test_targets_without_a_port_do_not_resolve(target: str) -> None:
    assert PolicyIndex().resolve(target) is None


def test_annotations_read_leniently_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As a Kubernetes API server could hand it over: the local store refuses it on write.
    data = service().to_dict()
    data["metadata"]["annotations"] = {"retry.gossamer.dev/http": "sometimes"}
    lenient = Resource.from_dict(data, strict=False)
    with caplog.at_level(logging.WARNING, "gossamer.control.policy"):
        policy = policy_of([lenient])
    assert not policy.routes[0].rules[0].HasField("retry")
    assert "Service demo/web: ignoring its annotations" in caplog.text


def test_index_forgets_removed_routes_and_services() -> None:
    index = PolicyIndex()
    index.set_service(service())
    touched = index.set_route(route("r", [{"matches": [prefix("/x")]}]))
    assert touched == {("demo", "web")}
    # Moving a route to another parent touches both.
    moved = route("r", [{"matches": [prefix("/x")]}], parents=[parent("api")])
    assert index.set_route(moved) == {("demo", "web"), ("demo", "api")}
    assert index.routes_for(("demo", "web")) == []
    assert index.remove_route(("HTTPRoute", "demo", "r")) == {("demo", "api")}
    assert index.routes_for(("demo", "api")) == []
    index.remove_service(("demo", "web"))
    resolved = index.resolve("10.78.0.5:80")
    assert resolved is not None and resolved.service is None
